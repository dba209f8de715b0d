//! Streaming body wrappers for the live path. They pass every frame through as it comes (no
//! buffering), enforce the request size limit and the idle-between-chunks timeout, and finish the
//! request's accounting exactly once: at end of stream, on error, or when dropped early.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::{grpc, Inner};
use crate::metrics::{CodeClass, GrpcCode, Outcome};
use crate::routes::RouteStats;
use crate::tap::{RequestTap, TapRecorder};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The accounting for one admitted request. Finishing it counts the request, observes its
/// duration where that is meaningful, and releases its in-flight slot. Dropping it unfinished
/// means the client went away.
pub struct Accounting {
    stats: Arc<RouteStats>,
    global_in_flight: Arc<AtomicUsize>,
    start: Instant,
    /// The upstream's status, once response headers have arrived.
    status: Option<u16>,
    /// Whether the request was handed to the upstream (its latency is then real, not local).
    forwarded: bool,
    grpc: GrpcCall,
    done: bool,
}

/// Where a gRPC call stands: its result is the `grpc-status` of its trailers (or of a
/// trailers-only response), not the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrpcCall {
    /// Not a gRPC call (the response's content type is not `application/grpc…`).
    No,
    /// A gRPC call whose `grpc-status` has not been seen yet; ending like this is a reset.
    Pending,
    Status(GrpcCode),
}

impl Accounting {
    /// Admit a request: counts it in flight. The caller has already checked the global limit.
    pub fn admit(
        stats: Arc<RouteStats>,
        global_in_flight: Arc<AtomicUsize>,
        start: Instant,
    ) -> Self {
        stats.in_flight.inc();
        Self {
            stats,
            global_in_flight,
            start,
            status: None,
            forwarded: false,
            grpc: GrpcCall::No,
            done: false,
        }
    }

    pub fn route(&self) -> &RouteStats {
        &self.stats
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn set_forwarded(&mut self) {
        self.forwarded = true;
    }

    /// Response headers arrived from the upstream.
    pub fn headers_received(&mut self, status: u16, now: Instant) {
        self.status = Some(status);
        self.stats.ttfb.observe((now - self.start).as_secs_f64());
    }

    /// This is a gRPC call: its result comes from `grpc-status`, and ending without one is a
    /// reset.
    pub fn set_grpc(&mut self) {
        if self.grpc == GrpcCall::No {
            self.grpc = GrpcCall::Pending;
        }
    }

    pub fn is_grpc(&self) -> bool {
        self.grpc != GrpcCall::No
    }

    /// The call's `grpc-status`: from the upstream's trailers, or the code the sidecar
    /// answered with itself.
    pub fn set_grpc_status(&mut self, code: GrpcCode) {
        self.grpc = GrpcCall::Status(code);
    }

    /// The upstream's response headers: a gRPC call only if they say `application/grpc` (a
    /// plain HTTP answer to a gRPC request is counted by its HTTP status, as a gRPC client
    /// maps it); a trailers-only response carries its `grpc-status` here.
    pub fn grpc_response(&mut self, headers: &http::HeaderMap) {
        if self.grpc == GrpcCall::No {
            return;
        }
        if grpc::is_grpc(headers) {
            self.grpc_trailers(headers);
        } else {
            self.grpc = GrpcCall::No;
        }
    }

    /// Read `grpc-status` from a trailers frame (or a trailers-only response's headers) of a
    /// gRPC call; for anything else this is one comparison.
    pub fn grpc_trailers(&mut self, trailers: &http::HeaderMap) {
        if self.grpc != GrpcCall::No {
            if let Some(code) = grpc::status(trailers) {
                self.grpc = GrpcCall::Status(code);
            }
        }
    }

    /// Finish with an outcome. `local_status` is the status inferwatch answered with itself.
    /// A gRPC call that the upstream finished (`Ok`) takes its outcome from its `grpc-status`:
    /// `grpc_error` when not OK, `response_reset` when it ended without one. Returns the
    /// outcome counted.
    pub fn finish(&mut self, outcome: Outcome, local_status: Option<u16>) -> Outcome {
        if self.done {
            return outcome;
        }
        self.done = true;
        let outcome = match (outcome, self.grpc) {
            (Outcome::Ok, GrpcCall::Pending) => Outcome::ResponseReset,
            (Outcome::Ok, GrpcCall::Status(code)) if code != GrpcCode::Ok => Outcome::GrpcError,
            (o, _) => o,
        };
        if let GrpcCall::Status(code) = self.grpc {
            self.stats.count_grpc(code);
        }
        let now = Instant::now();
        let class = match (local_status, self.status) {
            (Some(s), _) | (None, Some(s)) => CodeClass::from_status(s),
            (None, None) => CodeClass::None,
        };
        self.stats.count_timed(class, outcome, now - self.start);
        // Latency is the time the client waited for the upstream. Failures answered locally
        // (overload, limits, connect errors) say nothing about the model server and would drag
        // the quantiles down, so they are counted but not timed; a stall that ended in a
        // timeout or a client giving up *is* tail latency and is kept.
        let timed = self.forwarded
            && matches!(
                outcome,
                Outcome::Ok
                    | Outcome::FirstByteTimeout
                    | Outcome::ResponseReset
                    | Outcome::ResponseBodyTimeout
                    | Outcome::ClientAborted
                    | Outcome::GrpcError
            );
        if timed {
            self.stats
                .observe_duration((now - self.start).as_secs_f64(), now);
        }
        self.stats.in_flight.dec();
        self.global_in_flight.fetch_sub(1, Ordering::AcqRel);
        if outcome != Outcome::Ok {
            tracing::debug!(route = %self.stats.info.name, outcome = outcome.as_str(), "request finished");
        }
        outcome
    }
}

impl Drop for Accounting {
    fn drop(&mut self) {
        self.finish(Outcome::ClientAborted, None);
    }
}

/// Why a request body stopped early; read by the forwarder to map the upstream error.
pub const REQ_OK: u8 = 0;
pub const REQ_TOO_LARGE: u8 = 1;
pub const REQ_IDLE: u8 = 2;
pub const REQ_BROKEN: u8 = 3;

#[derive(Debug)]
struct ProxyBodyError(&'static str);
impl std::fmt::Display for ProxyBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for ProxyBodyError {}

/// Resettable idle timer: armed when the inner body is pending, reset by every frame.
struct Idle {
    after: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Idle {
    fn new(after: Option<Duration>) -> Self {
        Self { after, sleep: None }
    }
    fn reset(&mut self) {
        if let (Some(after), Some(s)) = (self.after, self.sleep.as_mut()) {
            s.as_mut().reset(Instant::now() + after);
        }
    }
    /// Called when the inner body is pending: true once the body has been idle too long.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(after) = self.after else {
            return false;
        };
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
        sleep.as_mut().poll(cx).is_ready()
    }
}

/// The client's request body on its way upstream: streamed, size-limited, idle-limited.
pub struct RequestBody {
    inner: Incoming,
    seen: u64,
    max: u64,
    idle: Idle,
    state: Arc<AtomicU8>,
    tap: Option<RequestTap>,
}

impl RequestBody {
    pub fn new(
        inner: Incoming,
        max: u64,
        idle: Option<Duration>,
        state: Arc<AtomicU8>,
        tap: Option<RequestTap>,
    ) -> Self {
        Self {
            inner,
            seen: 0,
            max,
            idle: Idle::new(idle),
            state,
            tap,
        }
    }

    fn fail(
        &mut self,
        code: u8,
        msg: &'static str,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state.store(code, Ordering::Release);
        Poll::Ready(Some(Err(Box::new(ProxyBodyError(msg)))))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.max {
                        return this
                            .fail(REQ_TOO_LARGE, "request body over max_request_body_bytes");
                    }
                    if let Some(tap) = &this.tap {
                        tap.push(data);
                    }
                }
                this.idle.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.state.store(REQ_BROKEN, Ordering::Release);
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.idle.expired(cx) {
                    return this.fail(REQ_IDLE, "request body idle timeout");
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The upstream's response body on its way to the client: streamed frame by frame, with the
/// idle timeout, finishing the accounting when it ends, breaks or is dropped.
pub struct ResponseBody {
    inner: Incoming,
    idle: Idle,
    acct: Option<Accounting>,
    tap: Option<TapRecorder>,
    /// The request's handle on the proxy (moved here from the request, so it costs nothing
    /// more): the rate limit on warnings when the body fails.
    proxy: Arc<Inner>,
}

impl ResponseBody {
    pub(crate) fn new(
        inner: Incoming,
        proxy: Arc<Inner>,
        acct: Accounting,
        tap: Option<TapRecorder>,
    ) -> Self {
        let mut body = Self {
            inner,
            idle: Idle::new(proxy.body_idle),
            acct: Some(acct),
            tap,
            proxy,
        };
        // A body that is already complete (HEAD, 204, 304, Content-Length: 0) may never be
        // polled by the server, so finish now rather than counting it as aborted on drop.
        if body.inner.is_end_stream() {
            body.finish(Outcome::Ok);
        }
        body
    }

    fn finish(&mut self, outcome: Outcome) {
        let outcome = match self.acct.take() {
            Some(mut a) => a.finish(outcome, None),
            None => outcome,
        };
        // Complete exchanges are inspected, and so is what a client that went away received;
        // upstream breaks and failed gRPC calls are already counted by outcome.
        if let Some(tap) = self.tap.take() {
            match outcome {
                Outcome::Ok => tap.complete(Instant::now()),
                Outcome::ClientAborted => tap.client_aborted(Instant::now()),
                _ => {}
            }
        }
    }

    /// Log why the body failed: at WARN for the first of each interval per outcome (with the
    /// count held back since the last one logged), at DEBUG for the rest (`warn.rs`); the
    /// counters carry every request.
    fn warn(&self, outcome: Outcome, error: &dyn std::fmt::Display, what: &str) {
        let Some(a) = &self.acct else { return };
        let route = &a.route().info.name;
        match self.proxy.warnings.admit(outcome) {
            Some(suppressed) => {
                tracing::warn!(route = %route, outcome = outcome.as_str(), error = %error, suppressed, "{what} (suppressed: like warnings held back since the last one)")
            }
            None => {
                tracing::debug!(route = %route, outcome = outcome.as_str(), error = %error, "{what}")
            }
        }
    }

    /// Dropped before the end of the body: the client went away, unless it already had every
    /// event up to an event stream's terminal one (OpenAI clients stop reading at
    /// `data: [DONE]` and may close before the body's final empty chunk arrives).
    fn finish_dropped(&mut self) {
        if self.acct.is_none() {
            return;
        }
        let whole = self
            .tap
            .as_ref()
            .is_some_and(TapRecorder::saw_terminal_event);
        self.finish(if whole {
            Outcome::Ok
        } else {
            Outcome::ClientAborted
        });
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.finish_dropped();
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.reset();
                if let (Some(tap), Some(data)) = (this.tap.as_mut(), frame.data_ref()) {
                    tap.response_chunk(data, Instant::now());
                }
                if let (Some(a), Some(trailers)) = (this.acct.as_mut(), frame.trailers_ref()) {
                    a.grpc_trailers(trailers);
                }
                if this.inner.is_end_stream() {
                    this.finish(Outcome::Ok);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.warn(
                    Outcome::ResponseReset,
                    &e,
                    "upstream response broke off after headers; resetting client",
                );
                this.finish(Outcome::ResponseReset);
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                this.finish(Outcome::Ok);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.acct.is_some() && this.idle.expired(cx) {
                    this.warn(
                        Outcome::ResponseBodyTimeout,
                        &"no body chunk within body_idle_timeout_secs",
                        "upstream response body idle too long; resetting client",
                    );
                    this.finish(Outcome::ResponseBodyTimeout);
                    return Poll::Ready(Some(Err(Box::new(ProxyBodyError(
                        "response body idle timeout",
                    )))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
