//! `[latency]`: histogram buckets and windowed quantiles, with the reasons for their defaults,
//! and the rules on them.

use serde::{Deserialize, Serialize};

use crate::config::validator::Validator;

/// Most histogram buckets per series: each bucket is a time series per route and model.
pub const MAX_BUCKETS: usize = 500;

/// `[latency]`: histograms and windowed quantiles.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LatencyConfig {
    /// Explicit histogram bucket upper bounds in seconds. Empty = geometric buckets from
    /// `bucket_min_secs` to `bucket_max_secs` with ratio `bucket_factor`.
    pub buckets: Vec<f64>,
    /// Smallest geometric bucket bound, in seconds (> 0).
    pub bucket_min_secs: f64,
    /// Largest geometric bucket bound, in seconds (> `bucket_min_secs`).
    pub bucket_max_secs: f64,
    /// Ratio between consecutive geometric bounds (> 1); at most 500 buckets may result.
    pub bucket_factor: f64,
    /// Sliding windows for quantiles, in seconds; each a multiple of `slot_secs`.
    pub windows_secs: Vec<u64>,
    /// Granularity of the sliding windows.
    pub slot_secs: u64,
    /// Quantiles exported, each in (0, 1).
    pub quantiles: Vec<f64>,
    /// Relative accuracy of the quantile sketch (0.01 = 1%).
    pub relative_accuracy: f64,
    /// Confidence of the upper bound on each quantile.
    pub confidence: f64,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        Self {
            buckets: Vec::new(),
            // 0.5 ms to 60 s at 15% ratio: 85 buckets, each at most 15% wide relative to its
            // bound, so histogram_quantile over a fleet stays within ~7.5% of the truth.
            bucket_min_secs: 0.0005,
            bucket_max_secs: 60.0,
            bucket_factor: 1.15,
            windows_secs: vec![60, 600],
            slot_secs: 10,
            quantiles: vec![0.5, 0.9, 0.95, 0.99, 0.999],
            relative_accuracy: 0.01,
            // MLPerf LoadGen's early-stopping confidence.
            confidence: 0.99,
        }
    }
}

/// Number of geometric buckets from `min` to `max` with ratio `factor` (both ends included).
pub fn geometric_bucket_count(min: f64, max: f64, factor: f64) -> f64 {
    ((max / min).ln() / factor.ln()).ceil() + 1.0
}

/// Bucket bounds (explicit or geometric), windows against the slot, quantiles, the sketch's
/// accuracy and the bounds' confidence.
pub fn validate(v: &mut Validator<'_>, l: &LatencyConfig) {
    if l.buckets.len() > MAX_BUCKETS {
        v.report(
            "latency.buckets",
            format!(
                "too many buckets ({}), at most {MAX_BUCKETS}",
                l.buckets.len()
            ),
        );
    }
    let mut previous: Option<(usize, f64)> = None;
    for (i, &b) in l.buckets.iter().enumerate() {
        let path = format!("latency.buckets[{i}]");
        if !(b > 0.0 && b.is_finite()) {
            v.report(
                &path,
                format!("must be a finite number of seconds > 0, got {b}"),
            );
            continue;
        }
        if let Some((j, prev)) = previous {
            if b <= prev && v.clean(&[&format!("latency.buckets[{j}]")]) {
                v.report(
                    &path,
                    format!("must be greater than latency.buckets[{j}] ({prev}), buckets must be strictly increasing"),
                );
            }
        }
        previous = Some((i, b));
    }

    let min_ok = l.bucket_min_secs > 0.0 && l.bucket_min_secs.is_finite();
    if !min_ok {
        v.report(
            "latency.bucket_min_secs",
            format!(
                "must be a finite number of seconds > 0, got {}",
                l.bucket_min_secs
            ),
        );
    }
    let mut max_ok = l.bucket_max_secs.is_finite();
    if !max_ok {
        v.report(
            "latency.bucket_max_secs",
            format!(
                "must be a finite number of seconds, got {}",
                l.bucket_max_secs
            ),
        );
    } else if min_ok
        && v.clean(&["latency.bucket_min_secs"])
        && l.bucket_max_secs <= l.bucket_min_secs
    {
        max_ok = false;
        v.report(
            "latency.bucket_max_secs",
            format!(
                "must be greater than bucket_min_secs ({}), got {}",
                l.bucket_min_secs, l.bucket_max_secs
            ),
        );
    }
    let factor_ok = l.bucket_factor > 1.0 && l.bucket_factor.is_finite();
    if !factor_ok {
        v.report(
            "latency.bucket_factor",
            format!("must be a finite number > 1, got {}", l.bucket_factor),
        );
    }
    let geometry = [
        "latency.bucket_min_secs",
        "latency.bucket_max_secs",
        "latency.bucket_factor",
    ];
    if min_ok && max_ok && factor_ok && v.clean(&geometry) {
        let count = geometric_bucket_count(l.bucket_min_secs, l.bucket_max_secs, l.bucket_factor);
        if count > MAX_BUCKETS as f64 {
            v.report(
                "latency.bucket_factor",
                format!(
                    "generates {count:.0} buckets from bucket_min_secs to bucket_max_secs, at most {MAX_BUCKETS}; raise bucket_factor or narrow the range"
                ),
            );
        }
    }

    if l.slot_secs < 1 {
        v.report(
            "latency.slot_secs",
            format!("must be at least 1 second, got {}", l.slot_secs),
        );
    }
    let slot = (l.slot_secs >= 1 && v.clean(&["latency.slot_secs"])).then_some(l.slot_secs);
    if l.windows_secs.is_empty() {
        v.report(
            "latency.windows_secs",
            "must not be empty, expected window lengths in seconds such as [60, 600]".into(),
        );
    }
    for (i, &w) in l.windows_secs.iter().enumerate() {
        let path = format!("latency.windows_secs[{i}]");
        if w == 0 {
            v.report(&path, "must be > 0 seconds, got 0".into());
        } else if let Some(first) = l.windows_secs[..i].iter().position(|&x| x == w) {
            v.report(
                &path,
                format!("duplicate window {w} (first at latency.windows_secs[{first}])"),
            );
        } else if let Some(slot) = slot.filter(|s| w % s != 0) {
            v.report(
                &path,
                format!("must be a multiple of slot_secs ({slot}), got {w}"),
            );
        }
    }

    for (i, &q) in l.quantiles.iter().enumerate() {
        let path = format!("latency.quantiles[{i}]");
        if !(q > 0.0 && q < 1.0) {
            v.report(
                &path,
                format!("must be between 0 and 1 (exclusive), got {q}"),
            );
        } else if let Some(first) = l.quantiles[..i].iter().position(|&x| x == q) {
            v.report(
                &path,
                format!("duplicate quantile {q} (first at latency.quantiles[{first}])"),
            );
        }
    }

    let ra = l.relative_accuracy;
    v.check(
        "latency.relative_accuracy",
        (!(ra > 0.0 && ra <= 0.1)).then(|| format!("must be > 0 and <= 0.1, got {ra}")),
    );
    let c = l.confidence;
    v.check(
        "latency.confidence",
        (!(c > 0.5 && c < 1.0)).then(|| format!("must be > 0.5 and < 1, got {c}")),
    );
}
