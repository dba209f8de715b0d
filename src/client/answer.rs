//! An answer read back from a model server, the way the live path reads one: the route's
//! protocol adapter turns the exchange into predictions, plus the generated text for LLM
//! answers and the raw JSON for checks that point into it. Canary checks and shadow comparison
//! both start from an [`Answer`].

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use crate::protocol::sse::{Event, Parser};
use crate::protocol::{decode, DecodeError, Exchange, Prediction, Rule};
use crate::routes::config::Protocol;

/// What a response said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// One per row of the batch (from the protocol adapter).
    pub predictions: Vec<Prediction>,
    /// The generated text of the first choice (OpenAI-compatible answers, streamed or whole).
    pub text: Option<String>,
    /// The response body as JSON, when it is JSON (for `pointer` checks).
    pub json: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("the {0} adapter does not see an inference call at this path")]
    NotInference(&'static str),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Read one exchange with the adapter for `protocol` and the route's `rule`.
pub fn read(
    protocol: Protocol,
    rule: &Rule,
    path: &str,
    request: &[u8],
    request_headers: &HeaderMap,
    response: &Bytes,
    response_headers: &HeaderMap,
) -> Result<Answer, AnswerError> {
    let chunks = [(Duration::ZERO, response.clone())];
    let ex = Exchange {
        path,
        request,
        request_headers,
        response,
        response_headers,
        response_chunks: &chunks,
    };
    let inference =
        decode(protocol, &ex, rule)?.ok_or(AnswerError::NotInference(protocol.as_str()))?;
    let json = crate::protocol::tensor::parse_lenient::<Value>(response).ok();
    let text = match protocol {
        Protocol::Openai => match &json {
            Some(doc) => whole_text(doc),
            None => stream_text(response),
        },
        _ => None,
    };
    Ok(Answer {
        predictions: inference.predictions,
        text,
        json,
    })
}

/// The first choice's content of a whole (non-streamed) chat or text completion.
pub fn whole_text(doc: &Value) -> Option<String> {
    let choice = doc.pointer("/choices/0")?;
    choice
        .pointer("/message/content")
        .or_else(|| choice.get("text"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The first choice's content of a streamed completion: its `delta.content` (chat) or `text`
/// (completions) pieces in order.
pub fn stream_text(body: &[u8]) -> Option<String> {
    let mut parser = Parser::new();
    let mut events: Vec<Event> = Vec::new();
    parser.feed(body, Duration::ZERO, &mut events).ok()?;
    parser.feed(b"\n\n", Duration::ZERO, &mut events).ok()?;
    let mut text = String::new();
    let mut any = false;
    for e in events {
        let Ok(doc) = serde_json::from_str::<Value>(&e.data) else {
            continue;
        };
        let Some(choice) = doc.get("choices").and_then(Value::as_array).and_then(|c| {
            c.iter()
                .find(|c| c.get("index").and_then(Value::as_u64) == Some(0))
                .or(c.first())
        }) else {
            continue;
        };
        if let Some(piece) = choice
            .pointer("/delta/content")
            .or_else(|| choice.get("text"))
            .and_then(Value::as_str)
        {
            text.push_str(piece);
            any = true;
        }
    }
    any.then_some(text)
}

/// Lower-cased, trimmed, runs of white space collapsed to one space.
pub fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Every number at and below `v`, depth first (nested arrays of a tensor flattened row-major).
pub fn flatten_numbers(v: &Value, out: &mut Vec<f64>) -> bool {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) => {
                out.push(x);
                true
            }
            None => false,
        },
        Value::String(s) => match crate::protocol::tensor::special_float(s) {
            Some(x) => {
                out.push(x);
                true
            }
            None => false,
        },
        Value::Array(items) => items.iter().all(|i| flatten_numbers(i, out)),
        _ => false,
    }
}

/// `|got - want| <= abs + rel * |want|`, the test numpy's `isclose` uses; NaN never matches.
pub fn close(got: f64, want: f64, abs: f64, rel: f64) -> bool {
    if got == want {
        return true;
    }
    (got - want).abs() <= abs + rel * want.abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_whole_and_streamed_answers() {
        let doc: Value =
            serde_json::from_str(r#"{"choices":[{"index":0,"message":{"content":"Paris"}}]}"#)
                .unwrap();
        assert_eq!(whole_text(&doc).as_deref(), Some("Paris"));
        let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Pa\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ris\"}}]}\n\ndata: [DONE]\n\n";
        assert_eq!(stream_text(body).as_deref(), Some("Paris"));
        assert_eq!(normalize("  The  Answer\n is 42 "), "the answer is 42");
    }

    #[test]
    fn closeness_and_flattening() {
        assert!(close(1.0, 1.0, 0.0, 0.0));
        assert!(close(1.00001, 1.0, 0.0, 1e-4));
        assert!(!close(1.1, 1.0, 1e-6, 1e-4));
        assert!(!close(f64::NAN, 1.0, 1.0, 1.0));
        let mut out = Vec::new();
        assert!(flatten_numbers(
            &serde_json::json!([[1, 2.5], [3, "NaN"]]),
            &mut out
        ));
        assert_eq!(out.len(), 4);
        assert!(out[3].is_nan());
        assert!(!flatten_numbers(&serde_json::json!(["a"]), &mut Vec::new()));
    }
}
