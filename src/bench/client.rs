//! One query over HTTP: send, read the whole response, time it; for OpenAI-style streaming
//! responses (`text/event-stream`) also time the first and last content-bearing SSE events.
//!
//! The events are read with the live path's event-stream parser ([`crate::protocol::sse`]), so
//! the bench and the sidecar split a stream into events the same way; here only an event's
//! timing and whether it carries content (`choices[0].delta.content` or `choices[0].text`
//! non-empty) matter, not the text.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::requests::RequestTemplate;
use super::BenchError;
use crate::protocol::sse::{Event, Parser};

/// The load generator's client is the off-path client every component uses to talk to a model
/// server (pooled, no Nagle delay, 5 s connect timeout).
pub use crate::client::{traffic as http_client, HttpClient};

/// The gRPC load generator's client: the same pooled client speaking HTTP/2 with prior
/// knowledge (h2c), as gRPC servers expect; each worker's calls share one connection's streams.
/// (The one canary probes and HTTP shadow targets send gRPC calls with.)
pub fn grpc_client() -> HttpClient {
    crate::client::grpc::h2c(Duration::from_secs(5))
}

/// The URL queries go to; records in the request file may replace its path.
#[derive(Debug, Clone)]
pub struct Target {
    url: Uri,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, BenchError> {
        let bad = |msg: &str| BenchError::Url {
            url: url.to_string(),
            msg: msg.to_string(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(bad("only http:// targets are supported")),
            None => return Err(bad("needs a scheme, e.g. http://host:port/path")),
        }
        if uri.authority().is_none() {
            return Err(bad("needs a host"));
        }
        Ok(Self { url: uri })
    }

    pub fn as_str(&self) -> String {
        self.url.to_string()
    }

    /// The last segment of the URL's path (`http://host:8081/iris` → `iris`): the model a gRPC
    /// bench calls.
    pub fn model_from_path(&self) -> Option<String> {
        self.url
            .path()
            .rsplit('/')
            .find(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// The URI for one template: the target's, with the template's path if it has one.
    pub fn uri_for(&self, t: &RequestTemplate) -> Uri {
        match &t.path {
            None => self.url.clone(),
            Some(p) => {
                let mut parts = self.url.clone().into_parts();
                parts.path_and_query = p.parse().ok();
                Uri::from_parts(parts).unwrap_or_else(|_| self.url.clone())
            }
        }
    }
}

/// Why a query failed. A closed set: these are counted per kind in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No connection, or it broke before response headers.
    Connect,
    /// No complete response within the per-query timeout.
    Timeout,
    /// A 4xx status.
    Status4xx,
    /// A 5xx status.
    Status5xx,
    /// The response body broke off, or a gRPC call ended without a `grpc-status`.
    Body,
    /// A gRPC call answered with a `grpc-status` other than OK.
    GrpcStatus,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status4xx => "status_4xx",
            ErrorKind::Status5xx => "status_5xx",
            ErrorKind::Body => "body",
            ErrorKind::GrpcStatus => "grpc_status",
        }
    }
}

/// What one query observed.
#[derive(Debug, Clone)]
pub struct Observed {
    pub done: Instant,
    pub status: Option<u16>,
    pub error: Option<ErrorKind>,
    pub first_token: Option<Instant>,
    pub last_token: Option<Instant>,
    pub tokens: u32,
    /// When the request was handed to the connection (the base of `chunks`' times).
    pub sent: Instant,
    /// With `collect`: the response body as it arrived, each chunk with its time after `sent`,
    /// for the LLM figures (read with the live path's OpenAI adapter).
    pub chunks: Vec<(Duration, Bytes)>,
    /// With `collect`: the response's headers.
    pub headers: Option<http::HeaderMap>,
}

/// Send one query and read its whole response (the latency ends at the last byte, as a client
/// sees it), within `timeout`; with `collect`, keep the body's chunks and their times.
pub async fn send(
    client: &HttpClient,
    target: &Target,
    t: &RequestTemplate,
    timeout: Duration,
    collect: bool,
) -> Observed {
    let sent = Instant::now();
    let fut = send_inner(client, target, t, collect, sent);
    match tokio::time::timeout(timeout, fut).await {
        Ok(o) => o,
        Err(_) => Observed {
            done: Instant::now(),
            status: None,
            error: Some(ErrorKind::Timeout),
            first_token: None,
            last_token: None,
            tokens: 0,
            sent,
            chunks: Vec::new(),
            headers: None,
        },
    }
}

async fn send_inner(
    client: &HttpClient,
    target: &Target,
    t: &RequestTemplate,
    collect: bool,
    sent: Instant,
) -> Observed {
    let mut builder = Request::builder()
        .method(t.method.clone())
        .uri(target.uri_for(t));
    for (k, v) in &t.headers {
        builder = builder.header(k, v);
    }
    let failed = |error| Observed {
        done: Instant::now(),
        status: None,
        error: Some(error),
        first_token: None,
        last_token: None,
        tokens: 0,
        sent,
        chunks: Vec::new(),
        headers: None,
    };
    let Ok(req) = builder.body(Full::new(t.body.clone())) else {
        return failed(ErrorKind::Connect);
    };
    let resp = match client.request(req).await {
        Ok(r) => r,
        Err(_) => return failed(ErrorKind::Connect),
    };
    let status = resp.status().as_u16();
    let is_sse = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    // A gRPC call's result is its grpc-status: in a trailers-only answer's headers, or in the
    // trailers after the messages.
    let grpc = crate::metrics::is_grpc(resp.headers());
    let mut grpc_status = grpc_status_of(resp.headers());
    let headers = collect.then(|| resp.headers().clone());
    let mut chunks = Vec::new();
    let mut body = resp.into_body();
    let mut sse = is_sse.then(SseTokens::default);
    let mut error = match status {
        400..=499 => Some(ErrorKind::Status4xx),
        500..=599 => Some(ErrorKind::Status5xx),
        _ => None,
    };
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let now = Instant::now();
                    if let Some(sse) = sse.as_mut() {
                        sse.feed(data, now);
                    }
                    if collect {
                        chunks.push((now.saturating_duration_since(sent), data.clone()));
                    }
                }
                if let Some(trailers) = frame.trailers_ref() {
                    grpc_status = grpc_status_of(trailers).or(grpc_status);
                }
            }
            Some(Err(_)) => {
                error = error.or(Some(ErrorKind::Body));
                break;
            }
        }
    }
    if grpc {
        error = error.or(match grpc_status {
            Some(crate::metrics::GrpcCode::Ok) => None,
            Some(_) => Some(ErrorKind::GrpcStatus),
            None => Some(ErrorKind::Body),
        });
    }
    let (first_token, last_token, tokens) =
        sse.map_or((None, None, 0), |s| (s.first, s.last, s.count));
    Observed {
        done: Instant::now(),
        status: Some(status),
        error,
        first_token,
        last_token,
        tokens,
        sent,
        chunks,
        headers,
    }
}

fn grpc_status_of(headers: &http::HeaderMap) -> Option<crate::metrics::GrpcCode> {
    headers
        .get("grpc-status")
        .and_then(|v| crate::metrics::GrpcCode::parse(v.as_bytes()))
}

/// Incremental SSE reader that only times content-bearing events.
#[derive(Debug)]
pub struct SseTokens {
    parser: Parser,
    /// Arrival of the first chunk: the parser keeps times as offsets from it.
    base: Option<Instant>,
    events: Vec<Event>,
    /// The body stopped being an event stream (not UTF-8, an endless line): nothing after that
    /// is counted.
    broken: bool,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    pub count: u32,
}

impl Default for SseTokens {
    fn default() -> Self {
        Self {
            parser: Parser::new(),
            base: None,
            events: Vec::new(),
            broken: false,
            first: None,
            last: None,
            count: 0,
        }
    }
}

impl SseTokens {
    /// Feed a chunk received at `now`; complete events in it are examined, each timed at the
    /// arrival of the chunk that completed it.
    pub fn feed(&mut self, chunk: &[u8], now: Instant) {
        if self.broken {
            return;
        }
        let base = *self.base.get_or_insert(now);
        let at = now.saturating_duration_since(base);
        self.broken = self.parser.feed(chunk, at, &mut self.events).is_err();
        for event in self.events.drain(..) {
            if has_content(&event.data) {
                let at = base + event.at;
                self.count += 1;
                self.first.get_or_insert(at);
                self.last = Some(at);
            }
        }
    }
}

/// Whether an event's data is an OpenAI chunk carrying generated text.
fn has_content(data: &str) -> bool {
    let data = data.trim();
    if data.is_empty() || data == "[DONE]" {
        return false;
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
        return false;
    };
    let choice = &v["choices"][0];
    let nonempty = |x: &serde_json::Value| x.as_str().is_some_and(|s| !s.is_empty());
    nonempty(&choice["delta"]["content"]) || nonempty(&choice["text"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_counts_content_events_across_chunks() {
        let mut s = SseTokens::default();
        let now = Instant::now();
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            ": keep-alive comment\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\r\n\r\n",
            "data: {\"choices\":[{\"text\":\"!\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        for chunk in stream.as_bytes().chunks(7) {
            s.feed(chunk, now);
        }
        assert_eq!(s.count, 3);
        assert!(s.first.is_some());
    }

    #[test]
    fn sse_times_each_event_at_the_chunk_that_completed_it() {
        let mut s = SseTokens::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        s.feed(
            b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            at(0),
        );
        s.feed(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}",
            at(5),
        );
        s.feed(b"\n\ndata: {\"choices\":[{\"text\":\"b\"}]}\n", at(9));
        s.feed(b"\ndata: [DONE]\n\n", at(14));
        assert_eq!((s.count, s.first, s.last), (2, Some(at(9)), Some(at(14))));
    }

    #[test]
    fn target_paths() {
        let t = Target::parse("http://127.0.0.1:9/v2/models/m/infer").unwrap();
        let mut r = super::super::requests::default_for(crate::routes::config::Protocol::Json);
        assert_eq!(t.uri_for(&r).path(), "/v2/models/m/infer");
        r.path = Some("/other?x=1".into());
        assert_eq!(t.uri_for(&r).to_string(), "http://127.0.0.1:9/other?x=1");
        assert!(Target::parse("https://x/").is_err());
        assert!(Target::parse("/x").is_err());
    }
}
