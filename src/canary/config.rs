//! `[[canary]]` probes, `[accuracy]` (the windows of every accuracy and agreement ratio) and
//! `[cold_start]`: defaults with their reasons, and the rules on them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::checks::{
    http_headers, secs_non_negative, secs_positive, tolerance, unique_name, upstream_problem,
};
use crate::config::validator::Validator;

/// Most ratio windows: each is a series per probe, target or route and model.
pub const MAX_WINDOWS: usize = 8;

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

/// Each probe's own keys. (That its route exists and is tapped is a rule across sections, in
/// `config`.)
pub fn validate(v: &mut Validator<'_>, probes: &[ProbeConfig]) {
    for (i, p) in probes.iter().enumerate() {
        let at = |key: &str| format!("canary[{i}].{key}");
        let first = probes[..i].iter().position(|o| o.name == p.name);
        unique_name(
            v,
            &at("name"),
            &p.name,
            first.map(|j| format!("canary[{j}]")),
        );
        if !p.path.is_empty() && !p.path.starts_with('/') {
            v.report(&at("path"), format!("must start with /, got {:?}", p.path));
        }
        if !matches!(p.method.as_str(), "GET" | "POST" | "PUT") {
            v.report(
                &at("method"),
                format!("expected GET, POST or PUT, got {:?}", p.method),
            );
        }
        if p.golden_file.is_empty() {
            v.report(
                &at("golden_file"),
                "missing golden set file (JSON Lines)".into(),
            );
        }
        if !p.upstream.is_empty() {
            v.check(&at("upstream"), upstream_problem(&p.upstream));
        }
        v.check(&at("interval_secs"), secs_positive(p.interval_secs));
        v.check(&at("jitter_secs"), secs_non_negative(p.jitter_secs, ""));
        v.check(&at("timeout_secs"), secs_positive(p.timeout_secs));
        http_headers(v, &format!("canary[{i}]"), &p.headers, &p.header_files);
        v.check(&at("abs_tolerance"), tolerance(p.abs_tolerance));
        v.check(&at("rel_tolerance"), tolerance(p.rel_tolerance));
        if !(0.0..=1.0).contains(&p.success_ratio) {
            v.report(
                &at("success_ratio"),
                format!("must be between 0 and 1, got {}", p.success_ratio),
            );
        }
    }
}

/// `[accuracy]`: 1 to [`MAX_WINDOWS`] distinct windows, each a multiple of the slot.
pub fn validate_accuracy(v: &mut Validator<'_>, a: &AccuracyConfig) {
    if a.slot_secs < 1 {
        v.report(
            "accuracy.slot_secs",
            format!("must be at least 1, got {}", a.slot_secs),
        );
    }
    if a.windows_secs.is_empty() || a.windows_secs.len() > MAX_WINDOWS {
        v.report(
            "accuracy.windows_secs",
            format!(
                "expected 1 to {MAX_WINDOWS} windows, got {}",
                a.windows_secs.len()
            ),
        );
    }
    for (i, &w) in a.windows_secs.iter().enumerate() {
        let at = format!("accuracy.windows_secs[{i}]");
        if w == 0 || (a.slot_secs > 0 && w % a.slot_secs != 0) {
            v.report(
                &at,
                format!(
                    "must be a positive multiple of accuracy.slot_secs ({}), got {w}",
                    a.slot_secs
                ),
            );
        } else if a.windows_secs[..i].contains(&w) {
            v.report(&at, format!("duplicate window {w}"));
        }
    }
}

/// `[cold_start]`
pub fn validate_cold_start(v: &mut Validator<'_>, c: &ColdStartConfig) {
    v.check(
        "cold_start.idle_gap_secs",
        secs_non_negative(c.idle_gap_secs, " (0 disables)"),
    );
}
