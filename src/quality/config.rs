//! The `[quality]` config section: charts (`[[quality.charts]]`), drift tests
//! (`[[quality.drift]]`), the signal queue and the baseline state file. Plain data; validated in
//! `config/load/quality.rs`; every key is documented in `config/inferwatch.toml`.

use serde::{Deserialize, Serialize};

/// Pull signal: a route's failed-request fraction per subgroup interval (p-chart only).
pub const REQUEST_ERROR: &str = "request_error";
/// Pull signal: a route's windowed p99 request latency, sampled once per subgroup interval.
pub const LATENCY_P99: &str = "latency_p99";

/// `[quality]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct QualityConfig {
    /// Observations pushed by other modules that may wait in the queue before being dropped.
    pub queue_capacity: usize,
    /// JSON file holding learned baselines and drift references; empty = not saved.
    pub state_file: String,
    pub charts: Vec<ChartConfig>,
    pub drift: Vec<DriftConfig>,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            // 4096 observations are seconds of traffic at thousands of requests per second:
            // room for a slow engine tick, small enough (64 KiB) to never matter for memory.
            queue_capacity: 4096,
            state_file: String::new(),
            charts: Vec::new(),
            drift: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    #[default]
    Shewhart,
    Ewma,
    Cusum,
    P,
}

impl ChartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChartKind::Shewhart => "shewhart",
            ChartKind::Ewma => "ewma",
            ChartKind::Cusum => "cusum",
            ChartKind::P => "p",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum EwmaLimits {
    #[default]
    Exact,
    Asymptotic,
}

/// `[[quality.charts]]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ChartConfig {
    /// The `chart` label: `[a-z0-9_]+`, unique.
    pub name: String,
    /// The signal charted: `request_error:<route>`, `latency_p99:<route>`, or a pushed signal.
    pub signal: String,
    pub kind: ChartKind,
    /// Observations per subgroup for pushed continuous signals; 0 = one subgroup per interval.
    pub subgroup_size: u64,
    /// Interval that closes a subgroup (and at which pull signals are sampled), in seconds.
    pub subgroup_interval_secs: f64,
    /// Subgroups Phase I learns the centre and sigma from (when `center`/`sigma` are not set).
    pub phase1_subgroups: u64,
    /// Fixed in-control mean (a p-chart: fraction); with `sigma` (not for p) it skips Phase I.
    pub center: Option<f64>,
    /// Fixed in-control standard deviation of one observation.
    pub sigma: Option<f64>,
    /// Control limit in sigma units: Shewhart rule 1, EWMA's L, the p-chart's per-side α = Φ(−L).
    pub limit: f64,
    /// EWMA weight λ.
    pub lambda: f64,
    pub ewma_limits: EwmaLimits,
    /// CUSUM reference value k and decision interval h, in sigma units.
    pub k: f64,
    pub h: f64,
    /// Western Electric rules 2, 3, 4 (Shewhart only; rule 1 is always on).
    pub we_two_of_three: bool,
    pub we_four_of_five: bool,
    pub we_eight_in_a_row: bool,
    /// Subgroups without a signal before the alarm gauge goes back to 0.
    pub clear_after_subgroups: u64,
}

impl Default for ChartConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            signal: String::new(),
            kind: ChartKind::Shewhart,
            // Subgroup by time: pushed signals arrive at the traffic's pace, not in fives.
            subgroup_size: 0,
            // 10 s: enough requests per subgroup for a stable mean or fraction at tens of
            // requests per second, and an alarm within about a minute of a shift.
            subgroup_interval_secs: 10.0,
            // Montgomery's 20-25 preliminary subgroups: sigma estimated to within ~15%.
            phase1_subgroups: 25,
            center: None,
            sigma: None,
            // 3σ: ARL0 370 on a Shewhart chart, the classical false-alarm rate.
            limit: 3.0,
            // λ = 0.1 (with L ≈ 2.8) is Lucas & Saccucci's choice for shifts of about 1σ.
            lambda: 0.1,
            ewma_limits: EwmaLimits::Exact,
            // k = 0.5, h = 5: tuned to a 1σ shift, ARL0 465, ARL1 10.4 (Montgomery Table 9.3).
            k: 0.5,
            h: 5.0,
            // Off: rules 2-4 together cut ARL0 from 370 to 92 (Champ & Woodall 1987).
            we_two_of_three: false,
            we_four_of_five: false,
            we_eight_in_a_row: false,
            // 20 subgroups: longer than a 1σ shift's ARL1 (about 10 for the defaults), so a
            // sustained shift reads as one alarm; short against ARL0 (370+).
            clear_after_subgroups: 20,
        }
    }
}

/// `[[quality.drift]]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct DriftConfig {
    /// The signal tested (its label value); one drift entry per signal.
    pub signal: String,
    /// Values are class indices (0, 1, 2, ...): chi-square test instead of PSI and KS.
    pub categorical: bool,
    /// Observations in the reference window (the first ones seen, or loaded from state_file).
    pub reference_size: usize,
    /// Observations per current window; each full window is tested, then a new one starts.
    pub window_size: usize,
    /// PSI bins (from the reference's quantiles).
    pub bins: usize,
    /// False-alarm probability per window behind the PSI threshold.
    pub alpha: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            signal: String::new(),
            categorical: false,
            // 1000: KS detects a shift of ~0.1σ with power ~50% at α = 0.01, and the PSI
            // threshold falls to ~0.04 with 10 bins.
            reference_size: 1000,
            window_size: 1000,
            // Deciles: the usual PSI binning, each bin 100 reference values at the default size.
            bins: 10,
            // 1%: at one window per few minutes, a false drift alarm every few hours at most.
            alpha: 0.01,
        }
    }
}

/// A signal name split into its kind: a pull signal on a route, or a pushed signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalRef<'a> {
    RequestError(&'a str),
    LatencyP99(&'a str),
    Pushed(&'a str),
}

pub fn parse_signal(name: &str) -> SignalRef<'_> {
    match name.split_once(':') {
        Some((REQUEST_ERROR, route)) => SignalRef::RequestError(route),
        Some((LATENCY_P99, route)) => SignalRef::LatencyP99(route),
        _ => SignalRef::Pushed(name),
    }
}

/// Whether `name` is a valid signal name: `[a-z0-9_]+`, optionally `:` and `[a-z0-9_]+` again.
pub fn is_signal_name(name: &str) -> bool {
    let part = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    match name.split_once(':') {
        Some((a, b)) => part(a) && part(b),
        None => part(name),
    }
}
