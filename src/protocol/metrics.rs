//! The payload metric families the inspector records: predictions, confidences, batch sizes,
//! input anomalies, and for LLM routes token timings, token counts (with their source, cached
//! and reasoning tokens) and finish reasons.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::metrics::{names, registered};

/// The payload metric families.
#[derive(Clone)]
pub struct ProtocolMetrics {
    pub predictions: IntCounterVec,
    pub confidence: HistogramVec,
    pub batch_size: HistogramVec,
    pub anomalies: IntCounterVec,
    pub ttft: HistogramVec,
    pub inter_token: HistogramVec,
    pub per_output_token: HistogramVec,
    pub output_tokens: IntCounterVec,
    pub input_tokens: IntCounterVec,
    pub completions: IntCounterVec,
    pub cached_input_tokens: IntCounterVec,
    pub reasoning_tokens: IntCounterVec,
    pub time_to_second_token: HistogramVec,
    pub output_tokens_per_second: HistogramVec,
}

impl ProtocolMetrics {
    /// `latency_buckets`: the token timing histograms share the request latency buckets, so
    /// time to first token and request duration can be read side by side.
    pub fn register(registry: &Registry, latency_buckets: Vec<f64>) -> prometheus::Result<Self> {
        let rm = &["route", "model"];
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), rm)
                .and_then(|h| registered(registry, h))
        };
        // 0.05 steps: calibration plots and "confidence fell below 0.5" alerts both read well.
        let confidence_buckets: Vec<f64> = (1..=20).map(|i| f64::from(i) * 0.05).collect();
        // Powers of two up to 4096 rows.
        let batch_buckets: Vec<f64> = (0..=12).map(|i| f64::from(1u32 << i)).collect();
        let m = Self {
            predictions: registered(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        names::PREDICTIONS_TOTAL,
                        "Predictions (one per batch row) by predicted class; classes past the cap are \"other\", regressions \"none\".",
                    ),
                    &["route", "model", "class"],
                )?,
            )?,
            confidence: histogram(
                names::PREDICTION_CONFIDENCE,
                "Probability of the predicted class.",
                confidence_buckets,
            )?,
            batch_size: histogram(names::BATCH_SIZE, "Rows per inference request.", batch_buckets)?,
            anomalies: registered(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        names::INPUT_ANOMALIES_TOTAL,
                        "Input anomalies: NaN or infinite values, values outside configured feature bounds, shape or datatype changes against the first request seen.",
                    ),
                    &["route", "model", "kind"],
                )?,
            )?,
            ttft: histogram(
                names::TIME_TO_FIRST_TOKEN_SECONDS,
                "Request start to the first streamed content chunk.",
                latency_buckets.clone(),
            )?,
            inter_token: histogram(
                names::INTER_TOKEN_LATENCY_SECONDS,
                "Gap between consecutive streamed content chunks.",
                latency_buckets.clone(),
            )?,
            per_output_token: histogram(
                names::TIME_PER_OUTPUT_TOKEN_SECONDS,
                "(Last content chunk - first) / (output tokens - 1), per streamed completion.",
                latency_buckets.clone(),
            )?,
            time_to_second_token: histogram(
                names::TIME_TO_SECOND_TOKEN_SECONDS,
                "First streamed content chunk to the second, per streamed completion.",
                latency_buckets,
            )?,
            // From slower than anyone reads (1/s) to a fast GPU's decode (5000/s).
            output_tokens_per_second: histogram(
                names::OUTPUT_TOKENS_PER_SECOND,
                "Output tokens per second after the first token (1 / time per output token), per streamed completion: the reading speed a user gets.",
                vec![1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0, 2000.0, 5000.0],
            )?,
            cached_input_tokens: registered(
                registry,
                IntCounterVec::new(
                    Opts::new(names::CACHED_INPUT_TOKENS_TOTAL, "Prompt tokens served from the model server's prefix cache (usage.prompt_tokens_details.cached_tokens); over inferwatch_input_tokens_total, the prefix-cache hit ratio."),
                    rm,
                )?,
            )?,
            reasoning_tokens: registered(
                registry,
                IntCounterVec::new(
                    Opts::new(names::REASONING_TOKENS_TOTAL, "Reasoning tokens among the output (usage.completion_tokens_details.reasoning_tokens)."),
                    rm,
                )?,
            )?,
            output_tokens: registered(
                registry,
                IntCounterVec::new(
                    Opts::new(names::OUTPUT_TOKENS_TOTAL, "Generated tokens by source: usage (reported by the server) or counted (streamed content chunks, when a server sends no usage)."),
                    &["route", "model", "source"],
                )?,
            )?,
            input_tokens: registered(
                registry,
                IntCounterVec::new(
                    Opts::new(names::INPUT_TOKENS_TOTAL, "Prompt tokens, as reported in usage."),
                    rm,
                )?,
            )?,
            completions: registered(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        names::COMPLETIONS_TOTAL,
                        "Completions (choices) by finish reason: stop, length, tool_calls, content_filter, function_call, other.",
                    ),
                    &["route", "model", "finish_reason"],
                )?,
            )?,
        };
        Ok(m)
    }
}
