//! The metric catalogue: every metric name in one place, and the live path's metric families,
//! registered on the one `prometheus::Registry` that is built at start-up and passed down
//! (every component registers its families with [`registered`]).
//!
//! Label values always come from closed sets: route names from config, the [`Outcome`] and
//! [`CodeClass`] enums, model names from config (later capped with an `other` bucket).

mod grpc;
mod guard;
mod ratio;
pub use grpc::{is_grpc, GrpcCode};
pub use guard::{GuardMetrics, RejectReason, RetryReason};
pub use ratio::RatioGauge;

/// A window's label value: `60` → `1m`, `600` → `10m`, `3600` → `1h`, `90` → `90s`.
pub fn window_label(secs: u64) -> String {
    if secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

use prometheus::{
    core::Collector, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry,
};

/// Register `collector` on `registry` and hand it back, so a family is built, registered and
/// kept in one expression instead of being listed a second time (as a clone) for the registry.
pub fn registered<C: Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> prometheus::Result<C> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

/// Every metric name this crate exports. Dashboards and alert rules rely on these.
///
/// The quantile gauges label their level `q` (e.g. `q="0.99"`), not `quantile`: Prometheus
/// reserves `quantile` for summaries and `promtool check metrics` rejects it on a gauge.
pub mod names {
    pub const REQUESTS_TOTAL: &str = "inferwatch_requests_total";
    pub const GRPC_CALLS_TOTAL: &str = "inferwatch_grpc_calls_total";
    pub const REQUEST_DURATION_SECONDS: &str = "inferwatch_request_duration_seconds";
    pub const SLO_REQUESTS_TOTAL: &str = "inferwatch_slo_requests_total";
    pub const TIME_TO_FIRST_BYTE_SECONDS: &str = "inferwatch_time_to_first_byte_seconds";
    pub const LATENCY_QUANTILE_SECONDS: &str = "inferwatch_latency_quantile_seconds";
    pub const LATENCY_QUANTILE_UPPER_BOUND_SECONDS: &str =
        "inferwatch_latency_quantile_upper_bound_seconds";
    pub const LATENCY_WINDOW_SAMPLES: &str = "inferwatch_latency_window_samples";
    pub const IN_FLIGHT_REQUESTS: &str = "inferwatch_in_flight_requests";
    pub const BUILD_INFO: &str = "inferwatch_build_info";
    pub const SCRAPES_REJECTED_TOTAL: &str = "inferwatch_scrapes_rejected_total";
    pub const INSPECTION_TOTAL: &str = "inferwatch_inspection_total";
    pub const REQUESTS_REJECTED_TOTAL: &str = "inferwatch_requests_rejected_total";
    pub const UPSTREAM_RETRIES_TOTAL: &str = "inferwatch_upstream_retries_total";
    pub const CLIENT_CONNECTIONS: &str = "inferwatch_client_connections";
    pub const CLIENT_CONNECTIONS_MAX: &str = "inferwatch_client_connections_max";

    // Energy (src/energy/): every family the sources feed carries a `source` label
    // (nvml, rapl, estimate), so an estimate can never pass for a measurement.
    pub const ENERGY_SOURCE_UP: &str = "inferwatch_energy_source_up";
    pub const ENERGY_JOULES_TOTAL: &str = "inferwatch_energy_joules_total";
    pub const ENERGY_POWER_WATTS: &str = "inferwatch_energy_power_watts";
    pub const ENERGY_IDLE_POWER_WATTS: &str = "inferwatch_energy_idle_power_watts";
    pub const ENERGY_ATTRIBUTED_JOULES_TOTAL: &str = "inferwatch_energy_attributed_joules_total";
    pub const ENERGY_PER_INFERENCE_JOULES: &str = "inferwatch_energy_per_inference_joules";
    pub const ENERGY_PER_OUTPUT_TOKEN_JOULES: &str = "inferwatch_energy_per_output_token_joules";
    pub const GPU_ENERGY_JOULES_TOTAL: &str = "inferwatch_gpu_energy_joules_total";
    pub const GPU_POWER_WATTS: &str = "inferwatch_gpu_power_watts";
    pub const GPU_UTILIZATION_RATIO: &str = "inferwatch_gpu_utilization_ratio";
    pub const GPU_MEMORY_USED_BYTES: &str = "inferwatch_gpu_memory_used_bytes";
    pub const GPU_MODEL_SERVER_UTILIZATION_RATIO: &str =
        "inferwatch_gpu_model_server_utilization_ratio";
    pub const CPU_ENERGY_JOULES_TOTAL: &str = "inferwatch_cpu_energy_joules_total";

    // The model server process and the host (src/system/).
    pub const MODEL_SERVER_UP: &str = "inferwatch_model_server_up";
    pub const MODEL_SERVER_PROCESSES: &str = "inferwatch_model_server_processes";
    pub const MODEL_SERVER_CPU_SECONDS_TOTAL: &str = "inferwatch_model_server_cpu_seconds_total";
    pub const MODEL_SERVER_RESIDENT_MEMORY_BYTES: &str =
        "inferwatch_model_server_resident_memory_bytes";
    pub const MODEL_SERVER_THREADS: &str = "inferwatch_model_server_threads";
    pub const HOST_CPU_UTILIZATION_RATIO: &str = "inferwatch_host_cpu_utilization_ratio";
    pub const HOST_MEMORY_USED_BYTES: &str = "inferwatch_host_memory_used_bytes";
    pub const HOST_MEMORY_TOTAL_BYTES: &str = "inferwatch_host_memory_total_bytes";

    // Quality engine (src/quality/): SPC charts and drift tests.
    pub const SPC_STATISTIC: &str = "inferwatch_spc_statistic";
    pub const SPC_CENTER_LINE: &str = "inferwatch_spc_center_line";
    pub const SPC_UPPER_CONTROL_LIMIT: &str = "inferwatch_spc_upper_control_limit";
    pub const SPC_LOWER_CONTROL_LIMIT: &str = "inferwatch_spc_lower_control_limit";
    pub const SPC_ALARM: &str = "inferwatch_spc_alarm";
    pub const SPC_ALARMS_TOTAL: &str = "inferwatch_spc_alarms_total";
    pub const SPC_PHASE1: &str = "inferwatch_spc_phase1";
    pub const DRIFT_PSI: &str = "inferwatch_drift_psi";
    pub const DRIFT_PSI_THRESHOLD: &str = "inferwatch_drift_psi_threshold";
    pub const DRIFT_KS_STATISTIC: &str = "inferwatch_drift_ks_statistic";
    pub const DRIFT_KS_P_VALUE: &str = "inferwatch_drift_ks_p_value";
    pub const DRIFT_CHI_SQUARE_P_VALUE: &str = "inferwatch_drift_chi_square_p_value";
    pub const DRIFT_ALARM: &str = "inferwatch_drift_alarm";
    pub const QUALITY_SIGNAL_DROPPED_TOTAL: &str = "inferwatch_quality_signal_dropped_total";
    pub const QUALITY_SIGNAL_UNKNOWN_TOTAL: &str = "inferwatch_quality_signal_unknown_total";

    // Protocol adapters (src/protocol/): what the payloads say.
    pub const PREDICTIONS_TOTAL: &str = "inferwatch_predictions_total";
    pub const PREDICTION_CONFIDENCE: &str = "inferwatch_prediction_confidence";
    pub const BATCH_SIZE: &str = "inferwatch_batch_size";
    pub const INPUT_ANOMALIES_TOTAL: &str = "inferwatch_input_anomalies_total";
    pub const TIME_TO_FIRST_TOKEN_SECONDS: &str = "inferwatch_time_to_first_token_seconds";
    pub const INTER_TOKEN_LATENCY_SECONDS: &str = "inferwatch_inter_token_latency_seconds";
    pub const TIME_PER_OUTPUT_TOKEN_SECONDS: &str = "inferwatch_time_per_output_token_seconds";
    pub const OUTPUT_TOKENS_TOTAL: &str = "inferwatch_output_tokens_total";
    pub const INPUT_TOKENS_TOTAL: &str = "inferwatch_input_tokens_total";
    pub const CACHED_INPUT_TOKENS_TOTAL: &str = "inferwatch_cached_input_tokens_total";
    pub const REASONING_TOKENS_TOTAL: &str = "inferwatch_reasoning_tokens_total";
    pub const TIME_TO_SECOND_TOKEN_SECONDS: &str = "inferwatch_time_to_second_token_seconds";
    pub const OUTPUT_TOKENS_PER_SECOND: &str = "inferwatch_output_tokens_per_second";
    pub const COMPLETIONS_TOTAL: &str = "inferwatch_completions_total";

    // Canary probes (src/canary/): golden requests with known answers, sent to the upstream.
    pub const PROBES_TOTAL: &str = "inferwatch_probes_total";
    pub const PROBE_SUCCESS: &str = "inferwatch_probe_success";
    pub const PROBE_DURATION_SECONDS: &str = "inferwatch_probe_duration_seconds";
    pub const PROBE_ACCURACY_RATIO: &str = "inferwatch_probe_accuracy_ratio";
    pub const PROBES_SKIPPED_TOTAL: &str = "inferwatch_probes_skipped_total";
    pub const UPSTREAM_COLD_START_SECONDS: &str = "inferwatch_upstream_cold_start_seconds";
    pub const UPSTREAM_COLD_STARTS_TOTAL: &str = "inferwatch_upstream_cold_starts_total";
    pub const FIRST_REQUEST_AFTER_IDLE_SECONDS: &str =
        "inferwatch_first_request_after_idle_seconds";

    // Shadow targets (src/shadow/): tapped live requests replayed and compared.
    pub const SHADOW_REQUESTS_TOTAL: &str = "inferwatch_shadow_requests_total";
    pub const SHADOW_COMPARISONS_TOTAL: &str = "inferwatch_shadow_comparisons_total";
    pub const SHADOW_AGREEMENT_RATIO: &str = "inferwatch_shadow_agreement_ratio";
    pub const SHADOW_DIVERGENCE: &str = "inferwatch_shadow_divergence";
    pub const SHADOW_DURATION_SECONDS: &str = "inferwatch_shadow_duration_seconds";

    // Ground-truth feedback (src/feedback.rs): labels posted later, joined to predictions.
    pub const FEEDBACK_TOTAL: &str = "inferwatch_feedback_total";
    pub const LABELED_ACCURACY_RATIO: &str = "inferwatch_labeled_accuracy_ratio";
    pub const FEEDBACK_PENDING: &str = "inferwatch_feedback_pending_predictions";
}

/// How a live request ended. One closed set, used as the `outcome` label, in the
/// `x-inferwatch-error` response header and in log lines, so the three never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The upstream answered and the whole response reached the client (any status code).
    Ok,
    /// TCP connect to the upstream failed (refused, unreachable): 502.
    ConnectError,
    /// TCP connect to the upstream took longer than `connect_timeout_secs`: 504.
    ConnectTimeout,
    /// The upstream closed or reset the connection before response headers: 502.
    UpstreamReset,
    /// No response headers within `first_byte_timeout_secs`: 504.
    FirstByteTimeout,
    /// Over `max_in_flight`: 503 at once.
    Overloaded,
    /// Request body over `max_request_body_bytes`: 413.
    BodyTooLarge,
    /// The client stopped sending its request body for `body_idle_timeout_secs`: 408.
    RequestBodyTimeout,
    /// The client's request body broke off (reset) before it was complete: 400.
    RequestBodyError,
    /// The upstream's response body broke off after headers: passed on as a reset.
    ResponseReset,
    /// The upstream's response body went silent for `body_idle_timeout_secs` after headers:
    /// passed on as a reset.
    ResponseBodyTimeout,
    /// The client went away before the response was complete.
    ClientAborted,
    /// A gRPC call the upstream answered in full with a `grpc-status` other than OK (the HTTP
    /// status is 200; the code is in `inferwatch_grpc_calls_total`).
    GrpcError,
}

impl Outcome {
    pub const ALL: [Outcome; 13] = [
        Outcome::Ok,
        Outcome::ConnectError,
        Outcome::ConnectTimeout,
        Outcome::UpstreamReset,
        Outcome::FirstByteTimeout,
        Outcome::Overloaded,
        Outcome::BodyTooLarge,
        Outcome::RequestBodyTimeout,
        Outcome::RequestBodyError,
        Outcome::ResponseReset,
        Outcome::ResponseBodyTimeout,
        Outcome::ClientAborted,
        Outcome::GrpcError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ConnectError => "connect_error",
            Outcome::ConnectTimeout => "connect_timeout",
            Outcome::UpstreamReset => "upstream_reset",
            Outcome::FirstByteTimeout => "first_byte_timeout",
            Outcome::Overloaded => "overloaded",
            Outcome::BodyTooLarge => "body_too_large",
            Outcome::RequestBodyTimeout => "request_body_timeout",
            Outcome::RequestBodyError => "request_body_error",
            Outcome::ResponseReset => "response_reset",
            Outcome::ResponseBodyTimeout => "response_body_timeout",
            Outcome::ClientAborted => "client_aborted",
            Outcome::GrpcError => "grpc_error",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The status inferwatch answers with itself, for failures before response headers.
    pub fn local_status(self) -> Option<u16> {
        match self {
            Outcome::ConnectError | Outcome::UpstreamReset => Some(502),
            Outcome::ConnectTimeout | Outcome::FirstByteTimeout => Some(504),
            Outcome::Overloaded => Some(503),
            Outcome::BodyTooLarge => Some(413),
            Outcome::RequestBodyTimeout => Some(408),
            Outcome::RequestBodyError => Some(400),
            _ => None,
        }
    }
}

/// The `code_class` label: the response status class the client saw, or `none` when the
/// response was cut before or instead of a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeClass {
    C1xx,
    C2xx,
    C3xx,
    C4xx,
    C5xx,
    None,
}

impl CodeClass {
    pub const COUNT: usize = 6;

    pub fn from_status(status: u16) -> Self {
        match status / 100 {
            1 => CodeClass::C1xx,
            2 => CodeClass::C2xx,
            3 => CodeClass::C3xx,
            4 => CodeClass::C4xx,
            5 => CodeClass::C5xx,
            _ => CodeClass::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CodeClass::C1xx => "1xx",
            CodeClass::C2xx => "2xx",
            CodeClass::C3xx => "3xx",
            CodeClass::C4xx => "4xx",
            CodeClass::C5xx => "5xx",
            CodeClass::None => "none",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Geometric histogram buckets from `min` to at least `max` with ratio `factor`.
/// With the defaults (0.5 ms, 60 s, 1.15) that is 85 buckets.
pub fn geometric_buckets(min: f64, max: f64, factor: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut b = min;
    // Round to 6 significant digits so the `le` labels stay readable and stable.
    while out.last().is_none_or(|&last: &f64| last < max) && out.len() < 1000 {
        out.push(round_sig(b, 6));
        b *= factor;
    }
    out
}

fn round_sig(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let mag = v.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits - 1 - mag);
    (v * scale).round() / scale
}

/// The live path's metric families.
#[derive(Clone)]
pub struct ProxyMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub ttfb: HistogramVec,
    pub quantile: GaugeVec,
    pub quantile_upper_bound: GaugeVec,
    pub window_samples: GaugeVec,
    pub in_flight: IntGaugeVec,
    pub grpc_calls: IntCounterVec,
    /// `inferwatch_slo_requests_total{route,model,result}`: the live path counts requests that
    /// failed without an answer; the inspector classifies the answered ones.
    pub slo: IntCounterVec,
}

/// The `result` values of `inferwatch_slo_requests_total`.
pub mod slo_result {
    pub const MET: &str = "met";
    pub const MISSED_TTFT: &str = "missed_ttft";
    pub const MISSED_TPOT: &str = "missed_tpot";
    pub const MISSED_E2E: &str = "missed_e2e";
    pub const FAILED: &str = "failed";
    /// The client left before the end, before any bound had passed: neither good nor bad, so
    /// out of the goodput ratio's denominator.
    pub const ABORTED: &str = "aborted";
}

impl ProxyMetrics {
    pub fn register(registry: &Registry, buckets: Vec<f64>) -> prometheus::Result<Self> {
        let slo = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    names::SLO_REQUESTS_TOTAL,
                    "Requests on routes with an SLO by result: met (every bound), missed_ttft, missed_tpot, missed_e2e (the first bound missed, also by a client that gave up past it), failed (no answer, a non-2xx one or a broken one), aborted (the client left before any bound passed).",
                ),
                &["route", "model", "result"],
            )?,
        )?;
        let requests = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    names::REQUESTS_TOTAL,
                    "Live requests by route, model, response status class and outcome.",
                ),
                &["route", "model", "code_class", "outcome"],
            )?,
        )?;
        let duration = registered(
            registry,
            HistogramVec::new(
                HistogramOpts::new(
                    names::REQUEST_DURATION_SECONDS,
                    "First request byte to last response byte, for requests the upstream answered.",
                )
                .buckets(buckets.clone()),
                &["route", "model"],
            )?,
        )?;
        let ttfb = registered(
            registry,
            HistogramVec::new(
                HistogramOpts::new(
                    names::TIME_TO_FIRST_BYTE_SECONDS,
                    "First request byte to the upstream's response headers.",
                )
                .buckets(buckets),
                &["route", "model"],
            )?,
        )?;
        let quantile = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    names::LATENCY_QUANTILE_SECONDS,
                    "Request duration quantile over a sliding window (sketch, 1% relative error).",
                ),
                &["route", "model", "window", "q"],
            )?,
        )?;
        let quantile_upper_bound = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    names::LATENCY_QUANTILE_UPPER_BOUND_SECONDS,
                    "Upper confidence bound on the true latency quantile (binomial order statistic); \
                     absent while the window has too few samples.",
                ),
                &["route", "model", "window", "q"],
            )?,
        )?;
        let window_samples = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    names::LATENCY_WINDOW_SAMPLES,
                    "Requests in the sliding window behind the quantile gauges.",
                ),
                &["route", "model", "window"],
            )?,
        )?;
        let in_flight = registered(
            registry,
            IntGaugeVec::new(
                Opts::new(names::IN_FLIGHT_REQUESTS, "Live requests being served now."),
                &["route"],
            )?,
        )?;
        let grpc_calls = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    names::GRPC_CALLS_TOTAL,
                    "Finished gRPC calls by route, model and grpc-status (the upstream's, or the \
                     one inferwatch answered with).",
                ),
                &["route", "model", "grpc_code"],
            )?,
        )?;
        Ok(Self {
            requests,
            grpc_calls,
            duration,
            ttfb,
            quantile,
            quantile_upper_bound,
            window_samples,
            in_flight,
            slo,
        })
    }
}

/// `inferwatch_build_info{version} 1` and the standard `process_*` metrics.
pub fn register_process_and_build_info(registry: &Registry) -> prometheus::Result<()> {
    let build = IntGaugeVec::new(
        Opts::new(
            names::BUILD_INFO,
            "Build of the running inferwatch; always 1.",
        ),
        &["version"],
    )?;
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registered(registry, build)?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_buckets_cover_half_ms_to_minute_within_15_percent() {
        let b = geometric_buckets(0.0005, 60.0, 1.15);
        assert_eq!(b[0], 0.0005);
        assert!(*b.last().unwrap() >= 60.0);
        assert!((80..=90).contains(&b.len()), "{} buckets", b.len());
        for w in b.windows(2) {
            let rel = (w[1] - w[0]) / w[1];
            assert!(rel <= 0.15 && rel > 0.0, "{w:?} relative width {rel}");
        }
    }

    #[test]
    fn outcome_index_matches_all() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
    }

    #[test]
    fn code_classes() {
        assert_eq!(CodeClass::from_status(204).as_str(), "2xx");
        assert_eq!(CodeClass::from_status(503).as_str(), "5xx");
        assert_eq!(CodeClass::from_status(99).as_str(), "none");
    }
}
