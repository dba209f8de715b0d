//! `[feedback]`: ground-truth labels posted to the admin listener, joined to recent predictions.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct FeedbackConfig {
    /// Serve `POST /feedback` and keep recent predictions to join against. Off by default: it
    /// needs a request id on live traffic and a token file.
    pub enabled: bool,
    /// The live request header carrying the id that feedback refers to.
    pub request_id_header: String,
    /// File holding the bearer token `POST /feedback` must present (required when enabled).
    pub token_file: String,
    /// How long a prediction waits for its label; later feedback is counted as `expired`.
    pub ttl_secs: f64,
    /// Predictions kept at most; the oldest go first (later feedback for them is `unknown`).
    pub max_entries: usize,
    /// Numeric labels (`value`) are right when `|predicted - value| <= abs_tolerance +
    /// rel_tolerance * |value|`.
    pub abs_tolerance: f64,
    pub rel_tolerance: f64,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            request_id_header: "x-request-id".into(),
            token_file: String::new(),
            // An hour covers human review queues of the "label it now" kind; slower labelling
            // pipelines raise it.
            ttl_secs: 3600.0,
            // 100k ids of ~100 bytes each: ~10-20 MiB at most.
            max_entries: 100_000,
            abs_tolerance: 1e-6,
            rel_tolerance: 1e-4,
        }
    }
}
