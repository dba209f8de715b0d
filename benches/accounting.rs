//! Per-request accounting cost on the live path: admission counters, in-flight gauges, the
//! request counter, both histograms and the sliding-window sketch, together. Goal: < 1 µs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use inferwatch::config::Config;
use inferwatch::metrics::{geometric_buckets, Outcome, ProxyMetrics};
use inferwatch::proxy::Accounting;
use inferwatch::routes::config::RouteConfig;
use inferwatch::routes::Router;
use prometheus::Registry;

fn accounting(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut cfg = Config::default();
    cfg.proxy.routes = vec![RouteConfig {
        name: "infer".into(),
        path_prefix: "/v2/models/".into(),
        model: "resnet".into(),
        ..RouteConfig::default()
    }];
    let registry = Registry::new();
    let metrics = ProxyMetrics::register(&registry, geometric_buckets(0.0005, 60.0, 1.15)).unwrap();
    let start = tokio::time::Instant::now();
    let router = Router::new(&cfg.proxy.routes, &cfg.latency, &metrics, start);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut i: u64 = 0;
    c.bench_function("accounting/one_request", |b| {
        b.iter(|| {
            // Vary the latency so histogram buckets and sketch bins differ between iterations.
            i = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let stats = router.route("/v2/models/resnet/infer").clone();
            in_flight.fetch_add(1, Ordering::AcqRel);
            let mut acct = Accounting::admit(stats, in_flight.clone(), start);
            acct.set_forwarded();
            let now = tokio::time::Instant::now();
            acct.headers_received(200, now);
            acct.finish(Outcome::Ok, None);
        })
    });
    let _ = i;
}

criterion_group!(benches, accounting);
criterion_main!(benches);
