//! `[proxy]`: the live path's listener, upstream, timeouts and limits, each default with the
//! reason for it, and the rules on those keys.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::config::checks::{at_least_one, secs_non_negative, secs_positive, upstream_problem};
use crate::config::validator::Validator;
use crate::routes::config::RouteConfig;

/// Smallest `max_request_header_bytes`: hyper's smallest HTTP/1.1 connection buffer.
pub const MIN_HEADER_BYTES: usize = 8192;
/// Largest `max_request_header_bytes` (16 MiB): it is also a per-connection buffer size.
pub const MAX_HEADER_BYTES: usize = 16 * 1024 * 1024;

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
    /// Largest request head (HTTP/1.1: request line and headers; HTTP/2: the decoded header
    /// list); larger gets 431. Also caps each HTTP/1.1 connection's read and write buffers.
    pub max_request_header_bytes: usize,
    /// Requests in flight at once across all routes; one more gets an immediate 503.
    pub max_in_flight: usize,
    /// Client connections open at once; at the cap the proxy stops accepting until one
    /// closes. 0 = from the open-file limit (see `conns::auto_max_connections`).
    pub max_connections: usize,
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
            // 60 KiB, Envoy's default (nginx allows 32 KiB): real inference requests carry a few
            // hundred bytes of headers, bearer tokens and tracing included; hyper's own limit
            // (~400 KB of buffer per connection) let 500 slow connections take 200 MB.
            max_request_header_bytes: 60 * 1024,
            // A model server saturates long before 1024 concurrent requests; past that, shed load.
            max_in_flight: 1024,
            // Sized from the fd limit (raised to its hard limit at start), leaving descriptors
            // for upstream connections and the admin listener, so `/healthz` and `/metrics`
            // keep answering when clients pile up.
            max_connections: 0,
            x_forwarded_for: false,
            // A transparent sidecar keeps Host as the client sent it.
            preserve_host: true,
            // Kubernetes' default terminationGracePeriodSeconds is 30; leave it 5 s to exit.
            shutdown_grace_secs: 25.0,
            // One event loop per core, as nginx's `worker_processes auto`: a connection and its
            // upstream connection stay on one thread, with no cross-thread wake-ups.
            worker_threads: 0,
            pool_max_idle_per_host: 64,
            // Below uvicorn's 5 s keep-alive (MLServer, FastAPI servers, vLLM) and most servers'
            // (Go 90 s+, nginx 75 s, Node 5 s): the sidecar drops an idle connection before the
            // server closes it, so a request rarely meets a closing connection (and the one
            // retry in `retry.rs` covers the race that remains).
            pool_idle_timeout_secs: 4.0,
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

/// The `[proxy]` keys; its `[[proxy.routes]]` are checked by `routes::config`.
pub fn validate(v: &mut Validator<'_>, p: &ProxyConfig) {
    if p.worker_threads > 1024 {
        v.report(
            "proxy.worker_threads",
            format!(
                "must be at most 1024 (0 = one per CPU core), got {}",
                p.worker_threads
            ),
        );
    }
    v.check("proxy.upstream", upstream_problem(&p.upstream));
    v.check(
        "proxy.connect_timeout_secs",
        secs_positive(p.connect_timeout_secs),
    );
    v.check(
        "proxy.first_byte_timeout_secs",
        secs_positive(p.first_byte_timeout_secs),
    );
    v.check(
        "proxy.body_idle_timeout_secs",
        secs_non_negative(p.body_idle_timeout_secs, " (0 disables)"),
    );
    v.check(
        "proxy.max_request_body_bytes",
        at_least_one(p.max_request_body_bytes),
    );
    if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&p.max_request_header_bytes) {
        v.report(
            "proxy.max_request_header_bytes",
            format!(
                "must be >= {MIN_HEADER_BYTES} and <= {MAX_HEADER_BYTES}, got {}",
                p.max_request_header_bytes
            ),
        );
    }
    v.check("proxy.max_in_flight", at_least_one(p.max_in_flight as u64));
    v.check(
        "proxy.shutdown_grace_secs",
        secs_non_negative(p.shutdown_grace_secs, ""),
    );
    v.check(
        "proxy.pool_idle_timeout_secs",
        secs_positive(p.pool_idle_timeout_secs),
    );
    v.check(
        "proxy.client_idle_timeout_secs",
        secs_positive(p.client_idle_timeout_secs),
    );
}
