//! LLM output-quality signals, per route, for SPC charts and drift tests: `output_tokens:<route>`
//! (tokens per completion), and per answer the 0/1 signals `truncated:<route>` (finish reason
//! `length`), `empty:<route>` (no text), `refusal:<route>` (matches the route's
//! `refusal_regex`), `valid_json:<route>` (parses as JSON, on routes that expect it) and
//! `valid_schema:<route>` (a JSON document valid against the route's `json_schema_file`). A
//! p-chart on one of them alarms when its share shifts.

use regex::Regex;

use crate::routes::config::OutputConfig;

use super::schema::JsonSchema;
use super::{FinishReason, SignalSink, Tokens};

/// One route's output checks and signal names.
pub struct OutputSignals {
    output_tokens: String,
    truncated: String,
    empty: String,
    refusal: Option<(Regex, String)>,
    valid_json: Option<String>,
    valid_schema: Option<(JsonSchema, String)>,
}

impl OutputSignals {
    /// The route's checks; a refusal regex that does not compile or a schema file that no
    /// longer loads (config validation rejects both first) leaves its signal off, logged.
    pub fn new(route: &str, cfg: &OutputConfig) -> Self {
        let valid_schema = (!cfg.json_schema_file.is_empty())
            .then(|| JsonSchema::load(std::path::Path::new(&cfg.json_schema_file)))
            .and_then(|loaded| {
                loaded
                    .map_err(|error| tracing::warn!(route, %error, "json_schema_file: no valid_schema signal"))
                    .ok()
            })
            .map(|schema| (schema, format!("valid_schema:{route}")));
        Self {
            output_tokens: format!("output_tokens:{route}"),
            truncated: format!("truncated:{route}"),
            empty: format!("empty:{route}"),
            refusal: (!cfg.refusal_regex.is_empty())
                .then(|| Regex::new(&cfg.refusal_regex).ok())
                .flatten()
                .map(|r| (r, format!("refusal:{route}"))),
            valid_json: cfg.expect_json.then(|| format!("valid_json:{route}")),
            valid_schema,
        }
    }

    /// Offer one whole completion's signals.
    pub fn observe(&self, t: &Tokens, sink: &dyn SignalSink) {
        if let Some(n) = t.output {
            sink.observe(&self.output_tokens, n as f64);
        }
        let bit = |b: bool| f64::from(u8::from(b));
        for reason in &t.finish_reasons {
            sink.observe(&self.truncated, bit(*reason == FinishReason::Length));
        }
        for text in &t.texts {
            sink.observe(&self.empty, bit(text.trim().is_empty()));
            if let Some((re, signal)) = &self.refusal {
                sink.observe(signal, bit(re.is_match(text)));
            }
            if let Some(signal) = &self.valid_json {
                let ok = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
                sink.observe(signal, bit(ok));
            }
            if let Some((schema, signal)) = &self.valid_schema {
                sink.observe(signal, bit(schema.text_is_valid(text)));
            }
        }
    }
}
