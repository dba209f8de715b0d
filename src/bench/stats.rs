//! Summary statistics of one run's latencies, with the percentile convention MLPerf LoadGen
//! uses (the sample at index `floor(n * p)` of the sorted latencies), so figures compare 1:1.

use serde::{Deserialize, Serialize};

/// Latency figures of one run, in seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyStats {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// The `p`-percentile of sorted samples, LoadGen's way: `sorted[floor(n * p)]`, clamped.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64) * p).floor() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl LatencyStats {
    /// Figures of `samples` (sorted in place). `None` when there are none.
    pub fn from_samples(samples: &mut [f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        Some(Self {
            count: n as u64,
            min: samples[0],
            mean: samples.iter().sum::<f64>() / n as f64,
            p50: percentile(samples, 0.50),
            p90: percentile(samples, 0.90),
            p95: percentile(samples, 0.95),
            p99: percentile(samples, 0.99),
            p999: percentile(samples, 0.999),
            max: samples[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadgen_index_convention() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = LatencyStats::from_samples(&mut v).unwrap();
        // sorted[floor(100 * 0.5)] = sorted[50] = 51.
        assert_eq!(s.p50, 51.0);
        assert_eq!(s.p99, 100.0);
        assert_eq!(s.p90, 91.0);
        assert_eq!(s.mean, 50.5);
        assert!(LatencyStats::from_samples(&mut []).is_none());
    }
}
