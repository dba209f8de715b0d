//! Cost of one `/metrics` scrape (gather + text encoding) with about 10k series.

use criterion::{criterion_group, criterion_main, Criterion};
use inferwatch::metrics::{geometric_buckets, ProxyMetrics};
use prometheus::{Encoder, Registry, TextEncoder};

fn encode(c: &mut Criterion) {
    let registry = Registry::new();
    let m = ProxyMetrics::register(&registry, geometric_buckets(0.0005, 60.0, 1.15)).unwrap();
    // 50 route/model pairs × (2 histograms × 87 series + 6 counters + 20 quantile gauges)
    // ≈ 10,000 series.
    for r in 0..10 {
        for md in 0..5 {
            let (route, model) = (format!("route_{r}"), format!("model_{md}"));
            m.duration
                .with_label_values(&[&route, &model])
                .observe(0.01);
            m.ttfb.with_label_values(&[&route, &model]).observe(0.005);
            for class in ["2xx", "4xx", "5xx"] {
                for outcome in ["ok", "connect_error"] {
                    m.requests
                        .with_label_values(&[&route, &model, class, outcome])
                        .inc();
                }
            }
            for w in ["1m", "10m"] {
                for q in ["0.5", "0.9", "0.95", "0.99", "0.999"] {
                    m.quantile
                        .with_label_values(&[&route, &model, w, q])
                        .set(0.01);
                    m.quantile_upper_bound
                        .with_label_values(&[&route, &model, w, q])
                        .set(0.02);
                }
            }
        }
    }
    let series: usize = registry
        .gather()
        .iter()
        .map(|f| {
            let per = if f.get_field_type() == prometheus::proto::MetricType::HISTOGRAM {
                // buckets + +Inf + _sum + _count
                f.get_metric()[0].get_histogram().get_bucket().len() + 3
            } else {
                1
            };
            per * f.get_metric().len()
        })
        .sum();
    eprintln!("encode bench: {series} series");
    let mut buf = Vec::with_capacity(1 << 20);
    c.bench_function("encode/10k_series", |b| {
        b.iter(|| {
            buf.clear();
            TextEncoder::new()
                .encode(&registry.gather(), &mut buf)
                .unwrap();
            buf.len()
        })
    });
}

criterion_group!(benches, encode);
criterion_main!(benches);
