//! Open-loop arrival processes at a mean rate: Poisson (exponential gaps), gamma with a
//! burstiness factor, and constant spacing. A pure, seeded sequence of gaps, so a seed gives the
//! same schedule and the processes are tested alone.
//!
//! Gamma gaps have shape `k` (the burstiness) and mean `1/qps`, so their coefficient of
//! variation is `1/sqrt(k)`: `k = 1` is Poisson, `k < 1` burstier (clumps and lulls), `k > 1`
//! smoother, and a constant schedule is the limit `k → ∞` (vLLM's benchmark uses the same
//! parameterisation).

use std::str::FromStr;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::bench::BenchError;

/// How open-loop queries are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Arrival {
    Poisson,
    Gamma { burstiness: f64 },
    Constant,
}

impl Arrival {
    /// From `--arrival` and `--burstiness`.
    pub fn from_flags(kind: &str, burstiness: f64) -> Result<Self, BenchError> {
        let a = match kind.parse::<ArrivalKind>()? {
            ArrivalKind::Poisson => Arrival::Poisson,
            ArrivalKind::Constant => Arrival::Constant,
            ArrivalKind::Gamma => Arrival::Gamma { burstiness },
        };
        if !(burstiness.is_finite() && burstiness > 0.0) {
            return Err(BenchError::Setting(
                "--burstiness must be a positive number (1 = Poisson)".into(),
            ));
        }
        Ok(a)
    }

    pub fn describe(&self) -> String {
        match self {
            Arrival::Poisson => "poisson".into(),
            Arrival::Gamma { burstiness } => format!("gamma (burstiness {burstiness})"),
            Arrival::Constant => "constant".into(),
        }
    }
}

enum ArrivalKind {
    Poisson,
    Gamma,
    Constant,
}

impl FromStr for ArrivalKind {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Self, BenchError> {
        match s {
            "poisson" => Ok(Self::Poisson),
            "gamma" => Ok(Self::Gamma),
            "constant" => Ok(Self::Constant),
            _ => Err(BenchError::Setting(format!(
                "--arrival {s:?}: use poisson, gamma or constant"
            ))),
        }
    }
}

/// The gaps between arrivals, in seconds.
pub struct Arrivals {
    rng: SmallRng,
    qps: f64,
    gamma: Option<statrs::distribution::Gamma>,
    constant: bool,
}

impl Arrivals {
    /// `qps` must be positive (the bench config checks it).
    pub fn new(arrival: Arrival, qps: f64, seed: u64) -> Self {
        let gamma = match arrival {
            // Shape k, rate k·qps: mean 1/qps.
            Arrival::Gamma { burstiness } => {
                statrs::distribution::Gamma::new(burstiness, burstiness * qps).ok()
            }
            _ => None,
        };
        Self {
            rng: SmallRng::seed_from_u64(seed),
            qps,
            gamma,
            constant: arrival == Arrival::Constant,
        }
    }

    /// The next gap.
    pub fn next_gap(&mut self) -> f64 {
        if self.constant {
            return 1.0 / self.qps;
        }
        if let Some(g) = &self.gamma {
            return rand::distributions::Distribution::sample(g, &mut self.rng);
        }
        // Exponential gaps make a Poisson process; 1 - u keeps ln away from 0. (The same draws
        // as before arrivals were pluggable, so a seed's schedule is unchanged.)
        let u: f64 = self.rng.gen();
        -(1.0 - u).ln() / self.qps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(a: Arrival, qps: f64, n: usize) -> (f64, f64) {
        let mut s = Arrivals::new(a, qps, 7);
        let gaps: Vec<f64> = (0..n).map(|_| s.next_gap()).collect();
        let mean = gaps.iter().sum::<f64>() / n as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn every_process_keeps_the_mean_rate() {
        for a in [
            Arrival::Poisson,
            Arrival::Gamma { burstiness: 0.25 },
            Arrival::Gamma { burstiness: 4.0 },
            Arrival::Constant,
        ] {
            let (mean, _) = moments(a, 20.0, 200_000);
            // 200k gaps: the mean's standard error is at most 2/sqrt(200k) ≈ 0.45% (CV 2).
            assert!(
                (1.0 / mean / 20.0 - 1.0).abs() < 0.02,
                "{a:?}: rate {}",
                1.0 / mean
            );
        }
    }

    #[test]
    fn burstiness_sets_the_coefficient_of_variation() {
        for (a, cv) in [
            (Arrival::Poisson, 1.0),
            (Arrival::Gamma { burstiness: 1.0 }, 1.0),
            (Arrival::Gamma { burstiness: 0.25 }, 2.0),
            (Arrival::Gamma { burstiness: 4.0 }, 0.5),
            (Arrival::Constant, 0.0),
        ] {
            let (_, got) = moments(a, 5.0, 200_000);
            assert!(
                (got - cv).abs() < 0.05 * cv.max(0.2),
                "{a:?}: CV {got}, want {cv}"
            );
        }
    }

    #[test]
    fn the_seed_fixes_the_schedule_and_flags_are_checked() {
        let mut a = Arrivals::new(Arrival::Gamma { burstiness: 0.5 }, 3.0, 9);
        let mut b = Arrivals::new(Arrival::Gamma { burstiness: 0.5 }, 3.0, 9);
        for _ in 0..100 {
            assert_eq!(a.next_gap(), b.next_gap());
        }
        assert!(Arrival::from_flags("gamma", 0.0).is_err());
        assert!(Arrival::from_flags("bursty", 1.0).is_err());
        assert_eq!(
            Arrival::from_flags("gamma", 2.0).unwrap(),
            Arrival::Gamma { burstiness: 2.0 }
        );
    }
}
