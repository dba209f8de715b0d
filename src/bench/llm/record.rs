//! One LLM request as the bench saw it: its stream read with the live path's OpenAI adapter
//! ([`crate::protocol::openai`]) so token counts, TTFT, ITL and TPOT are computed exactly as
//! the sidecar computes them, and its goodput result from [`crate::protocol::goodput::classify`],
//! the function the sidecar classifies live requests with.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::bench::client::Observed;
use crate::metrics::slo_result;
use crate::protocol::{Exchange, FinishReason, TokenSource, Tokens};
use crate::routes::config::SloConfig;

/// One request's figures; times in seconds. `ttft_s` and `e2e_s` run from the *scheduled* send
/// time in an open-loop run (so a stalled server shows in them: no coordinated omission), from
/// the actual send in a closed loop, where the two are the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Order of issue.
    pub index: u64,
    /// The workload item sent (index into the prepared items, cycled).
    pub item: usize,
    /// Scheduled and actual send, and completion, from the start of the run.
    pub scheduled_s: f64,
    pub sent_s: f64,
    pub done_s: f64,
    /// `None` when the request succeeded: the bench's error kind, or `decode` for a 2xx stream
    /// the OpenAI adapter could not read (cut short, not JSON).
    pub error: Option<String>,
    pub status: Option<u16>,
    /// What the workload asked for, when the bench built the prompt.
    pub input_tokens_requested: Option<u64>,
    pub output_tokens_requested: Option<u64>,
    /// `usage.prompt_tokens` (with a chat template's tokens), when the server sent usage.
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// `usage` or `chunks` (content chunks counted: servers that ignore
    /// `stream_options.include_usage`, such as llama.cpp's).
    pub token_source: Option<String>,
    pub ttft_s: Option<f64>,
    /// Time to second token: first content chunk to the second.
    pub ttst_s: Option<f64>,
    /// Gaps between consecutive content chunks.
    pub itl_s: Vec<f64>,
    /// (last content chunk − first) / (output tokens − 1), as the sidecar computes it.
    pub tpot_s: Option<f64>,
    pub e2e_s: f64,
    /// Output tokens / (e2e − ttft): the reading speed one user sees.
    pub tokens_per_s: Option<f64>,
    pub finish_reason: Option<String>,
    /// `met`, `missed_ttft`, `missed_tpot`, `missed_e2e` or `failed`, by the sidecar's rule.
    pub slo_result: String,
}

/// Everything [`observe`] needs besides the observation.
pub struct Context<'a> {
    pub index: u64,
    pub item: usize,
    pub scheduled: Instant,
    pub start: Instant,
    pub path: &'a str,
    pub request: &'a [u8],
    pub requested: Option<(u64, u64)>,
    pub slo: &'a SloConfig,
}

/// The record of one finished request.
pub fn observe(cx: &Context<'_>, o: &Observed) -> RequestRecord {
    let at = |i: Instant| i.saturating_duration_since(cx.start).as_secs_f64();
    let e2e = o.done.saturating_duration_since(cx.scheduled);
    // Time between the schedule and the send (queued for a slot): part of TTFT and e2e.
    let late = o.sent.saturating_duration_since(cx.scheduled);
    let mut rec = RequestRecord {
        index: cx.index,
        item: cx.item,
        scheduled_s: at(cx.scheduled),
        sent_s: at(o.sent),
        done_s: at(o.done),
        error: o.error.map(|e| e.as_str().to_string()),
        status: o.status,
        input_tokens_requested: cx.requested.map(|r| r.0),
        output_tokens_requested: cx.requested.map(|r| r.1),
        input_tokens: None,
        output_tokens: None,
        token_source: None,
        ttft_s: None,
        ttst_s: None,
        itl_s: Vec::new(),
        tpot_s: None,
        e2e_s: e2e.as_secs_f64(),
        tokens_per_s: None,
        finish_reason: None,
        slo_result: slo_result::FAILED.to_string(),
    };
    if o.error.is_some() {
        return rec;
    }
    let Some(tokens) = decode(cx, o) else {
        rec.error = Some("decode".into());
        return rec;
    };
    let ttft = tokens.time_to_first_token.map(|t| t + late);
    rec.input_tokens = tokens.input;
    rec.output_tokens = tokens.output;
    rec.token_source = Some(
        match tokens.output_source {
            TokenSource::Usage => "usage",
            _ => "chunks",
        }
        .to_string(),
    );
    rec.ttft_s = ttft.map(|t| t.as_secs_f64());
    rec.ttst_s = tokens.time_to_second_token.map(|t| t.as_secs_f64());
    rec.itl_s = tokens
        .inter_token
        .iter()
        .map(Duration::as_secs_f64)
        .collect();
    rec.tpot_s = tokens.time_per_output_token.map(|t| t.as_secs_f64());
    rec.finish_reason = tokens
        .finish_reasons
        .first()
        .map(|f: &FinishReason| f.as_str().to_string());
    if let (Some(n), Some(t)) = (tokens.output, ttft) {
        let span = e2e.saturating_sub(t).as_secs_f64();
        if n >= 2 && span > 0.0 {
            rec.tokens_per_s = Some(n as f64 / span);
        }
    }
    // The sidecar's classification, on the times this client saw (TTFT from the schedule).
    let seen = Tokens {
        time_to_first_token: ttft,
        ..tokens
    };
    rec.slo_result = crate::protocol::goodput::classify(cx.slo, e2e, Some(&seen)).to_string();
    rec
}

/// The response read as the sidecar reads it; `None` when it cannot be.
fn decode(cx: &Context<'_>, o: &Observed) -> Option<Tokens> {
    let empty = http::HeaderMap::new();
    let body: Vec<u8> = o
        .chunks
        .iter()
        .flat_map(|(_, b)| b.iter().copied())
        .collect();
    let ex = Exchange {
        path: cx.path,
        request: cx.request,
        request_headers: &empty,
        response: &body,
        response_headers: o.headers.as_ref().unwrap_or(&empty),
        response_chunks: &o.chunks,
    };
    crate::protocol::openai::decode(&ex).ok()??.tokens
}
