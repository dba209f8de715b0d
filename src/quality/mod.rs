//! Silent-drift alarms: statistical process control charts with known false-alarm rates, drift
//! tests against a reference window, and the engine that feeds them from signals.
//!
//! Map of the module:
//! - [`shewhart`], [`ewma`], [`cusum`], [`pchart`]: the charts, one file each, pure (no clock, no
//!   I/O). Shewhart, EWMA and CUSUM read *standardized* subgroup statistics (`(x̄ - μ)/(σ/√n)`),
//!   so one implementation serves every signal and the run-length tables apply unchanged.
//! - [`phase`]: Phase I (estimate centre and sigma from the first subgroups) and the baseline state
//!   file that lets a restart skip re-learning on possibly drifted data.
//! - [`subgroup`]: rational subgroups for continuous signals (by count or by time interval).
//! - [`drift`]: PSI with fixed reference bins, two-sample KS, chi-square for categories.
//! - [`arl`]: run-length analysis (`inferwatch spc arl|calibrate`): simulation of the same chart
//!   code the daemon runs, beside exact values (closed form, Markov chains).
//! - [`cli`]: the `spc` subcommands' flags and output (the only part of the module that prints).
//! - [`signal`]: the bounded queue other modules push observations into ([`SignalSender`]).
//! - [`engine`]: the task that drains the queue and ends subgroup intervals, dispatching to
//!   `chart_runtime` (one chart: subgroups, Phase I, the chart, its alarm and metrics),
//!   `drift_runtime` (one drift test) and `pull` (the `request_error` and `latency_p99` signals,
//!   read through [`RouteFigures`]); the metrics are in [`metrics`].
//! - [`config`]: the `[quality]` config section.
//!
//! After a chart signals it restarts (statistic back to the centre, rule history cleared), as the
//! published run-length tables assume; so in control, `rate(inferwatch_spc_alarms_total)` is one
//! per ARL0 subgroups, and the alarm gauge is held on for `clear_after_subgroups` after the last
//! signal so that a sustained shift (which re-signals every ~ARL1 subgroups) reads as one alarm.

pub mod arl;
mod chart_runtime;
pub mod cli;
pub mod config;
pub mod cusum;
pub mod drift;
mod drift_runtime;
pub mod engine;
pub mod ewma;
pub mod figures;
pub mod metrics;
pub mod pchart;
pub mod phase;
mod pull;
pub mod shewhart;
pub mod signal;
pub mod subgroup;

pub use engine::Engine;
pub use figures::{NoRoutes, RouteFigures};
pub use signal::SignalSender;

use serde::{Deserialize, Serialize};

/// Errors at this module's boundary.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("state file {path}: {source}")]
    StateIo {
        path: String,
        source: std::io::Error,
    },
    #[error("state file {path}: {source}")]
    StateFormat {
        path: String,
        source: serde_json::Error,
    },
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("{0}")]
    Invalid(String),
}

/// A rule that made a chart signal. Its label is the `rule` label of
/// `inferwatch_spc_alarms_total` (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rule {
    /// A point beyond a control limit (Western Electric rule 1 on a Shewhart chart; the EWMA and
    /// p-chart limits).
    Limit,
    /// Western Electric rule 2: two of three consecutive points beyond 2σ on one side.
    We2,
    /// Western Electric rule 3: four of five consecutive points beyond 1σ on one side.
    We3,
    /// Western Electric rule 4: eight consecutive points on one side of the centre line.
    We4,
    /// Tabular CUSUM: the upper sum passed h.
    CusumUpper,
    /// Tabular CUSUM: the lower sum passed h.
    CusumLower,
}

impl Rule {
    pub const ALL: [Rule; 6] = [
        Rule::Limit,
        Rule::We2,
        Rule::We3,
        Rule::We4,
        Rule::CusumUpper,
        Rule::CusumLower,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Limit => "limit",
            Rule::We2 => "we2",
            Rule::We3 => "we3",
            Rule::We4 => "we4",
            Rule::CusumUpper => "cusum_upper",
            Rule::CusumLower => "cusum_lower",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The rules that fired at one point (a small bit set: a point can break several at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rules(u8);

impl Rules {
    pub const NONE: Rules = Rules(0);

    pub fn with(self, rule: Rule) -> Rules {
        Rules(self.0 | rule.bit())
    }

    pub fn contains(self, rule: Rule) -> bool {
        self.0 & rule.bit() != 0
    }

    pub fn any(self) -> bool {
        self.0 != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Rule> {
        Rule::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

/// One plotted point: the statistic, the centre line and limits it was judged against, and the
/// rules it broke (none = in control).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub statistic: f64,
    pub center: f64,
    pub upper: f64,
    pub lower: f64,
    pub fired: Rules,
}

/// A chart over standardized subgroup statistics (in control: mean 0, standard deviation 1).
/// Implemented by [`shewhart::Shewhart`], [`ewma::Ewma`] and [`cusum::Cusum`]; the daemon and
/// `spc arl` both drive charts through this trait.
pub trait Chart {
    /// Plot one standardized value. After a signal the chart restarts.
    fn observe(&mut self, z: f64) -> Point;
    /// Back to the state of a fresh chart.
    fn reset(&mut self);
}

/// Standard normal CDF via statrs' erfc (accurate in the far tails, unlike `1 - Φ`).
pub(crate) fn phi(x: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-x / std::f64::consts::SQRT_2)
}
