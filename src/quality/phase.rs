//! Phase I (estimate the in-control centre and sigma from the first subgroups) and the baseline
//! state file, so that a restart monitors against the learned baseline instead of re-learning on
//! data that may already have drifted.
//!
//! Estimators (Montgomery §6.2–6.4): equal subgroups of n ≥ 2 → σ̂ = s̄ / c₄(n); unequal ones →
//! the pooled within-subgroup s_p / c₄(Σ(nᵢ−1)+1); individuals (n = 1) → σ̂ = MR̄ / d₂ with
//! d₂ = 1.128 (moving ranges of two). The centre is the observation-weighted grand mean. For a
//! p-chart, p̂ = Σbad / Σn; with no bad at all in Phase I, p̂ = ½ / Σn (half an event) instead of
//! 0, which would put the upper limit at 0 and alarm on the first failure ever seen.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::subgroup::Closed;
use super::QualityError;

/// d₂ for moving ranges of two consecutive individuals (Montgomery, Appendix Table VI).
pub const D2_MR2: f64 = 1.128;

/// c₄(n) = √(2/(n−1)) · Γ(n/2) / Γ((n−1)/2): E[s] = c₄ σ for normal samples of n.
pub fn c4(n: u64) -> f64 {
    if n < 2 {
        return f64::NAN;
    }
    use statrs::function::gamma::ln_gamma;
    let n = n as f64;
    (2.0 / (n - 1.0)).sqrt() * (ln_gamma(n / 2.0) - ln_gamma((n - 1.0) / 2.0)).exp()
}

/// An in-control baseline: what Phase II monitors against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The in-control mean (a p-chart: the in-control fraction p₀).
    pub center: f64,
    /// Standard deviation of ONE observation (a p-chart: √(p₀(1−p₀)), for display only).
    pub sigma: f64,
    /// Subgroups and observations it was learned from (0 = fixed in config).
    pub subgroups: u64,
    pub observations: u64,
}

/// Estimate a continuous signal's baseline from Phase I subgroups; `None` if they cannot give a
/// positive, finite sigma (e.g. fewer than two individuals, or every value equal).
pub fn estimate_continuous(groups: &[Closed]) -> Option<Baseline> {
    let total: u64 = groups.iter().map(|g| g.n).sum();
    if groups.is_empty() || total == 0 {
        return None;
    }
    let center = groups.iter().map(|g| g.mean * g.n as f64).sum::<f64>() / total as f64;
    let with_sd: Vec<(u64, f64)> = groups
        .iter()
        .filter_map(|g| g.sd.map(|s| (g.n, s)))
        .collect();
    let sigma = if !with_sd.is_empty() && with_sd.len() * 2 >= groups.len() {
        let first = with_sd[0].0;
        if with_sd.iter().all(|(n, _)| *n == first) {
            let sbar = with_sd.iter().map(|(_, s)| s).sum::<f64>() / with_sd.len() as f64;
            sbar / c4(first)
        } else {
            let df: u64 = with_sd.iter().map(|(n, _)| n - 1).sum();
            let ss: f64 = with_sd.iter().map(|(n, s)| (n - 1) as f64 * s * s).sum();
            (ss / df as f64).sqrt() / c4(df + 1)
        }
    } else {
        if groups.len() < 2 {
            return None;
        }
        let mr: f64 = groups
            .windows(2)
            .map(|w| (w[1].mean - w[0].mean).abs())
            .sum::<f64>()
            / (groups.len() - 1) as f64;
        mr / D2_MR2
    };
    (sigma.is_finite() && sigma > 0.0 && center.is_finite()).then_some(Baseline {
        center,
        sigma,
        subgroups: groups.len() as u64,
        observations: total,
    })
}

/// Estimate a p-chart's baseline from Phase I totals (`None` if no observations at all).
pub fn estimate_fraction(bad: u64, n: u64, subgroups: u64) -> Option<Baseline> {
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let p = if bad == 0 {
        0.5 / nf
    } else if bad >= n {
        1.0 - 0.5 / nf
    } else {
        bad as f64 / nf
    };
    Some(Baseline {
        center: p,
        sigma: (p * (1.0 - p)).sqrt(),
        subgroups,
        observations: n,
    })
}

/// One chart's saved baseline, with what it was learned for (a changed signal or chart kind in
/// the config invalidates it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedBaseline {
    pub signal: String,
    pub kind: String,
    pub baseline: Baseline,
    /// Seconds since the Unix epoch when Phase I ended.
    pub learned_at_unix: u64,
}

/// One drift test's saved reference sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedReference {
    pub signal: String,
    pub values: Vec<f64>,
    pub learned_at_unix: u64,
}

/// The state file: baselines by chart name, references by signal.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub charts: BTreeMap<String, SavedBaseline>,
    pub references: BTreeMap<String, SavedReference>,
}

pub const STATE_VERSION: u32 = 1;

impl State {
    /// Read a state file; a missing file is an empty state (first start).
    pub fn load(path: &Path) -> Result<State, QualityError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => {
                return Err(QualityError::StateIo {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        serde_json::from_str(&text).map_err(|source| QualityError::StateFormat {
            path: path.display().to_string(),
            source,
        })
    }

    /// Write atomically (temporary file + rename), so a crash mid-write never leaves half a file.
    pub fn save(&self, path: &Path) -> Result<(), QualityError> {
        let io = |source| QualityError::StateIo {
            path: path.display().to_string(),
            source,
        };
        let mut state = self.clone();
        state.version = STATE_VERSION;
        let text =
            serde_json::to_string_pretty(&state).map_err(|source| QualityError::StateFormat {
                path: path.display().to_string(),
                source,
            })?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c4_matches_the_table() {
        // Montgomery Appendix VI: c4(2) = 0.7979, c4(5) = 0.9400, c4(25) = 0.9896.
        assert!((c4(2) - 0.7979).abs() < 1e-4);
        assert!((c4(5) - 0.9400).abs() < 1e-4);
        assert!((c4(25) - 0.9896).abs() < 1e-4);
    }

    #[test]
    fn individuals_use_moving_ranges() {
        let g = |m: f64| Closed {
            mean: m,
            n: 1,
            sd: None,
        };
        let b = estimate_continuous(&[g(1.0), g(3.0), g(2.0), g(4.0)]).unwrap();
        assert!((b.center - 2.5).abs() < 1e-12);
        assert!((b.sigma - (5.0 / 3.0) / D2_MR2).abs() < 1e-12);
        assert!(estimate_continuous(&[g(1.0)]).is_none());
        assert!(estimate_continuous(&[g(1.0), g(1.0)]).is_none());
    }

    #[test]
    fn fraction_never_zero() {
        let b = estimate_fraction(0, 400, 20).unwrap();
        assert_eq!(b.center, 0.5 / 400.0);
        assert_eq!(estimate_fraction(5, 100, 5).unwrap().center, 0.05);
        assert!(estimate_fraction(0, 0, 0).is_none());
    }
}
