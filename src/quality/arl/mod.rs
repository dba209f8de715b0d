//! Run-length analysis of a chart setting (`inferwatch spc arl|calibrate`): how many subgroups,
//! on average and at the median, until a chart signals, in control (ARL0: the false-alarm rate
//! an SRE signs up for) and after a step shift of δσ (ARL1: the detection delay).
//!
//! Two independent answers are given side by side:
//! - **simulation** of the very chart types the daemon runs
//!   ([`Shewhart`](crate::quality::shewhart::Shewhart), [`Ewma`](crate::quality::ewma::Ewma),
//!   [`Cusum`](crate::quality::cusum::Cusum)), fed N(δ, 1) subgroup statistics, so a bug in a
//!   chart shows up as a disagreement (`simulation.rs`);
//! - **exact** values (`markov.rs`) where a numerical method exists: Shewhart's closed form; the Markov chain
//!   of Champ & Woodall (1987) for the Western Electric rules, whose states are read from the
//!   chart code itself; the Brook & Evans (1972) Markov chain for EWMA (as in Lucas & Saccucci
//!   1990, with the exact time-varying limits handled step by step) and for each side of the
//!   tabular CUSUM, combined as `1/ARL = 1/ARL⁺ + 1/ARL⁻` (Lucas & Crosier 1982).
//!
//! `calibrate` (`calibration.rs`) searches the limit that gives a chosen ARL0 on the exact values.
//!
//! Published tables these reproduce (tests in `tests/spc_arl.rs`): Montgomery, *Introduction to
//! Statistical Quality Control*, Table 9.3 (CUSUM, from Lucas & Crosier / Hawkins) and
//! Table 9.11 (EWMA, from Lucas & Saccucci 1990); Champ & Woodall 1987, Table 1 (WE rules).

mod calibration;
mod markov;
mod simulation;

use serde::Serialize;

pub use calibration::{calibrate, Calibrated, Family};
pub use markov::{cusum_one_sided, ewma_markov, exact, Exact, MARKOV_STATES};
pub use simulation::{simulate, Simulated};

/// A chart setting to analyse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "chart", rename_all = "snake_case")]
pub enum Spec {
    /// Shewhart individuals / X-bar, rule 1 only, at ±limit·σ.
    Shewhart { limit: f64 },
    /// Shewhart with Western Electric rules 1–4 (rule 1 at ±limit·σ).
    We { limit: f64 },
    /// EWMA with weight λ and limits ±L·sd(z_t) (exact) or ±L·sd(z_∞) (asymptotic).
    Ewma {
        lambda: f64,
        limit: f64,
        exact: bool,
    },
    /// Two-sided tabular CUSUM with reference value k and decision interval h (σ units).
    Cusum { k: f64, h: f64 },
}

impl Spec {
    /// Checks the parameters (the CLI reports this instead of running nonsense).
    pub fn validate(&self) -> Result<(), String> {
        let finite = |name: &str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("--{name} must be a finite number, got {v}"))
            }
        };
        match *self {
            Spec::Shewhart { limit } => {
                finite("limit", limit)?;
                (limit > 0.0)
                    .then_some(())
                    .ok_or_else(|| format!("--limit must be > 0, got {limit}"))
            }
            Spec::We { limit } => {
                finite("limit", limit)?;
                (limit > 2.0).then_some(()).ok_or_else(|| {
                    format!("--limit must be > 2 with the Western Electric rules (rule 2 uses 2σ), got {limit}")
                })
            }
            Spec::Ewma { lambda, limit, .. } => {
                finite("lambda", lambda)?;
                finite("limit", limit)?;
                if !(lambda > 0.0 && lambda <= 1.0) {
                    return Err(format!("--lambda must be in (0, 1], got {lambda}"));
                }
                (limit > 0.0)
                    .then_some(())
                    .ok_or_else(|| format!("--limit must be > 0, got {limit}"))
            }
            Spec::Cusum { k, h } => {
                finite("k", k)?;
                finite("h", h)?;
                if k < 0.0 {
                    return Err(format!("--k must be >= 0, got {k}"));
                }
                (h > 0.0)
                    .then_some(())
                    .ok_or_else(|| format!("--h must be > 0, got {h}"))
            }
        }
    }
}

/// What `inferwatch spc arl` prints: the setting, the simulation, and the exact values.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArlReport {
    pub spec: Spec,
    pub shift: f64,
    pub seed: u64,
    pub simulated: Simulated,
    pub exact: Option<Exact>,
}

/// Run `spc arl`: simulate and compute the exact values beside it.
pub fn arl_report(spec: Spec, shift: f64, runs: u64, seed: u64, max_len: u64) -> ArlReport {
    ArlReport {
        spec,
        shift,
        seed,
        simulated: simulate(&spec, shift, runs, seed, max_len),
        exact: exact(&spec, shift),
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Spec::Shewhart { limit } => write!(f, "shewhart L={limit}"),
            Spec::We { limit } => write!(f, "shewhart + Western Electric rules 1-4, L={limit}"),
            Spec::Ewma {
                lambda,
                limit,
                exact,
            } => write!(
                f,
                "ewma lambda={lambda} L={limit} ({} limits)",
                if exact { "exact" } else { "asymptotic" }
            ),
            Spec::Cusum { k, h } => write!(f, "cusum k={k} h={h} (two-sided)"),
        }
    }
}

impl std::fmt::Display for ArlReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.simulated;
        writeln!(
            f,
            "{}, shift {}σ, {} runs, seed {}",
            self.spec, self.shift, s.runs, self.seed
        )?;
        let sim_arl = format!("{:.2} (95% CI {:.2} .. {:.2})", s.arl, s.ci_low, s.ci_high);
        let (ex_arl, ex_med, method) = match &self.exact {
            Some(e) => (
                format!("{:.2}", e.arl),
                e.median.map_or("-".to_string(), |m| m.to_string()),
                e.method,
            ),
            None => ("-".into(), "-".into(), "none"),
        };
        writeln!(f, "{:<20}{:<44}exact", "", "simulated")?;
        writeln!(f, "{:<20}{:<44}{}", "ARL", sim_arl, ex_arl)?;
        writeln!(f, "{:<20}{:<44}{}", "median run length", s.median, ex_med)?;
        if s.censored > 0 {
            writeln!(
                f,
                "warning: {} runs reached --max-len without a signal; the simulated ARL is a lower bound",
                s.censored
            )?;
        }
        write!(f, "exact method: {method}")
    }
}
