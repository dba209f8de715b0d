//! The `[quality]` config section: charts (`[[quality.charts]]`), drift tests
//! (`[[quality.drift]]`), the signal queue and the baseline state file, with the rules on them;
//! every key is documented in `config/inferwatch.toml`.

use serde::{Deserialize, Serialize};

use crate::config::checks::{is_name, secs_positive};
use crate::config::validator::Validator;

/// Pull signal: a route's failed-request fraction per subgroup interval (p-chart only).
pub const REQUEST_ERROR: &str = "request_error";
/// Pull signal: a route's windowed p99 request latency, sampled once per subgroup interval.
pub const LATENCY_P99: &str = "latency_p99";

/// Largest queue accepted: a million observations (16 MiB) is already far more than an engine
/// tick can fall behind by.
pub const MAX_QUEUE: usize = 1_000_000;

/// Most bins a PSI may use: more bins than that leave too few reference values per bin.
pub const MAX_BINS: usize = 100;

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

/// The queue, each chart's own keys and each drift test. (That a chart's `request_error:<route>`
/// or `latency_p99:<route>` names a configured route is a rule across sections, in `config`.)
pub fn validate(v: &mut Validator<'_>, q: &QualityConfig) {
    if !(1..=MAX_QUEUE).contains(&q.queue_capacity) {
        v.report(
            "quality.queue_capacity",
            format!(
                "must be between 1 and {MAX_QUEUE}, got {}",
                q.queue_capacity
            ),
        );
    }
    for (i, c) in q.charts.iter().enumerate() {
        let first = q.charts[..i].iter().position(|o| o.name == c.name);
        chart(v, i, c, first);
    }
    for (i, d) in q.drift.iter().enumerate() {
        let first = q.drift[..i].iter().position(|o| o.signal == d.signal);
        drift(v, i, d, first);
    }
}

fn finite_positive(x: f64) -> Option<String> {
    (!(x > 0.0 && x.is_finite())).then(|| format!("must be a finite number > 0, got {x}"))
}

fn chart(v: &mut Validator<'_>, i: usize, c: &ChartConfig, first: Option<usize>) {
    let at = |key: &str| format!("quality.charts[{i}].{key}");
    if c.name.is_empty() {
        v.report(
            &at("name"),
            "missing chart name, expected [a-z0-9_]+".into(),
        );
    } else if !is_name(&c.name) {
        v.report(
            &at("name"),
            format!("invalid chart name {:?}, expected [a-z0-9_]+", c.name),
        );
    } else if let Some(j) = first {
        v.report(
            &at("name"),
            format!(
                "duplicate chart name {:?} (first used by quality.charts[{j}])",
                c.name
            ),
        );
    }

    if c.signal.is_empty() {
        v.report(
            &at("signal"),
            "missing signal, expected request_error:<route>, latency_p99:<route> or a pushed signal name".into(),
        );
    } else if !is_signal_name(&c.signal) {
        v.report(
            &at("signal"),
            format!(
                "invalid signal {:?}, expected [a-z0-9_]+ or kind:route such as request_error:infer",
                c.signal
            ),
        );
    } else {
        match parse_signal(&c.signal) {
            SignalRef::RequestError(_) => {
                if c.kind != ChartKind::P && v.clean(&[&at("kind")]) {
                    v.report(
                        &at("kind"),
                        format!(
                            "{} is a failed-request fraction: kind must be \"p\", got {:?}",
                            c.signal,
                            c.kind.as_str()
                        ),
                    );
                }
            }
            SignalRef::LatencyP99(_) => {
                if c.kind == ChartKind::P && v.clean(&[&at("kind")]) {
                    v.report(
                        &at("kind"),
                        format!(
                            "{} is a continuous signal: kind \"p\" is for 0/1 signals",
                            c.signal
                        ),
                    );
                }
            }
            SignalRef::Pushed(_) => {}
        }
    }

    v.check(
        &at("subgroup_interval_secs"),
        secs_positive(c.subgroup_interval_secs),
    );
    let fixed = matches!(
        (c.kind, c.center, c.sigma),
        (ChartKind::P, Some(_), _) | (_, Some(_), Some(_))
    );
    if !fixed && c.phase1_subgroups < 2 {
        v.report(
            &at("phase1_subgroups"),
            format!(
                "must be at least 2 (sigma is estimated from the spread between subgroups), got {}",
                c.phase1_subgroups
            ),
        );
    }
    match (c.kind, c.center, c.sigma) {
        (ChartKind::P, Some(p), _) if !(p > 0.0 && p < 1.0) => v.report(
            &at("center"),
            format!("a p chart's center is a fraction in (0, 1), got {p}"),
        ),
        (ChartKind::P, _, Some(_)) => v.report(
            &at("sigma"),
            "not used by a p chart (its sigma follows from center), remove it".into(),
        ),
        (_, Some(m), _) if !m.is_finite() => {
            v.report(&at("center"), format!("must be a finite number, got {m}"))
        }
        (ChartKind::P, _, _) => {}
        (_, Some(_), None) => v.report(
            &at("sigma"),
            "missing: a fixed baseline needs both center and sigma (or neither, to learn them in Phase I)".into(),
        ),
        (_, None, Some(_)) => v.report(
            &at("center"),
            "missing: a fixed baseline needs both center and sigma (or neither, to learn them in Phase I)".into(),
        ),
        _ => {}
    }
    if let (false, Some(s)) = (c.kind == ChartKind::P, c.sigma) {
        v.check(&at("sigma"), finite_positive(s));
    }

    let we = c.we_two_of_three || c.we_four_of_five || c.we_eight_in_a_row;
    if c.kind == ChartKind::Shewhart && we && c.limit.is_finite() && c.limit <= 2.0 {
        v.report(
            &at("limit"),
            format!(
                "must be > 2 with the Western Electric rules on (rule 2 uses 2 sigma), got {}",
                c.limit
            ),
        );
    } else {
        v.check(&at("limit"), finite_positive(c.limit));
    }
    if !(c.lambda > 0.0 && c.lambda <= 1.0) {
        v.report(
            &at("lambda"),
            format!("must be in (0, 1], got {}", c.lambda),
        );
    }
    if !(c.k >= 0.0 && c.k.is_finite()) {
        v.report(
            &at("k"),
            format!("must be a finite number >= 0, got {}", c.k),
        );
    }
    v.check(&at("h"), finite_positive(c.h));
    if c.kind != ChartKind::Shewhart {
        for (key, on) in [
            ("we_two_of_three", c.we_two_of_three),
            ("we_four_of_five", c.we_four_of_five),
            ("we_eight_in_a_row", c.we_eight_in_a_row),
        ] {
            if on && v.clean(&[&at("kind")]) {
                v.report(
                    &at(key),
                    format!(
                        "Western Electric rules apply to kind \"shewhart\" only, got kind {:?}",
                        c.kind.as_str()
                    ),
                );
            }
        }
    }
    if c.clear_after_subgroups < 1 {
        v.report(
            &at("clear_after_subgroups"),
            "must be at least 1, got 0".into(),
        );
    }
}

fn drift(v: &mut Validator<'_>, i: usize, d: &DriftConfig, first: Option<usize>) {
    let at = |key: &str| format!("quality.drift[{i}].{key}");
    if d.signal.is_empty() {
        v.report(
            &at("signal"),
            "missing signal, expected a pushed signal name".into(),
        );
    } else if !is_signal_name(&d.signal) {
        v.report(
            &at("signal"),
            format!("invalid signal {:?}, expected [a-z0-9_]+", d.signal),
        );
    } else if !matches!(parse_signal(&d.signal), SignalRef::Pushed(_)) {
        v.report(
            &at("signal"),
            format!(
                "{:?} is a chart-only pull signal; drift tests read pushed signals",
                d.signal
            ),
        );
    } else if let Some(j) = first {
        v.report(
            &at("signal"),
            format!(
                "duplicate drift test of {:?} (first at quality.drift[{j}])",
                d.signal
            ),
        );
    }
    let bins_ok = (2..=MAX_BINS).contains(&d.bins);
    if !bins_ok {
        v.report(
            &at("bins"),
            format!("must be between 2 and {MAX_BINS}, got {}", d.bins),
        );
    }
    let least = if bins_ok && v.clean(&[&at("bins")]) {
        (5 * d.bins).max(10)
    } else {
        10
    };
    for (key, n) in [
        ("reference_size", d.reference_size),
        ("window_size", d.window_size),
    ] {
        if n < least {
            v.report(
                &at(key),
                format!("must be at least {least} (5 per bin, 10 at least), got {n}"),
            );
        }
    }
    if !(d.alpha > 0.0 && d.alpha < 0.5) {
        v.report(
            &at("alpha"),
            format!("must be in (0, 0.5), got {}", d.alpha),
        );
    }
}
