//! `[engine]`: the model server's own `/metrics` endpoint, which kind of server it is, and how
//! often it is read; defaults with their reasons, and the rules on them.

use serde::{Deserialize, Serialize};

use crate::config::checks::sampling_interval;
use crate::config::validator::Validator;

/// `[engine]`: where the model server's own metrics are and what it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EngineConfig {
    /// `http://host:port/path` of the model server's Prometheus endpoint; empty = off.
    pub metrics_url: String,
    /// vllm | sglang | tgi | triton | llamacpp | mlserver | auto (told by metric names).
    pub kind: EngineKind,
    /// How often the endpoint is read.
    pub interval_secs: f64,
    /// Longest wait for one scrape.
    pub timeout_secs: f64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            metrics_url: String::new(),
            kind: EngineKind::Auto,
            // Queue depth and KV-cache use change within seconds under load; 5 s shows a
            // saturation episode without loading the engine's exporter (a vLLM scrape is a few
            // hundred series).
            interval_secs: 5.0,
            // Well under the interval, so a hung endpoint never stacks scrapes.
            timeout_secs: 2.0,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    #[default]
    Auto,
    Vllm,
    Sglang,
    Tgi,
    Triton,
    Llamacpp,
    Mlserver,
}

impl EngineKind {
    /// The `engine` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Auto => "auto",
            EngineKind::Vllm => "vllm",
            EngineKind::Sglang => "sglang",
            EngineKind::Tgi => "tgi",
            EngineKind::Triton => "triton",
            EngineKind::Llamacpp => "llamacpp",
            EngineKind::Mlserver => "mlserver",
        }
    }
}

/// An http URL when set; the interval and a timeout shorter than it.
pub fn validate(v: &mut Validator<'_>, e: &EngineConfig) {
    if !e.metrics_url.is_empty() {
        match e.metrics_url.parse::<http::Uri>() {
            Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {}
            _ => v.report(
                "engine.metrics_url",
                format!(
                    "invalid metrics_url {:?}, expected http://host:port/path",
                    e.metrics_url
                ),
            ),
        }
    }
    v.check("engine.interval_secs", sampling_interval(e.interval_secs));
    if !(e.timeout_secs.is_finite() && e.timeout_secs > 0.0) {
        v.report(
            "engine.timeout_secs",
            format!("invalid timeout {}, expected seconds > 0", e.timeout_secs),
        );
    } else if e.timeout_secs >= e.interval_secs && v.clean(&["engine.interval_secs"]) {
        v.report(
            "engine.timeout_secs",
            format!(
                "timeout {} s must be shorter than interval_secs {} s, so scrapes never overlap",
                e.timeout_secs, e.interval_secs
            ),
        );
    }
}
