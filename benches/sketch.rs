//! Cost of the latency sketch: one `record` on the request path, and one 600 s `snapshot`
//! (60 slots of about 1000 samples each) plus the quantile reads a scrape does.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use inferwatch::latency::{upper_bound_rank, WindowedSketch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// Latencies spread over a few decades (1 ms .. 1 s, log-uniform), so the sketch touches a
/// realistic number of bins rather than hammering one.
fn latencies(count: usize) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..count)
        .map(|_| 10f64.powf(rng.gen_range(-3.0..0.0)))
        .collect()
}

fn ring(start: Instant) -> WindowedSketch {
    WindowedSketch::new(
        Duration::from_secs(10),
        Duration::from_secs(600),
        0.01,
        start,
    )
}

fn record(c: &mut Criterion) {
    let start = Instant::now();
    let w = ring(start);
    let values = latencies(4096);
    let now = start + Duration::from_secs(1);
    let mut i = 0usize;
    c.bench_function("record (single thread)", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            w.record(black_box(values[i]), black_box(now));
        })
    });
}

fn snapshot(c: &mut Criterion) {
    let start = Instant::now();
    let w = ring(start);
    let values = latencies(60_000);
    // 1000 samples in each of the 60 slots of the last 600 s.
    for (i, &v) in values.iter().enumerate() {
        let slot = (i / 1000) as u64;
        w.record(v, start + Duration::from_secs(slot * 10 + 5));
    }
    let now = start + Duration::from_secs(599);
    let window = Duration::from_secs(600);
    assert_eq!(w.snapshot(window, now).count(), 60_000);

    c.bench_function("snapshot 600s (60 slots x 1000)", |b| {
        b.iter(|| w.snapshot(black_box(window), black_box(now)))
    });
    let snap = w.snapshot(window, now);
    c.bench_function("5 quantiles + 5 upper bounds (n=60000)", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for q in [0.5, 0.9, 0.95, 0.99, 0.999] {
                acc += snap.quantile(black_box(q)).unwrap_or(0.0);
                acc += snap.upper_bound(black_box(q), 0.99).unwrap_or(0.0);
            }
            acc
        })
    });
    c.bench_function("upper_bound_rank n=10M q=0.99", |b| {
        b.iter(|| upper_bound_rank(black_box(10_000_000), black_box(0.99), 0.99))
    });
}

criterion_group!(benches, record, snapshot);
criterion_main!(benches);
