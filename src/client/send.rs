//! The small HTTP client the probers, HTTP shadow targets and the demo's traffic share: its own
//! connection pool (never the proxy's, so probes and shadows cannot take live connections), a
//! whole-exchange timeout, a cap on the answer's size, and headers whose secret values come from
//! files.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A client with `connect_timeout` on its TCP connects and a small idle pool (probes, shadows).
pub fn new(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        // A probe or shadow target needs one or a few connections; idle ones close after 30 s
        // so a restarted server is reached on a fresh socket soon.
        .pool_max_idle_per_host(4)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// A pooled client for a stream of requests (the demo's traffic): connections are reused across
/// requests like a real client's, however many are open at once.
pub fn traffic() -> HttpClient {
    let mut connector = HttpConnector::new();
    // Small requests must not wait for Nagle's timer; that would show up as fake latency.
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector)
}

/// A whole answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The trailers, if any (a gRPC call's `grpc-status` is there); empty otherwise.
    pub trailers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No TCP connection (refused, unreachable, connect timeout): the server is not there.
    #[error("connect: {0}")]
    Connect(String),
    #[error("timed out")]
    Timeout,
    #[error("answer larger than {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Other(String),
}

/// Send `req` and read the whole answer within `timeout`, at most `max_body` bytes of it.
pub async fn send(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
    timeout: Duration,
    max_body: u64,
) -> Result<Reply, SendError> {
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| {
            if e.is_connect() {
                SendError::Connect(error_chain(&e))
            } else {
                SendError::Other(error_chain(&e))
            }
        })?;
        let (parts, body) = resp.into_parts();
        let collected = Limited::new(body, usize::try_from(max_body).unwrap_or(usize::MAX))
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    SendError::TooLarge(max_body)
                } else {
                    SendError::Other(e.to_string())
                }
            })?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            trailers,
            body: collected.to_bytes(),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| SendError::Timeout)?
}

/// An error and its sources on one line ("client error (Connect): tcp connect error: ...").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("{key}: cannot read secret header file {file}: {source}")]
    File {
        key: String,
        file: String,
        source: std::io::Error,
    },
    #[error("{key}: invalid header name or value")]
    Invalid { key: String },
}

/// Static headers plus secret ones read from files (`at` names the config key in errors).
/// Secret values are marked sensitive, so they never show in debug output.
pub fn headers(
    at: &str,
    fixed: &BTreeMap<String, String>,
    files: &BTreeMap<String, String>,
) -> Result<HeaderMap, HeaderError> {
    let mut map = HeaderMap::new();
    for (name, value) in fixed {
        let key = format!("{at}.headers.{name}");
        let (n, v) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        );
        match (n, v) {
            (Ok(n), Ok(v)) => {
                map.insert(n, v);
            }
            _ => return Err(HeaderError::Invalid { key }),
        }
    }
    for (name, file) in files {
        let key = format!("{at}.header_files.{name}");
        let text = std::fs::read_to_string(file).map_err(|source| HeaderError::File {
            key: key.clone(),
            file: file.clone(),
            source,
        })?;
        let n = HeaderName::from_bytes(name.as_bytes());
        let v = HeaderValue::from_str(text.trim());
        match (n, v) {
            (Ok(n), Ok(mut v)) => {
                v.set_sensitive(true);
                map.insert(n, v);
            }
            _ => return Err(HeaderError::Invalid { key }),
        }
    }
    Ok(map)
}
