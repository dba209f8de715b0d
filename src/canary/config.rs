//! `[[canary]]` probes, `[accuracy]` (the windows of every accuracy and agreement ratio) and
//! `[cold_start]`: plain data, validated in `config/load/answers.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[[canary]]`: one golden set sent to the upstream on a schedule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ProbeConfig {
    /// The `probe` label: `[a-z0-9_]+`, unique.
    pub name: String,
    /// The route whose protocol and `[proxy.routes.prediction]` rule read the answers (its
    /// protocol must not be `opaque`).
    pub route: String,
    /// Request path for golden rows that do not give their own `path`, e.g.
    /// `/v2/models/iris/infer`.
    pub path: String,
    /// HTTP method of every probe request.
    pub method: String,
    /// The golden set: JSON Lines, one `{"request": ..., "expect": {...}}` per line (see
    /// `src/canary/golden.rs`). Read at start-up.
    pub golden_file: String,
    /// Where probes go; empty: `proxy.upstream` (straight to the model server, not through the
    /// proxy, so probes never count as live traffic).
    pub upstream: String,
    /// Seconds between the starts of two rounds (one round = every golden row, one at a time).
    pub interval_secs: f64,
    /// Each wait is `interval_secs` plus a uniform random extra in `[0, jitter_secs]`, so a fleet
    /// of sidecars does not probe in lockstep.
    pub jitter_secs: f64,
    /// Per golden request: connect to last byte.
    pub timeout_secs: f64,
    /// Static request headers (not secrets: the config text is often world-readable).
    pub headers: BTreeMap<String, String>,
    /// Secret request headers: header name → file whose content (trimmed) is the whole value,
    /// e.g. `authorization = "/run/secrets/probe-auth"` holding `Bearer sk-...`.
    pub header_files: BTreeMap<String, String>,
    /// Numeric checks pass when `|got - want| <= abs_tolerance + rel_tolerance * |want|`
    /// (element-wise), unless a golden row gives its own tolerances.
    pub abs_tolerance: f64,
    pub rel_tolerance: f64,
    /// `inferwatch_probe_success` is 1 when the last round answered at least this share of its
    /// rows correctly (errors count as wrong), in [0, 1].
    pub success_ratio: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            route: String::new(),
            path: String::new(),
            method: "POST".into(),
            golden_file: String::new(),
            upstream: String::new(),
            // A minute: a broken model is noticed within a scrape interval or two, and a golden
            // set of tens of rows adds well under 1 request/s.
            interval_secs: 60.0,
            // 10 s spread over a minute de-synchronises a fleet without blurring the schedule.
            jitter_secs: 10.0,
            // A probe is a small request; 10 s only trips on a hung or badly overloaded server.
            timeout_secs: 10.0,
            headers: BTreeMap::new(),
            header_files: BTreeMap::new(),
            // Float32 models on different hardware differ around 1e-6 relative; these pass
            // such noise and fail a real change of answer.
            abs_tolerance: 1e-6,
            rel_tolerance: 1e-4,
            // A golden set is chosen to be answered right; any miss is news.
            success_ratio: 1.0,
        }
    }
}

/// `[accuracy]`: the windows of `inferwatch_probe_accuracy_ratio`,
/// `inferwatch_shadow_agreement_ratio` and `inferwatch_labeled_accuracy_ratio`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AccuracyConfig {
    /// Window lengths in seconds (each a multiple of `slot_secs`); one `window` label each.
    pub windows_secs: Vec<u64>,
    /// Granularity by which the windows slide.
    pub slot_secs: u64,
}

impl Default for AccuracyConfig {
    fn default() -> Self {
        Self {
            // An hour shows a trend with enough canary rounds (60) to mean something; a day
            // is the baseline feedback labels usually need (they arrive late and sparse).
            windows_secs: vec![3600, 86400],
            // A minute: at most 1/60 of an hour's window is "partially in".
            slot_secs: 60,
        }
    }
}

/// `[cold_start]`: the first live request after an idle period.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ColdStartConfig {
    /// A live request arriving after a route has been quiet this long has its latency recorded
    /// in `inferwatch_first_request_after_idle_seconds` (scaled-to-zero or evicted models
    /// answer their first request slowly). 0 disables.
    pub idle_gap_secs: f64,
}

impl Default for ColdStartConfig {
    fn default() -> Self {
        Self {
            // Five minutes is where model servers and GPU clocks commonly start to idle down.
            idle_gap_secs: 300.0,
        }
    }
}
