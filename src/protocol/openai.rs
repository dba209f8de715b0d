//! OpenAI-compatible APIs (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`), as
//! served by vLLM, TGI, llama.cpp, Ollama and OpenAI itself: model and token usage, and for
//! `stream: true` the SSE stream read with each chunk's arrival time for time to first token,
//! inter-token latency and time per output token.

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::sse::{Parser, SseError};
use super::{DecodeError, Exchange, FinishReason, Inference, TokenSource, Tokens};

/// Most choices (`n`) whose text is kept for the output signals of one streamed answer.
const MAX_CHOICES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

pub fn endpoint(path: &str) -> Option<Endpoint> {
    let path = path.trim_end_matches('/');
    if path.ends_with("/chat/completions") {
        Some(Endpoint::ChatCompletions)
    } else if path.ends_with("/completions") {
        Some(Endpoint::Completions)
    } else if path.ends_with("/embeddings") {
        Some(Endpoint::Embeddings)
    } else {
        None
    }
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    /// `cached_tokens`: prompt tokens served from the prefix cache (OpenAI, vLLM, SGLang).
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    /// `reasoning_tokens`: the completion's thinking tokens (reasoning models).
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl Usage {
    fn cached(&self) -> Option<u64> {
        self.prompt_tokens_details.and_then(|d| d.cached_tokens)
    }

    fn reasoning(&self) -> Option<u64> {
        self.completion_tokens_details
            .and_then(|d| d.reasoning_tokens)
    }
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    data: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    finish_reason: Option<String>,
    /// Chat completions.
    #[serde(default)]
    message: Option<Message>,
    /// Text completions.
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    choices: Vec<StreamChoice>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    index: usize,
    #[serde(default)]
    delta: Option<Delta>,
    /// `/v1/completions` streams text, not deltas.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    /// Reasoning models (vLLM, DeepSeek) stream their thinking here before any content; the
    /// first token is the first of either.
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
}

impl StreamChoice {
    fn has_content(&self) -> bool {
        let nonempty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        nonempty(&self.text)
            || self.delta.as_ref().is_some_and(|d| {
                nonempty(&d.content) || nonempty(&d.reasoning_content) || d.tool_calls.is_some()
            })
    }
}

pub fn decode(ex: &Exchange<'_>) -> Result<Option<Inference>, DecodeError> {
    decode_as(ex, Whole::Yes)
}

/// What a client that went away mid-response received: a stream's events up to the last
/// complete one; `Ok(None)` for a cut non-streamed body (it cannot be read).
pub fn decode_received(ex: &Exchange<'_>) -> Result<Option<Inference>, DecodeError> {
    decode_as(ex, Whole::No)
}

/// Whether the response is whole (a stream that stops short of its end is then truncated).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Whole {
    Yes,
    No,
}

fn decode_as(ex: &Exchange<'_>, whole_response: Whole) -> Result<Option<Inference>, DecodeError> {
    let Some(endpoint) = endpoint(ex.path_only()) else {
        return Ok(None);
    };
    let request: Request = serde_json::from_slice(ex.request).map_err(DecodeError::Json)?;
    let event_stream = ex
        .response_headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let mut inference = if event_stream || request.stream == Some(true) {
        stream(ex, whole_response)?
    } else if whole_response == Whole::Yes {
        whole(ex.response, endpoint)?
    } else {
        return Ok(None);
    };
    // The request's model names what the client asked for: a LoRA adapter or one model of a
    // multi-model server, and one label per name (responses may add a dated version).
    if let Some(m) = request.model.filter(|m| !m.is_empty()) {
        inference.model = Some(m);
    }
    Ok(Some(inference))
}

fn whole(body: &[u8], endpoint: Endpoint) -> Result<Inference, DecodeError> {
    let r: Response = serde_json::from_slice(body).map_err(DecodeError::Json)?;
    let usage = r.usage.unwrap_or_default();
    let tokens = Tokens {
        input: usage.prompt_tokens,
        output: usage.completion_tokens,
        output_source: TokenSource::Usage,
        cached_input: usage.cached(),
        reasoning: usage.reasoning(),
        finish_reasons: r
            .choices
            .iter()
            .filter_map(|c| c.finish_reason.as_deref().map(FinishReason::parse))
            .collect(),
        texts: match endpoint {
            Endpoint::Embeddings => Vec::new(),
            _ => r
                .choices
                .iter()
                .map(|c| {
                    c.message
                        .as_ref()
                        .and_then(|m| m.content.clone())
                        .or_else(|| c.text.clone())
                        .unwrap_or_default()
                })
                .collect(),
        },
        ..Tokens::default()
    };
    Ok(Inference {
        model: r.model.filter(|m| !m.is_empty()),
        batch: match endpoint {
            Endpoint::Embeddings => r.data.map(|d| d.len()),
            _ => None,
        },
        tokens: Some(tokens),
        ..Inference::default()
    })
}

fn stream(ex: &Exchange<'_>, whole_response: Whole) -> Result<Inference, DecodeError> {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    for (at, chunk) in ex.response_chunks {
        parser.feed(chunk, *at, &mut events).map_err(|e| match e {
            SseError::Utf8 => DecodeError::Utf8,
            other => DecodeError::Invalid(other.to_string()),
        })?;
    }
    let mut model = None;
    let mut usage: Option<Usage> = None;
    let mut done = false;
    let mut content_times = Vec::new();
    let mut finish_reasons = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    for event in &events {
        if event.data.trim() == "[DONE]" {
            done = true;
            break;
        }
        let chunk: Chunk = serde_json::from_str(&event.data).map_err(DecodeError::Json)?;
        if chunk.error.is_some() {
            // An error in the middle of a stream ends it; the completion did not finish.
            finish_reasons.push(FinishReason::Other);
            done = true;
            break;
        }
        if model.is_none() {
            model = chunk.model.filter(|m| !m.is_empty());
        }
        if chunk.usage.is_some() {
            usage = chunk.usage;
        }
        if chunk.choices.iter().any(StreamChoice::has_content) {
            content_times.push(event.at);
        }
        for c in &chunk.choices {
            let piece = c
                .delta
                .as_ref()
                .and_then(|d| d.content.as_deref())
                .or(c.text.as_deref());
            if texts.len() <= c.index && c.index < MAX_CHOICES {
                texts.resize(c.index + 1, String::new());
            }
            if let (Some(piece), Some(text)) = (piece, texts.get_mut(c.index)) {
                text.push_str(piece);
            }
        }
        finish_reasons.extend(
            chunk
                .choices
                .iter()
                .filter_map(|c| c.finish_reason.as_deref().map(FinishReason::parse)),
        );
    }
    if whole_response == Whole::Yes && !done && (finish_reasons.is_empty() || parser.pending()) {
        return Err(DecodeError::Truncated);
    }
    let usage = usage.unwrap_or_default();
    let (output, output_source) = match usage.completion_tokens {
        Some(n) => (n, TokenSource::Usage),
        None => (content_times.len() as u64, TokenSource::Counted),
    };
    let output = Some(output);
    let inter_token = content_times.windows(2).map(|w| w[1] - w[0]).collect();
    let time_per_output_token = match (content_times.first(), content_times.last(), output) {
        (Some(first), Some(last), Some(n)) if content_times.len() >= 2 && n >= 2 => {
            Some((*last - *first) / (n - 1).min(u32::MAX as u64) as u32)
        }
        _ => None,
    };
    Ok(Inference {
        model,
        tokens: Some(Tokens {
            input: usage.prompt_tokens,
            output,
            output_source,
            cached_input: usage.cached(),
            reasoning: usage.reasoning(),
            time_to_first_token: content_times.first().copied(),
            time_to_second_token: content_times.get(1).map(|t| *t - content_times[0]),
            texts,
            inter_token,
            time_per_output_token,
            finish_reasons,
        }),
        ..Inference::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::OwnedExchange;
    use bytes::Bytes;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn chunk(content: &str) -> String {
        format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"llama\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{content:?}}},\"finish_reason\":null}}]}}\n\n"
        )
    }

    fn sse(parts: Vec<(u64, String)>) -> OwnedExchange {
        let mut ex = OwnedExchange::new(
            "/v1/chat/completions",
            br#"{"model":"req-model","stream":true,"messages":[]}"#,
            parts
                .into_iter()
                .map(|(t, s)| (ms(t), Bytes::from(s)))
                .collect(),
        );
        ex.response_headers.insert(
            http::header::CONTENT_TYPE,
            "text/event-stream".parse().unwrap(),
        );
        ex
    }

    #[test]
    fn stream_timings_and_counted_chunks() {
        let role = "data: {\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n".to_string();
        let finish = "data: {\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n".to_string();
        let ex = sse(vec![
            (5, role),
            (50, chunk("Hel")),
            (70, chunk("lo")),
            (100, chunk("!") + &finish + "data: [DONE]\n\n"),
        ]);
        let inf = decode(&ex.view()).unwrap().unwrap();
        // The request's model names it (the response's is a fallback).
        assert_eq!(inf.model.as_deref(), Some("req-model"));
        let t = inf.tokens.unwrap();
        assert_eq!(t.output, Some(3));
        assert_eq!(t.time_to_second_token, Some(ms(20)));
        assert_eq!(t.input, None);
        assert_eq!(t.time_to_first_token, Some(ms(50)));
        assert_eq!(t.inter_token, vec![ms(20), ms(30)]);
        assert_eq!(t.time_per_output_token, Some(ms(25)));
        assert_eq!(t.finish_reasons, vec![FinishReason::Length]);
    }

    #[test]
    fn usage_chunk_wins_over_counted_chunks() {
        let usage = "data: {\"model\":\"llama\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":9,\"total_tokens\":16}}\n\n".to_string();
        let finish =
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        let ex = sse(vec![
            (10, chunk("a")),
            (20, chunk("b") + finish),
            (21, usage + "data: [DONE]\n\n"),
        ]);
        let t = decode(&ex.view()).unwrap().unwrap().tokens.unwrap();
        assert_eq!((t.input, t.output), (Some(7), Some(9)));
        assert_eq!(t.time_per_output_token, Some(ms(10) / 8));
    }

    #[test]
    fn cached_and_reasoning_tokens_from_usage_streamed_or_not() {
        let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":9,\"prompt_tokens_details\":{\"cached_tokens\":64},\"completion_tokens_details\":{\"reasoning_tokens\":5}}}\n\n";
        let finish =
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        let ex = sse(vec![
            (10, chunk("a")),
            (20, chunk("b") + finish),
            (21, usage.to_string() + "data: [DONE]\n\n"),
        ]);
        let t = decode(&ex.view()).unwrap().unwrap().tokens.unwrap();
        assert_eq!(
            (t.input, t.cached_input, t.reasoning),
            (Some(100), Some(64), Some(5))
        );
        let ex = OwnedExchange::simple(
            "/v1/chat/completions",
            br#"{"messages":[]}"#,
            br#"{"model":"served","choices":[{"finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":32}}}"#,
        );
        let inf = decode(&ex.view()).unwrap().unwrap();
        // No model in the request: the response's.
        assert_eq!(inf.model.as_deref(), Some("served"));
        let t = inf.tokens.unwrap();
        assert_eq!((t.cached_input, t.reasoning), (Some(32), None));
        // Servers without details (llama.cpp) report none, not zero.
        let ex = sse(vec![(10, chunk("a") + finish + "data: [DONE]\n\n")]);
        let t = decode(&ex.view()).unwrap().unwrap().tokens.unwrap();
        assert_eq!(
            (t.cached_input, t.reasoning, t.time_to_second_token),
            (None, None, None)
        );
    }

    #[test]
    fn truncated_streams_are_malformed() {
        let ex = sse(vec![(10, chunk("a")), (20, "data: {\"cho".into())]);
        assert!(matches!(decode(&ex.view()), Err(DecodeError::Truncated)));
        let ex = sse(vec![(10, chunk("a"))]);
        assert!(matches!(decode(&ex.view()), Err(DecodeError::Truncated)));
        let ex = sse(vec![(10, chunk("a")), (20, "data: \u{7f}{\n\n".into())]);
        assert!(decode(&ex.view()).is_err());
    }

    #[test]
    fn what_a_client_received_before_leaving_is_read_as_far_as_it_went() {
        // Cut mid-event: the complete events count, the partial one is left.
        let ex = sse(vec![
            (10, chunk("a")),
            (20, chunk("b")),
            (30, "data: {\"cho".into()),
        ]);
        let t = decode_received(&ex.view())
            .unwrap()
            .unwrap()
            .tokens
            .unwrap();
        assert_eq!(t.output, Some(2));
        assert_eq!(t.output_source, TokenSource::Counted);
        assert_eq!(t.time_to_first_token, Some(ms(10)));
        assert!(t.finish_reasons.is_empty());
        // A cut plain body cannot be read.
        let ex = OwnedExchange::simple(
            "/v1/chat/completions",
            br#"{"model":"gpt","messages":[]}"#,
            br#"{"id":"x","choi"#,
        );
        assert_eq!(decode_received(&ex.view()).unwrap(), None);
    }

    #[test]
    fn non_streaming_usage_and_embeddings() {
        let ex = OwnedExchange::simple(
            "/v1/chat/completions",
            br#"{"model":"gpt","messages":[]}"#,
            br#"{"id":"x","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
        );
        let inf = decode(&ex.view()).unwrap().unwrap();
        assert_eq!(inf.model.as_deref(), Some("gpt"));
        let t = inf.tokens.unwrap();
        assert_eq!((t.input, t.output), (Some(12), Some(3)));
        assert_eq!(t.finish_reasons, vec![FinishReason::Stop]);

        let ex = OwnedExchange::simple(
            "/v1/embeddings",
            br#"{"model":"bge","input":["a","b"]}"#,
            br#"{"object":"list","data":[{"embedding":[0.1]},{"embedding":[0.2]}],"usage":{"prompt_tokens":4,"total_tokens":4}}"#,
        );
        let inf = decode(&ex.view()).unwrap().unwrap();
        assert_eq!(inf.model.as_deref(), Some("bge"));
        assert_eq!(inf.batch, Some(2));
        assert_eq!(inf.tokens.unwrap().input, Some(4));

        let ex = OwnedExchange::simple("/v1/models", b"", b"{}");
        assert_eq!(decode(&ex.view()).unwrap(), None);
    }
}
