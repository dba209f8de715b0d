//! Understanding the traffic: the tap that copies tapped exchanges off the live path, and the
//! protocol adapters that turn them into predictions (one file per protocol).
//!
//! Every adapter is a pure function from an [`Exchange`] (a read-only view of one finished
//! request/response pair) and the route's [`Rule`] to an [`Inference`], so it can be tested,
//! fuzzed and benchmarked without a proxy. [`inspect`] is the task that feeds captures to them
//! and turns the results into metrics and quality signals.

pub mod config;
pub mod goodput;
pub mod grpc_frame;
pub mod inspect;
pub mod json;
pub mod kserve_v2;
pub mod kserve_v2_grpc;
pub mod labels;
pub mod metrics;
pub mod openai;
pub mod output;
pub mod predict;
mod scan;
pub mod schema;
pub mod sse;
pub mod tensor;
pub mod tfserving;

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use crate::routes::config::Protocol;

pub use inspect::{CaptureHook, Inspector, NoSignals, ProtocolMetrics, Seen, SignalSink};
pub use predict::{Prediction, Rule};

/// One finished exchange as the adapters read it.
#[derive(Clone, Copy)]
pub struct Exchange<'a> {
    /// Path and query as the client sent them.
    pub path: &'a str,
    pub request: &'a [u8],
    pub request_headers: &'a HeaderMap,
    pub response: &'a [u8],
    pub response_headers: &'a HeaderMap,
    /// The response body as it arrived: each chunk with its time after the request started.
    pub response_chunks: &'a [(Duration, Bytes)],
}

impl Exchange<'_> {
    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split(['?', '#']).next().unwrap_or_default()
    }
}

/// What an adapter understood of one exchange.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inference {
    /// Model name from the path or payload (not yet capped as a label).
    pub model: Option<String>,
    /// One per row of the batch.
    pub predictions: Vec<Prediction>,
    /// Rows in the request.
    pub batch: Option<usize>,
    /// Tabular numeric inputs, for the anomaly checks and drift signals.
    pub inputs: Option<Inputs>,
    /// Token accounting and timings (OpenAI-compatible routes).
    pub tokens: Option<Tokens>,
}

/// The numeric inputs of a request as a table: `rows` rows of `features` values, row-major
/// (the columns of every numeric input tensor, in order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    pub signature: Vec<InputSignature>,
    pub rows: usize,
    pub features: usize,
    /// Leading columns of each row held in `values`: all `features`, unless nothing on the
    /// route reads past the first `kept` (the inspector's tracked features and bounds) and
    /// the adapter skipped parsing the rest (`kserve_v2` JSON tensors).
    pub kept: usize,
    /// `rows` × `kept` values.
    pub values: Vec<f64>,
    /// NaN / infinite values among every numeric input, including those left out of `values`.
    pub nan: u64,
    pub inf: u64,
}

/// Name, datatype and per-row shape of one input: a change against the first seen is a
/// `shape_change` or `dtype_change` anomaly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSignature {
    pub name: String,
    pub datatype: String,
    /// The shape without the batch dimension.
    pub shape: Vec<i64>,
}

/// Tokens and their timings for one completion.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tokens {
    pub input: Option<u64>,
    pub output: Option<u64>,
    /// Where `output` came from.
    pub output_source: TokenSource,
    /// Prompt tokens served from the server's prefix cache (`usage.prompt_tokens_details`).
    pub cached_input: Option<u64>,
    /// Reasoning tokens among the output (`usage.completion_tokens_details`).
    pub reasoning: Option<u64>,
    /// Request start to the first content chunk.
    pub time_to_first_token: Option<Duration>,
    /// First content chunk to the second: the stall after the first token that users notice
    /// (a scheduler that prefills other requests before decoding this one).
    pub time_to_second_token: Option<Duration>,
    /// Gaps between consecutive content chunks as they arrived at the proxy.
    pub inter_token: Vec<Duration>,
    /// (last content chunk − first) / (output tokens − 1).
    pub time_per_output_token: Option<Duration>,
    pub finish_reasons: Vec<FinishReason>,
    /// Each choice's answer text (content, or a completion's text), for the output-quality
    /// signals.
    pub texts: Vec<String>,
}

/// Where an output token count came from: the server's `usage`, or the streamed content
/// chunks counted (servers that ignore `stream_options.include_usage`, such as llama.cpp's,
/// and streams a client left before the usage chunk). The `source` label of
/// `inferwatch_output_tokens_total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TokenSource {
    #[default]
    Usage,
    Counted,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Usage => "usage",
            TokenSource::Counted => "counted",
        }
    }
}

/// Why a completion stopped: OpenAI's values, anything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    FunctionCall,
    Other,
}

impl FinishReason {
    pub fn parse(s: &str) -> Self {
        match s {
            "stop" | "eos" | "stop_sequence" | "end_turn" => FinishReason::Stop,
            "length" | "max_tokens" => FinishReason::Length,
            "tool_calls" | "tool_use" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            "function_call" => FinishReason::FunctionCall,
            _ => FinishReason::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::FunctionCall => "function_call",
            FinishReason::Other => "other",
        }
    }
}

/// Why an exchange could not be understood: it is counted as `malformed` and logged at debug.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("not UTF-8")]
    Utf8,
    #[error("tensor {tensor:?}: shape {shape:?} does not hold {elements} elements")]
    Shape {
        tensor: String,
        shape: Vec<i64>,
        elements: usize,
    },
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("stream ended without [DONE] or a finish reason")]
    Truncated,
}

/// Decode one exchange with the adapter for `protocol`. `Ok(None)`: not an inference endpoint
/// of that protocol (metadata, health, model listing), nothing to count.
pub fn decode(
    protocol: Protocol,
    ex: &Exchange<'_>,
    rule: &Rule,
) -> Result<Option<Inference>, DecodeError> {
    match protocol {
        Protocol::KserveV2 => kserve_v2::decode(ex, rule),
        Protocol::Openai => openai::decode(ex),
        Protocol::Tfserving => tfserving::decode(ex, rule),
        Protocol::Json => json::decode(ex, rule),
        Protocol::Opaque => Ok(None),
    }
}

/// Decode what a client received before it went away: the events of an OpenAI-compatible
/// stream up to the last complete one (time to first token, the tokens it got). Nothing else
/// can be read from a cut body: `Ok(None)`.
pub fn decode_received(
    protocol: Protocol,
    ex: &Exchange<'_>,
) -> Result<Option<Inference>, DecodeError> {
    match protocol {
        Protocol::Openai => openai::decode_received(ex),
        _ => Ok(None),
    }
}

/// `Exchange` over owned parts, for tests, benchmarks, fuzzing and the corpus.
pub struct OwnedExchange {
    pub path: String,
    pub request: Bytes,
    pub request_headers: HeaderMap,
    pub response_headers: HeaderMap,
    pub response_chunks: Vec<(Duration, Bytes)>,
    response: Bytes,
}

impl OwnedExchange {
    /// A request body and a response arriving in `chunks`.
    pub fn new(path: &str, request: &[u8], chunks: Vec<(Duration, Bytes)>) -> Self {
        let mut whole = Vec::new();
        for (_, c) in &chunks {
            whole.extend_from_slice(c);
        }
        Self {
            path: path.to_string(),
            request: Bytes::copy_from_slice(request),
            request_headers: HeaderMap::new(),
            response_headers: HeaderMap::new(),
            response_chunks: chunks,
            response: Bytes::from(whole),
        }
    }

    /// A request and a response that arrived in one chunk.
    pub fn simple(path: &str, request: &[u8], response: &[u8]) -> Self {
        Self::new(
            path,
            request,
            vec![(Duration::ZERO, Bytes::copy_from_slice(response))],
        )
    }

    pub fn view(&self) -> Exchange<'_> {
        Exchange {
            path: &self.path,
            request: &self.request,
            request_headers: &self.request_headers,
            response: &self.response,
            response_headers: &self.response_headers,
            response_chunks: &self.response_chunks,
        }
    }
}

/// One entry point over raw bytes for the fuzz targets (`fuzz/`) and the corpus replayed by
/// `tests/protocol_corpus.rs`, so both exercise exactly the same code.
pub mod fuzzing {
    use std::time::Duration;

    use bytes::Bytes;

    use super::{decode, DecodeError, Inference, OwnedExchange, Rule};
    use crate::routes::config::{PredictionConfig, Protocol};

    /// The exchange a fuzz input stands for: the request body up to the first NUL byte, then
    /// the response; for `openai` the response is split into chunks at `\x01` bytes (1 ms apart)
    /// and served as an event stream, to reach the incremental SSE parser's chunk boundaries.
    pub fn exchange(protocol: Protocol, data: &[u8]) -> OwnedExchange {
        let (request, response) = match data.iter().position(|&b| b == 0) {
            Some(i) => (&data[..i], &data[i + 1..]),
            None => (data, &[][..]),
        };
        let path = match protocol {
            Protocol::KserveV2 => "/v2/models/fuzz/infer",
            Protocol::Openai => "/v1/chat/completions",
            Protocol::Tfserving => "/v1/models/fuzz:predict",
            Protocol::Json | Protocol::Opaque => "/predict",
        };
        if protocol == Protocol::Openai {
            let chunks = response
                .split(|&b| b == 1)
                .enumerate()
                .map(|(i, c)| (Duration::from_millis(i as u64), Bytes::copy_from_slice(c)))
                .collect();
            let mut ex = OwnedExchange::new(path, request, chunks);
            ex.response_headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/event-stream"),
            );
            ex
        } else {
            OwnedExchange::simple(path, request, response)
        }
    }

    /// The rule used for fuzzing: JSON pointers so the `json` adapter has work to do.
    pub fn rule(protocol: Protocol) -> Rule {
        match protocol {
            Protocol::Json => Rule::from(PredictionConfig {
                rows_pointer: "/predictions".into(),
                class_pointer: "/label".into(),
                score_pointer: "/scores".into(),
                value_pointer: "/value".into(),
                model_pointer: "/model".into(),
                ..PredictionConfig::default()
            }),
            _ => Rule::default(),
        }
    }

    /// Decode a fuzz input; must never panic.
    pub fn run(protocol: Protocol, data: &[u8]) -> Result<Option<Inference>, DecodeError> {
        let ex = exchange(protocol, data);
        decode(protocol, &ex.view(), &rule(protocol))
    }

    /// The gRPC exchange a fuzz input stands for (binary bodies hold NUL bytes, so the split
    /// is by length): byte 0 picks the method (even `ModelInfer`, odd `ModelStreamInfer`;
    /// 2 or 3 say the response is gzip-compressed), bytes 1–2 are the request body's length
    /// (big-endian), then the request body (gRPC-framed) and the response body.
    pub fn grpc_exchange(data: &[u8]) -> OwnedExchange {
        let (head, rest) = data.split_at(data.len().min(3));
        let method = head.first().copied().unwrap_or(0);
        let len = match head {
            [_, a, b] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        };
        let (request, response) = rest.split_at(len.min(rest.len()));
        let path = if method % 2 == 0 {
            "/inference.GRPCInferenceService/ModelInfer"
        } else {
            "/inference.GRPCInferenceService/ModelStreamInfer"
        };
        let mut ex = OwnedExchange::simple(path, request, response);
        let grpc = http::HeaderValue::from_static("application/grpc");
        ex.request_headers
            .insert(http::header::CONTENT_TYPE, grpc.clone());
        ex.response_headers.insert(http::header::CONTENT_TYPE, grpc);
        if method & 2 != 0 {
            ex.response_headers
                .insert("grpc-encoding", http::HeaderValue::from_static("gzip"));
        }
        ex
    }

    /// Decode a gRPC fuzz input on a `kserve_v2` route; must never panic.
    pub fn run_grpc(data: &[u8]) -> Result<Option<Inference>, DecodeError> {
        let ex = grpc_exchange(data);
        decode(Protocol::KserveV2, &ex.view(), &Rule::default())
    }
}
