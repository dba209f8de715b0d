//! `[inspection]`: how much the tap copies and queues for the protocol adapters, and how many
//! label values and features they may make of it; defaults with their reasons, and the rules.

use serde::{Deserialize, Serialize};

use crate::config::checks::at_least_one;
use crate::config::validator::Validator;

/// Most `class` or `model` label values per route: each is a time series per route.
pub const MAX_LABEL_CAP: usize = 10_000;

/// Most input features tracked per route and model: each is a drift signal.
pub const MAX_FEATURES_TRACKED: usize = 1_000;

/// `[inspection]`: the tap that hands copies of request/response bodies to the protocol
/// adapters off the live path.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct InspectionConfig {
    /// Tap routes whose protocol is not `opaque`.
    pub enabled: bool,
    /// Largest request or response body captured; a larger one is forwarded as always but
    /// not inspected (counted as `skipped_too_large`).
    pub max_body_bytes: u64,
    /// Captures waiting for the adapters; when full, new ones are dropped and counted
    /// (`dropped_queue_full`), never waited for.
    pub queue_capacity: usize,
    /// Body bytes the tap may hold at once, across exchanges still streaming and captures
    /// queued or being read; an exchange that would go over it is dropped and counted
    /// (`dropped_budget`), never waited for.
    pub max_queued_bytes: u64,
    /// While the adapters are behind (the queue or the byte budget more than half full),
    /// record one exchange in this many; the rest are forwarded as always and counted as
    /// `sampled_out`. 1 records every exchange until the queue or budget is full.
    pub busy_sample_one_in: u64,
    /// Distinct `class` label values per route; later classes are counted as `other`.
    pub max_class_labels: usize,
    /// Distinct `model` label values taken from payloads per route; later ones are `other`.
    pub max_model_labels: usize,
    /// Input features per route and model offered to the quality engine as signals.
    pub max_features_tracked: usize,
}

impl Default for InspectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            // 4 MiB holds a 1×3×224×224 FP32 image tensor as KServe V2 JSON (~2 MB) or binary
            // (~0.6 MB), a response for a batch of thousands of classes, or an LLM stream of
            // hundreds of thousands of tokens; larger bodies are forwarded but not inspected.
            max_body_bytes: 4 * 1024 * 1024,
            // 1024 captures absorb a burst of about a second at 1k req/s while the adapters
            // catch up; memory is bounded by max_queued_bytes, not by this count.
            queue_capacity: 1024,
            // 32 MiB: thousands of typical KB-sized exchanges, or eight image-sized ones, in
            // flight to the adapters; keeps the sidecar's RSS under load well below 64 MiB
            // whatever the payloads are.
            max_queued_bytes: 32 * 1024 * 1024,
            // One in 10: a burst the adapters cannot keep up with costs the live path a tenth
            // of the recording work (the rest is a counter), and a tenth of the traffic still
            // gives the class, confidence and drift statistics thousands of samples a minute
            // at the rates where the tap falls behind.
            busy_sample_one_in: 10,
            // Enough for ImageNet-style top classes seen in practice on one route, few enough
            // that a model emitting free text as a "class" cannot blow up the series count.
            max_class_labels: 64,
            // A route usually serves one model, a multi-model server a handful.
            max_model_labels: 16,
            // Drift per feature is useful for tabular models of tens of columns; an image or
            // embedding input would be thousands of meaningless signals.
            max_features_tracked: 32,
        }
    }
}

/// Sizes at least 1, label caps and tracked features within their series budgets.
pub fn validate(v: &mut Validator<'_>, i: &InspectionConfig) {
    if let Some(m) = at_least_one(i.max_body_bytes) {
        v.report("inspection.max_body_bytes", m);
    }
    if let Some(m) = at_least_one(i.queue_capacity as u64) {
        v.report("inspection.queue_capacity", m);
    }
    if let Some(m) = at_least_one(i.busy_sample_one_in) {
        v.report("inspection.busy_sample_one_in", m);
    }
    if i.max_queued_bytes < i.max_body_bytes {
        v.report(
            "inspection.max_queued_bytes",
            format!(
                "must be at least inspection.max_body_bytes ({}), got {}: no body that size could ever be inspected",
                i.max_body_bytes, i.max_queued_bytes
            ),
        );
    }
    for (key, n) in [
        ("max_class_labels", i.max_class_labels),
        ("max_model_labels", i.max_model_labels),
    ] {
        if !(1..=MAX_LABEL_CAP).contains(&n) {
            v.report(
                &format!("inspection.{key}"),
                format!("must be between 1 and {MAX_LABEL_CAP}, got {n}"),
            );
        }
    }
    if i.max_features_tracked > MAX_FEATURES_TRACKED {
        v.report(
            "inspection.max_features_tracked",
            format!(
                "must be at most {MAX_FEATURES_TRACKED}, got {}",
                i.max_features_tracked
            ),
        );
    }
}
