//! The queries a bench sends: a JSON Lines file, or a small default body for the protocol.
//!
//! Format of `--requests FILE` (JSON Lines, UTF-8; blank lines and lines starting with `#` are
//! skipped). Each line is one of:
//! - a **record**: an object whose keys are only `method`, `path`, `body`, `headers`, with at
//!   least `path` or `body`. `method` defaults to `POST` (`GET` when there is no body), `path`
//!   (starting with `/`, may carry a query) replaces the target URL's path, `body` is sent as-is
//!   when it is a string and as JSON otherwise, `headers` is an object of string values;
//! - anything else: a JSON **body**, POSTed to the target URL with `content-type:
//!   application/json`.
//!
//! A payload that happens to look like a record (only those keys) can still be sent by wrapping
//! it: `{"body": {...}}`. Queries cycle through the lines in order.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;

use super::BenchError;
use crate::routes::config::Protocol;

/// One query to send: the method, an optional path replacing the target's, headers and body.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub method: Method,
    /// Path and query; `None` keeps the target URL's own.
    pub path: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

const RECORD_KEYS: [&str; 4] = ["method", "path", "body", "headers"];

/// Read and check every line of a JSON Lines request file; every problem names its line.
pub fn load(path: &str) -> Result<Vec<RequestTemplate>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
        path: path.to_string(),
        source,
    })?;
    parse(path, &text)
}

/// Hand each JSON value of a JSON Lines text (blank lines and `#` comments skipped) to `each`;
/// a line that is not JSON, or whose value `each` refuses, is an error naming the line.
pub fn for_each_json_line(
    name: &str,
    text: &str,
    mut each: impl FnMut(Value) -> Result<(), String>,
) -> Result<(), BenchError> {
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |msg: String| BenchError::RequestFile {
            path: name.to_string(),
            line: i + 1,
            msg,
        };
        let value: Value = serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        each(value).map_err(err)?;
    }
    Ok(())
}

/// [`load`] on text already read; `name` is used in error messages.
pub fn parse(name: &str, text: &str) -> Result<Vec<RequestTemplate>, BenchError> {
    let mut out = Vec::new();
    for_each_json_line(name, text, |value| {
        out.push(template(value)?);
        Ok(())
    })?;
    if out.is_empty() {
        return Err(BenchError::RequestFile {
            path: name.to_string(),
            line: 0,
            msg: "no requests in the file".into(),
        });
    }
    Ok(out)
}

fn is_record(v: &Value) -> bool {
    match v.as_object() {
        Some(o) => {
            !o.is_empty()
                && (o.contains_key("path") || o.contains_key("body"))
                && o.keys().all(|k| RECORD_KEYS.contains(&k.as_str()))
        }
        None => false,
    }
}

fn template(v: Value) -> Result<RequestTemplate, String> {
    if !is_record(&v) {
        return Ok(json_post(
            serde_json::to_vec(&v).map_err(|e| e.to_string())?,
        ));
    }
    let o = v.as_object().expect("checked by is_record");
    let body = match o.get("body") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some((Bytes::from(s.clone()), false)),
        Some(other) => Some((
            Bytes::from(serde_json::to_vec(other).map_err(|e| e.to_string())?),
            true,
        )),
    };
    let method = match o.get("method") {
        None => {
            if body.is_some() {
                Method::POST
            } else {
                Method::GET
            }
        }
        Some(Value::String(m)) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("method {m:?} is not an HTTP method"))?,
        Some(_) => return Err("method must be a string".into()),
    };
    let path = match o.get("path") {
        None => None,
        Some(Value::String(p)) if p.starts_with('/') => Some(p.clone()),
        Some(_) => return Err("path must be a string starting with /".into()),
    };
    let mut headers = Vec::new();
    if let Some(h) = o.get("headers") {
        let h = h.as_object().ok_or("headers must be an object")?;
        for (k, v) in h {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("header name {k:?} is invalid"))?;
            let v = v.as_str().ok_or("header values must be strings")?;
            let value =
                HeaderValue::from_str(v).map_err(|_| format!("header {k:?} value is invalid"))?;
            headers.push((name, value));
        }
    }
    let (body, is_json) = body.unwrap_or_default();
    if is_json && !headers.iter().any(|(n, _)| n == http::header::CONTENT_TYPE) {
        headers.push((
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ));
    }
    Ok(RequestTemplate {
        method,
        path,
        headers,
        body,
    })
}

/// A POST of a JSON body to the target URL.
pub fn json_post(body: Vec<u8>) -> RequestTemplate {
    RequestTemplate {
        method: Method::POST,
        path: None,
        headers: vec![(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body: Bytes::from(body),
    }
}

/// The query sent when no `--requests` file is given: a minimal valid request for the
/// protocol (so `inferwatch bench URL` works against a model server out of the box), or a
/// plain GET for `opaque`.
pub fn default_for(protocol: Protocol) -> RequestTemplate {
    let body = match protocol {
        Protocol::KserveV2 => serde_json::json!({"inputs": [{"name": "input-0", "shape": [1, 4],
            "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}),
        Protocol::Openai => serde_json::json!({"model": "default", "stream": true,
            "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello."}]}),
        Protocol::Tfserving => serde_json::json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}),
        Protocol::Json => serde_json::json!({}),
        Protocol::Opaque => {
            return RequestTemplate {
                method: Method::GET,
                path: None,
                headers: Vec::new(),
                body: Bytes::new(),
            }
        }
    };
    json_post(serde_json::to_vec(&body).expect("static JSON"))
}

/// The gRPC query sent for `--protocol kserve_v2_grpc` without a `--requests` file: a
/// `ModelInfer` call for `model` with one iris row as raw FP32 contents.
pub fn default_grpc(model: &str) -> RequestTemplate {
    use crate::protocol::grpc_frame::frame;
    use crate::protocol::kserve_v2_grpc::{InferTensor, ModelInferRequest, SERVICE};
    use prost::Message;
    let row: Vec<u8> = [5.1f32, 3.5, 1.4, 0.2]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let req = ModelInferRequest {
        model_name: model.to_string(),
        inputs: vec![InferTensor {
            name: "input-0".into(),
            datatype: "FP32".into(),
            shape: vec![1, 4],
            contents: None,
        }],
        raw_input_contents: vec![row],
        ..ModelInferRequest::default()
    };
    RequestTemplate {
        method: Method::POST,
        path: Some(format!("{SERVICE}ModelInfer")),
        headers: vec![
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            ),
            (http::header::TE, HeaderValue::from_static("trailers")),
        ],
        body: Bytes::from(frame(&req.encode_to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_bodies() {
        let text = r#"
# a comment
{"inputs": [1, 2]}
{"path": "/v1/chat/completions", "body": {"stream": true}}
{"method": "get", "path": "/healthz"}
{"body": "raw text", "headers": {"content-type": "text/plain"}}
{"body": {"path": "/x"}}
"#;
        let t = parse("f", text).unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t[0].method, Method::POST);
        assert!(t[0].path.is_none());
        assert_eq!(&t[0].body[..], br#"{"inputs":[1,2]}"#);
        assert_eq!(t[1].path.as_deref(), Some("/v1/chat/completions"));
        assert_eq!(t[2].method, Method::GET);
        assert!(t[2].body.is_empty());
        assert_eq!(&t[3].body[..], b"raw text");
        assert_eq!(t[3].headers.len(), 1);
        assert_eq!(&t[4].body[..], br#"{"path":"/x"}"#);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("f.jsonl", "{}\n{nope\n").unwrap_err().to_string();
        assert!(e.starts_with("f.jsonl:2:"), "{e}");
        let e = parse("f.jsonl", r#"{"path": "x", "body": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("starting with /"), "{e}");
        assert!(parse("f", "\n# only\n").is_err());
    }
}
