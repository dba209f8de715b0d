//! The live path's guard counters: what the proxy did besides forwarding one request once —
//! requests refused before they reached a route, and requests sent a second time.
//!
//! Both label sets are closed enums; every value is created at start so a scrape shows zeros
//! rather than missing series.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::{names, registered};

/// Why a request was answered before routing (it has no route, so it is not in
/// `inferwatch_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Request head over `max_request_header_bytes`: 431 (HTTP/1.1 from hyper, HTTP/2 from
    /// `proxy::limits`).
    HeaderTooLarge,
    /// Two `Host` headers, or HTTP/1.1 without one (RFC 9112 §3.2): 400.
    BadHost,
    /// `CONNECT`: a sidecar in front of one model server is not a tunnel: 405.
    Connect,
    /// A protocol upgrade (`Upgrade:`, e.g. WebSocket): 501.
    Upgrade,
}

impl RejectReason {
    pub const ALL: [RejectReason; 4] = [
        RejectReason::HeaderTooLarge,
        RejectReason::BadHost,
        RejectReason::Connect,
        RejectReason::Upgrade,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::HeaderTooLarge => "header_too_large",
            RejectReason::BadHost => "bad_host",
            RejectReason::Connect => "connect",
            RejectReason::Upgrade => "upgrade",
        }
    }
}

/// Why a request was sent upstream a second time, on a fresh connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// The pooled connection was closed before it took the request: nothing was sent.
    ClosedBeforeSend,
    /// The request went out on a reused connection that then closed or reset before a single
    /// byte of response: the server was closing it (keep-alive timeout) as the request arrived.
    ResetBeforeResponse,
}

impl RetryReason {
    pub const ALL: [RetryReason; 2] = [
        RetryReason::ClosedBeforeSend,
        RetryReason::ResetBeforeResponse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::ClosedBeforeSend => "closed_before_send",
            RetryReason::ResetBeforeResponse => "reset_before_response",
        }
    }
}

/// The counters, with one handle per label value so the live path only increments an atomic.
#[derive(Clone)]
pub struct GuardMetrics {
    rejected: [IntCounter; RejectReason::ALL.len()],
    retries: [IntCounter; RetryReason::ALL.len()],
    /// Client connections open now, and the cap (`proxy.max_connections`, resolved).
    pub connections: IntGauge,
    pub connections_max: IntGauge,
}

impl GuardMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let rejected = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    names::REQUESTS_REJECTED_TOTAL,
                    "Client requests refused before routing (header too large, bad Host, CONNECT, Upgrade).",
                ),
                &["reason"],
            )?,
        )?;
        let retries = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    names::UPSTREAM_RETRIES_TOTAL,
                    "Requests sent upstream again on a fresh connection after a reused one failed before any response byte.",
                ),
                &["reason"],
            )?,
        )?;
        let connections = registered(
            registry,
            IntGauge::new(
                names::CLIENT_CONNECTIONS,
                "Client connections open on the proxy listener.",
            )?,
        )?;
        let connections_max = registered(
            registry,
            IntGauge::new(
                names::CLIENT_CONNECTIONS_MAX,
                "The cap on client connections (proxy.max_connections, resolved); at the cap the proxy stops accepting until one closes.",
            )?,
        )?;
        Ok(Self::from_vecs(
            &rejected,
            &retries,
            connections,
            connections_max,
        ))
    }

    /// Handles on families nobody scrapes (unit tests, benches).
    pub fn unregistered() -> Self {
        let rejected = IntCounterVec::new(Opts::new("rejected", "-"), &["reason"])
            .expect("static metric definition");
        let retries = IntCounterVec::new(Opts::new("retries", "-"), &["reason"])
            .expect("static metric definition");
        let gauge = |n: &str| IntGauge::new(n, "-").expect("static metric definition");
        Self::from_vecs(&rejected, &retries, gauge("c"), gauge("m"))
    }

    fn from_vecs(
        rejected: &IntCounterVec,
        retries: &IntCounterVec,
        connections: IntGauge,
        connections_max: IntGauge,
    ) -> Self {
        Self {
            rejected: RejectReason::ALL.map(|r| rejected.with_label_values(&[r.as_str()])),
            retries: RetryReason::ALL.map(|r| retries.with_label_values(&[r.as_str()])),
            connections,
            connections_max,
        }
    }

    pub fn rejected(&self, r: RejectReason) {
        self.rejected[r as usize].inc();
    }

    pub fn retried(&self, r: RetryReason) {
        self.retries[r as usize].inc();
    }
}
