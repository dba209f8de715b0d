//! Typed configuration: plain data read from TOML + `INFERWATCH__SECTION__KEY` env overrides,
//! validated all at once so that every error is reported with its key path.
//!
//! The structs use `#[serde(default)]` on every section and no `deny_unknown_fields`: unknown keys
//! are collected with `serde_ignored` instead, because `deny_unknown_fields` stops at the first one
//! and an operator deserves the whole list in one go.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

mod energy;
mod load;
pub use crate::canary::config::{AccuracyConfig, ColdStartConfig, ProbeConfig};
pub use crate::feedback::config::FeedbackConfig;
pub use crate::quality::config::{ChartConfig, ChartKind, DriftConfig, EwmaLimits, QualityConfig};
pub use crate::shadow::config::{
    OnnxInputConfig, ShadowConfig, ShadowKind, ShadowTargetConfig, TextMatch,
};
pub use energy::{EnergyConfig, SourceMode, SystemConfig};
pub use load::{load, load_str, load_with_env, validate, ConfigError, ConfigErrors};

/// The whole config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    pub proxy: ProxyConfig,
    pub admin: AdminConfig,
    pub latency: LatencyConfig,
    pub inspection: InspectionConfig,
    pub energy: EnergyConfig,
    pub system: SystemConfig,
    pub log: LogConfig,
    /// `[quality]`: SPC charts and drift tests (defined in `crate::quality::config`).
    pub quality: QualityConfig,
    /// `[[canary]]`: golden-set probes (defined in `crate::canary::config`).
    pub canary: Vec<ProbeConfig>,
    /// `[shadow]`: live traffic replayed to candidate models (`crate::shadow::config`).
    pub shadow: ShadowConfig,
    /// `[feedback]`: ground-truth labels joined to predictions (`crate::feedback::config`).
    pub feedback: FeedbackConfig,
    /// `[accuracy]`: windows of the accuracy and agreement ratios.
    pub accuracy: AccuracyConfig,
    /// `[cold_start]`: the first live request after an idle gap.
    pub cold_start: ColdStartConfig,
}

/// `[proxy]`: the live path.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ProxyConfig {
    /// Where clients send inference requests.
    pub listen: SocketAddr,
    /// The model server: `http://host:port` (no path, no query; https is not supported on the
    /// upstream side of a sidecar, which talks to its pod neighbour over loopback).
    pub upstream: String,
    /// `http1` (default) or `h2c` (HTTP/2 with prior knowledge, e.g. gRPC model servers).
    pub upstream_protocol: UpstreamProtocol,
    /// Ordered routes; first `path_prefix` match wins; unmatched traffic is route `other`.
    pub routes: Vec<RouteConfig>,
    /// TCP connect timeout to the upstream.
    pub connect_timeout_secs: f64,
    /// From the request being sent upstream to the response headers arriving.
    pub first_byte_timeout_secs: f64,
    /// Longest silence between two body chunks, either direction. 0 disables.
    pub body_idle_timeout_secs: f64,
    /// Largest request body accepted; larger gets 413.
    pub max_request_body_bytes: u64,
    /// Requests in flight at once across all routes; one more gets an immediate 503.
    pub max_in_flight: usize,
    /// Append the client address to `X-Forwarded-For`.
    pub x_forwarded_for: bool,
    /// Keep the client's `Host` (true) or rewrite it to the upstream's authority (false).
    pub preserve_host: bool,
    /// After SIGTERM, how long in-flight requests get to finish.
    pub shutdown_grace_secs: f64,
    /// Proxy worker threads, each with its own event loop, listening socket (`SO_REUSEPORT`)
    /// and upstream connection pool. 0 = one per CPU core.
    pub worker_threads: usize,
    /// Idle upstream connections kept per host (per worker thread).
    pub pool_max_idle_per_host: usize,
    /// How long an idle upstream connection is kept.
    pub pool_idle_timeout_secs: f64,
    /// HTTP/1.1 client connections: the longest wait for the next request's headers, idle
    /// keep-alive time included; past it the sidecar closes the connection.
    pub client_idle_timeout_secs: f64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8081".parse().expect("static address"),
            upstream: "http://127.0.0.1:8080".to_string(),
            upstream_protocol: UpstreamProtocol::Http1,
            routes: Vec::new(),
            // Loopback or in-pod connects take microseconds; 2 s only trips on a dead host.
            connect_timeout_secs: 2.0,
            // Large models can take minutes before the first byte on a cold cache; 5 min keeps
            // real work alive while still catching a hung server.
            first_byte_timeout_secs: 300.0,
            // LLM token streams pause, but not for a minute.
            body_idle_timeout_secs: 60.0,
            // 64 MiB: big enough for image batches, small enough to stop runaway uploads.
            max_request_body_bytes: 64 * 1024 * 1024,
            // A model server saturates long before 1024 concurrent requests; past that, shed load.
            max_in_flight: 1024,
            x_forwarded_for: false,
            // A transparent sidecar keeps Host as the client sent it.
            preserve_host: true,
            // Kubernetes' default terminationGracePeriodSeconds is 30; leave it 5 s to exit.
            shutdown_grace_secs: 25.0,
            // One event loop per core, as nginx's `worker_processes auto`: a connection and its
            // upstream connection stay on one thread, with no cross-thread wake-ups.
            worker_threads: 0,
            pool_max_idle_per_host: 64,
            pool_idle_timeout_secs: 90.0,
            // Longer than common clients keep idle pooled connections (Go's http.Transport 90 s,
            // nginx's keepalive_timeout 75 s), so the client side closes first and never sends
            // a request on a connection the sidecar is closing.
            client_idle_timeout_secs: 120.0,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    H2c,
}

/// `[[proxy.routes]]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RouteConfig {
    /// Route label value: `[a-z0-9_]+`, unique, not `other`.
    pub name: String,
    /// Request path prefix, starting with `/`.
    pub path_prefix: String,
    /// Payload protocol: kserve_v2 | openai | tfserving | json | opaque.
    pub protocol: Protocol,
    /// The `model` label for this route's metrics until a protocol adapter names the model.
    pub model: String,
    /// `[proxy.routes.prediction]`: how the protocol adapter turns a payload into predictions.
    pub prediction: PredictionConfig,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            path_prefix: String::new(),
            protocol: Protocol::Opaque,
            model: "unknown".to_string(),
            prediction: PredictionConfig::default(),
        }
    }
}

/// `[proxy.routes.prediction]`: the rule that turns a route's outputs into predictions, and the
/// input checks. Empty strings mean "not set" (TOML has no null, and the example file sets every
/// key to its default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PredictionConfig {
    /// `auto` (class labels or several scores → classification, one number → regression),
    /// `classification` or `regression`.
    pub kind: PredictionKind,
    /// What the score outputs hold: `probabilities` (used as they are) or `logits` (softmax, or
    /// the logistic function for a single score).
    pub scores: ScoreKind,
    /// KServe V2 output tensor (or TF Serving named output) holding scores or the regression
    /// value. Empty: the first floating-point output.
    pub score_output: String,
    /// KServe V2 output tensor (or TF Serving named output) holding class labels (BYTES or
    /// integer, e.g. an sklearn `predict` output). Empty: the first BYTES or integer output.
    pub label_output: String,
    /// Class names by score index; empty: the index itself is the class.
    pub class_labels: Vec<String>,
    /// `json` routes: RFC 6901 pointers. `model_pointer` is read from the response, then the
    /// request. With `rows_pointer` (an array in the response), the other three are relative to
    /// each row; `#` means the row (or document) itself.
    pub model_pointer: String,
    pub rows_pointer: String,
    pub class_pointer: String,
    pub score_pointer: String,
    pub value_pointer: String,
    /// Per-feature bounds for the input anomaly check (tabular KServe V2 / TF Serving inputs).
    pub feature_bounds: Vec<FeatureBound>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PredictionKind {
    #[default]
    Auto,
    Classification,
    Regression,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    #[default]
    Probabilities,
    Logits,
}

/// Values of input feature `feature` (its column across the request's numeric inputs, counted
/// from 0) outside `[min, max]` count as `out_of_bounds` anomalies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct FeatureBound {
    pub feature: usize,
    pub min: f64,
    pub max: f64,
}

impl Default for FeatureBound {
    fn default() -> Self {
        Self {
            feature: 0,
            min: f64::NEG_INFINITY,
            max: f64::INFINITY,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    KserveV2,
    Openai,
    Tfserving,
    Json,
    #[default]
    Opaque,
}

impl Protocol {
    /// The name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::KserveV2 => "kserve_v2",
            Protocol::Openai => "openai",
            Protocol::Tfserving => "tfserving",
            Protocol::Json => "json",
            Protocol::Opaque => "opaque",
        }
    }
}

/// `[admin]`: /metrics /healthz /readyz /status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AdminConfig {
    /// Where the admin server listens; must not overlap `proxy.listen` (port 0 never conflicts).
    pub listen: SocketAddr,
    /// Scrapes encoded at once; more get 503 so a scrape storm cannot eat the proxy's CPU.
    pub max_concurrent_scrapes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9464".parse().expect("static address"),
            // Prometheus HA pairs plus a human with curl.
            max_concurrent_scrapes: 4,
        }
    }
}

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
            // 1 MiB holds a KServe V2 response for a batch of a few thousand classes, or an LLM
            // stream of tens of thousands of tokens; image inputs above it are skipped.
            max_body_bytes: 1024 * 1024,
            // At 1 MiB each, worst case 1 GiB held; typical payloads are KBs. 1024 captures
            // absorb a burst of about a second at 1k req/s while the adapters catch up.
            queue_capacity: 1024,
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

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LogConfig {
    /// `text` (default) or `json` log lines.
    pub format: LogFormat,
    /// A tracing filter directive (`info`, `inferwatch=debug,hyper=warn`); `RUST_LOG` wins if set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
