//! Cost of the quality engine's hot parts: one observation per chart kind (the daemon's own chart
//! code), and `spc arl` throughput in simulated run lengths per second.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use inferwatch::quality::arl::{simulate, Spec};
use inferwatch::quality::cusum::Cusum;
use inferwatch::quality::ewma::Ewma;
use inferwatch::quality::pchart::PChart;
use inferwatch::quality::shewhart::{Shewhart, WeRules};
use inferwatch::quality::Chart;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// In-control standardized values: precomputed so the benchmark measures the chart, not the RNG.
fn values() -> Vec<f64> {
    let mut rng = SmallRng::seed_from_u64(3);
    // Sum of 12 uniforms − 6: close enough to N(0, 1) for timing, and no extra crate.
    (0..4096)
        .map(|_| (0..12).map(|_| rng.gen::<f64>()).sum::<f64>() - 6.0)
        .collect()
}

fn per_observation(c: &mut Criterion) {
    let xs = values();
    let mut g = c.benchmark_group("observe");
    g.throughput(Throughput::Elements(xs.len() as u64));
    let mut run = |name: &str, chart: &mut dyn Chart| {
        g.bench_function(name, |b| {
            b.iter(|| {
                for &x in &xs {
                    black_box(chart.observe(black_box(x)));
                }
            })
        });
    };
    run("shewhart", &mut Shewhart::new(3.0, WeRules::NONE));
    run("shewhart_we", &mut Shewhart::new(3.0, WeRules::ALL));
    run("ewma_exact", &mut Ewma::new(0.1, 2.814, true));
    run("cusum", &mut Cusum::new(0.5, 5.0));
    let mut p = PChart::new(0.01, 3.0);
    g.bench_function("p_steady_n", |b| {
        b.iter(|| {
            for (i, _) in xs.iter().enumerate() {
                black_box(p.observe(black_box((i % 3) as u64), 200));
            }
        })
    });
    g.finish();
}

fn arl_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("spc_arl");
    g.sample_size(10);
    for (name, spec) in [
        ("shewhart_L3", Spec::Shewhart { limit: 3.0 }),
        ("cusum_k0.5_h5", Spec::Cusum { k: 0.5, h: 5.0 }),
    ] {
        // 100 in-control runs per iteration; runs/second = 100 / time.
        g.throughput(Throughput::Elements(100));
        g.bench_function(name, |b| {
            b.iter(|| black_box(simulate(&spec, 0.0, 100, 1, 10_000_000)))
        });
    }
    g.finish();
}

criterion_group!(benches, per_observation, arl_throughput);
criterion_main!(benches);
