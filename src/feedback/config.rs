//! `[feedback]`: ground-truth labels posted to the admin listener, joined to recent predictions;
//! defaults with their reasons, and the rules on them.

use serde::{Deserialize, Serialize};

use crate::config::checks::{secs_positive, tolerance};
use crate::config::validator::Validator;

/// Largest feedback map accepted.
pub const MAX_ENTRIES: usize = 10_000_000;

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

/// The keys of an enabled `[feedback]` (a disabled one is not read). (That feedback needs
/// inspection on is a rule across sections, in `config`.)
pub fn validate(v: &mut Validator<'_>, f: &FeedbackConfig) {
    if f.enabled {
        if f.token_file.is_empty() {
            v.report(
                "feedback.token_file",
                "missing bearer token file (required when feedback is enabled)".into(),
            );
        }
        if http::HeaderName::from_bytes(f.request_id_header.as_bytes()).is_err() {
            v.report(
                "feedback.request_id_header",
                format!("invalid header name {:?}", f.request_id_header),
            );
        }
        v.check("feedback.ttl_secs", secs_positive(f.ttl_secs));
        if !(1..=MAX_ENTRIES).contains(&f.max_entries) {
            v.report(
                "feedback.max_entries",
                format!("must be between 1 and {MAX_ENTRIES}, got {}", f.max_entries),
            );
        }
        v.check("feedback.abs_tolerance", tolerance(f.abs_tolerance));
        v.check("feedback.rel_tolerance", tolerance(f.rel_tolerance));
    }
}
