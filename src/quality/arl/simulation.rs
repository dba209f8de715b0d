//! Run lengths by simulation: the very chart types the daemon runs, fed N(δ, 1) subgroup
//! statistics, so a bug in a chart shows up as a disagreement with the exact values.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use statrs::distribution::Normal;

use super::Spec;
use crate::quality::cusum::Cusum;
use crate::quality::ewma::Ewma;
use crate::quality::shewhart::{Shewhart, WeRules};
use crate::quality::Chart;

/// The charts `Spec` builds, dispatched statically so a simulated observation costs what a daemon
/// observation costs.
enum AnyChart {
    Shewhart(Shewhart),
    Ewma(Ewma),
    Cusum(Cusum),
}

impl Spec {
    fn chart(&self) -> AnyChart {
        match *self {
            Spec::Shewhart { limit } => AnyChart::Shewhart(Shewhart::new(limit, WeRules::NONE)),
            Spec::We { limit } => AnyChart::Shewhart(Shewhart::new(limit, WeRules::ALL)),
            Spec::Ewma {
                lambda,
                limit,
                exact,
            } => AnyChart::Ewma(Ewma::new(lambda, limit, exact)),
            Spec::Cusum { k, h } => AnyChart::Cusum(Cusum::new(k, h)),
        }
    }
}

impl AnyChart {
    #[inline]
    fn signals(&mut self, z: f64) -> bool {
        match self {
            AnyChart::Shewhart(c) => c.observe(z).fired.any(),
            AnyChart::Ewma(c) => c.observe(z).fired.any(),
            AnyChart::Cusum(c) => c.observe(z).fired.any(),
        }
    }

    fn reset(&mut self) {
        match self {
            AnyChart::Shewhart(c) => c.reset(),
            AnyChart::Ewma(c) => c.reset(),
            AnyChart::Cusum(c) => c.reset(),
        }
    }
}

/// The simulated run-length distribution.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Simulated {
    pub runs: u64,
    pub arl: f64,
    /// 95% confidence interval of the ARL (normal approximation: mean ± 1.96·sd/√runs).
    pub ci_low: f64,
    pub ci_high: f64,
    pub sd: f64,
    pub median: u64,
    /// Runs stopped at `max_len` without a signal (counted at `max_len`, so the ARL is a lower
    /// bound when this is not 0).
    pub censored: u64,
}

/// Simulate `runs` run lengths of `spec` under a step shift of `shift`σ (present from the first
/// point), each capped at `max_len` points.
pub fn simulate(spec: &Spec, shift: f64, runs: u64, seed: u64, max_len: u64) -> Simulated {
    let mut rng = SmallRng::seed_from_u64(seed);
    let normal = Normal::new(shift, 1.0).expect("finite shift");
    let mut chart = spec.chart();
    let mut lengths = Vec::with_capacity(runs as usize);
    let mut censored = 0;
    for _ in 0..runs {
        chart.reset();
        let mut t = 0;
        loop {
            t += 1;
            if chart.signals(rng.sample(normal)) {
                break;
            }
            if t >= max_len {
                censored += 1;
                break;
            }
        }
        lengths.push(t);
    }
    summarize(lengths, censored)
}

fn summarize(mut lengths: Vec<u64>, censored: u64) -> Simulated {
    let n = lengths.len() as f64;
    if lengths.is_empty() {
        return Simulated {
            runs: 0,
            arl: f64::NAN,
            ci_low: f64::NAN,
            ci_high: f64::NAN,
            sd: f64::NAN,
            median: 0,
            censored,
        };
    }
    let mean = lengths.iter().map(|&l| l as f64).sum::<f64>() / n;
    let var = lengths
        .iter()
        .map(|&l| (l as f64 - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0).max(1.0);
    let sd = var.sqrt();
    let half = 1.959_963_984_540_054 * sd / n.sqrt();
    lengths.sort_unstable();
    // The median run length: the smallest t with P(RL <= t) >= 1/2.
    let median = lengths[(lengths.len() - 1) / 2];
    Simulated {
        runs: lengths.len() as u64,
        arl: mean,
        ci_low: mean - half,
        ci_high: mean + half,
        sd,
        median,
        censored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_summary() {
        let s = summarize(vec![1, 2, 3, 10], 0);
        assert_eq!(s.arl, 4.0);
        assert_eq!(s.median, 2);
    }
}
