//! The tap: a copy of a live exchange (request and response bodies as the reference-counted
//! chunks that passed through, with arrival times) handed to a bounded queue for the protocol
//! adapters. The live path only clones `Bytes` handles and never waits: a full queue or an
//! over-size body is counted and the copy dropped. When the adapters fall behind (queue or byte
//! budget more than half full) only one exchange in `busy_sample_one_in` is recorded, so a burst
//! costs the live path little more than a counter per request.

pub mod budget;
pub mod config;
pub mod terminal;

use std::cell::Cell;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, Method, StatusCode};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::metrics::{names, registered};
use crate::routes::RouteInfo;
pub use budget::{Budget, Reservation};
use config::InspectionConfig;
use terminal::TerminalEvent;

/// One complete live exchange, as the client and upstream sent it.
pub struct Capture {
    /// The bytes of the byte budget (`inspection.max_queued_bytes`) this capture's bodies hold;
    /// given back when the capture is dropped, after the adapters and hooks have read it.
    pub held: Reservation,
    pub route: Arc<RouteInfo>,
    pub method: Method,
    /// Path and query as the client sent them.
    pub path: String,
    pub request_headers: HeaderMap,
    pub request_body: Vec<Bytes>,
    pub status: StatusCode,
    pub response_headers: HeaderMap,
    /// Response body chunks, each with its arrival time after `start` (for token timings).
    pub response_chunks: Vec<(Duration, Bytes)>,
    /// When the request's first byte arrived.
    pub start: Instant,
    /// Request start to response headers.
    pub ttfb: Duration,
    /// Request start to the last response byte.
    pub total: Duration,
    /// The client went away before the response ended: the body holds what passed through
    /// until then (an event stream's events so far), which is still worth reading.
    pub client_aborted: bool,
}

impl Capture {
    pub fn request_bytes(&self) -> Bytes {
        concat(self.request_body.iter())
    }

    pub fn response_bytes(&self) -> Bytes {
        concat(self.response_chunks.iter().map(|(_, b)| b))
    }
}

fn concat<'a>(chunks: impl Iterator<Item = &'a Bytes> + Clone) -> Bytes {
    let mut it = chunks.clone();
    match (it.next(), it.next()) {
        (None, _) => Bytes::new(),
        (Some(one), None) => one.clone(),
        _ => {
            let len = chunks.clone().map(Bytes::len).sum();
            let mut buf = BytesMut::with_capacity(len);
            for c in chunks {
                buf.extend_from_slice(c);
            }
            buf.freeze()
        }
    }
}

/// `inferwatch_inspection_total{route,result}`; shared by the tap (skipped, dropped) and the
/// adapters (parsed, malformed).
#[derive(Clone)]
pub struct InspectionMetrics {
    pub total: IntCounterVec,
}

impl InspectionMetrics {
    pub const PARSED: &'static str = "parsed";
    pub const MALFORMED: &'static str = "malformed";
    pub const SKIPPED_TOO_LARGE: &'static str = "skipped_too_large";
    pub const DROPPED_QUEUE_FULL: &'static str = "dropped_queue_full";
    pub const SKIPPED_ENDPOINT: &'static str = "skipped_endpoint";
    pub const DROPPED_BUDGET: &'static str = "dropped_budget";
    /// Not recorded while the tap was busy (one in `busy_sample_one_in` is).
    pub const SAMPLED_OUT: &'static str = "sampled_out";
    /// The client went away mid-response; what passed through was read as far as it went.
    pub const CLIENT_ABORTED: &'static str = "client_aborted";

    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let total = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    names::INSPECTION_TOTAL,
                    "Tapped exchanges by result: parsed, malformed, client_aborted (read as far as it went), skipped_status, skipped_endpoint, skipped_too_large, dropped_queue_full, dropped_budget, sampled_out (not recorded while the adapters were behind).",
                ),
                &["route", "result"],
            )?,
        )?;
        Ok(Self { total })
    }

    pub fn count(&self, route: &str, result: &'static str) {
        self.total.with_label_values(&[route, result]).inc();
    }
}

/// What the tap itself counts on the live path instead of recording an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Endpoint,
    SampledOut,
    TooLarge,
    Budget,
    QueueFull,
}

impl Skip {
    const COUNT: usize = 5;

    fn as_str(self) -> &'static str {
        match self {
            Skip::Endpoint => InspectionMetrics::SKIPPED_ENDPOINT,
            Skip::SampledOut => InspectionMetrics::SAMPLED_OUT,
            Skip::TooLarge => InspectionMetrics::SKIPPED_TOO_LARGE,
            Skip::Budget => InspectionMetrics::DROPPED_BUDGET,
            Skip::QueueFull => InspectionMetrics::DROPPED_QUEUE_FULL,
        }
    }
}

/// One route's [`Skip`] counters, resolved on first use (so only results that happen are
/// exported); after that a count is one atomic add, no label hashing on the live path.
type SkipCounters = [OnceLock<IntCounter>; Skip::COUNT];

thread_local! {
    /// Exchanges that found the tap busy on this thread: every `busy_sample_one_in`-th is
    /// recorded. Per thread, so the proxy's workers share no cache line for it.
    static BUSY_SEEN: Cell<u64> = const { Cell::new(0) };
}

/// The sending side of the tap, held by the proxy.
#[derive(Clone)]
pub struct Tap {
    tx: mpsc::Sender<Capture>,
    max_body: u64,
    /// Bounds the body bytes held across all recordings and queued captures.
    budget: Arc<Budget>,
    metrics: InspectionMetrics,
    /// Per route (by `RouteInfo::index`), the tap's own results.
    skips: Arc<[SkipCounters]>,
    /// When busy, record one exchange in this many (1: record all).
    sample_one_in: u64,
    /// Request headers copied beyond [`KEPT_HEADERS`] (e.g. the feedback request-id header).
    extra_headers: Arc<[HeaderName]>,
}

impl Tap {
    /// A tap for `routes` routes (the route table's length, `other` included) and the receiver
    /// the adapters read from.
    pub fn new(
        cfg: &InspectionConfig,
        metrics: InspectionMetrics,
        routes: usize,
    ) -> (Self, mpsc::Receiver<Capture>) {
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        (
            Self {
                tx,
                max_body: cfg.max_body_bytes,
                budget: Budget::new(cfg.max_queued_bytes),
                metrics,
                skips: (0..routes)
                    .map(|_| std::array::from_fn(|_| OnceLock::new()))
                    .collect(),
                sample_one_in: cfg.busy_sample_one_in.max(1),
                extra_headers: Arc::from(Vec::new()),
            },
            rx,
        )
    }

    /// Count an exchange the tap did not hand over.
    fn skip(&self, route: &RouteInfo, why: Skip) {
        match self.skips.get(route.index) {
            Some(c) => c[why as usize]
                .get_or_init(|| {
                    self.metrics
                        .total
                        .with_label_values(&[&route.name, why.as_str()])
                })
                .inc(),
            None => self.metrics.count(&route.name, why.as_str()),
        }
    }

    /// The adapters are behind: more than half of the queue or of the byte budget is taken.
    /// Two atomic loads.
    fn busy(&self) -> bool {
        let max = self.tx.max_capacity();
        let queued = max - self.tx.capacity();
        queued * 2 > max || self.budget.held() * 2 > self.budget.max()
    }

    /// While busy, whether this exchange is the one in `sample_one_in` to record.
    fn sampled_in(&self) -> bool {
        BUSY_SEEN.with(|seen| {
            let n = seen.get().wrapping_add(1);
            seen.set(n);
            n % self.sample_one_in == 0
        })
    }

    /// Also copy these request headers into captures (a consumer off the live path needs
    /// them, such as the feedback join's request id).
    pub fn keep_request_headers(mut self, names: Vec<HeaderName>) -> Self {
        self.extra_headers = Arc::from(names);
        self
    }

    /// Start recording one exchange on a tapped route, or `None` when it cannot carry an
    /// inference payload (every supported protocol infers with POST; GETs are health and
    /// metadata calls, often a probe every few seconds) — those are counted as
    /// `skipped_endpoint` and cost the live path nothing more — or when the tap is busy and
    /// this exchange is not the one in `busy_sample_one_in` to record (`sampled_out`; routes
    /// with an SLO are never sampled, their goodput count needs every exchange).
    pub fn recorder(
        &self,
        route: Arc<RouteInfo>,
        request: &http::request::Parts,
        start: Instant,
    ) -> Option<TapRecorder> {
        if request.method != Method::POST {
            self.skip(&route, Skip::Endpoint);
            return None;
        }
        if self.sample_one_in > 1 && !route.slo && self.busy() && !self.sampled_in() {
            self.skip(&route, Skip::SampledOut);
            return None;
        }
        let path = request.uri.path_and_query().map_or_else(
            || request.uri.path().to_string(),
            |p| p.as_str().to_string(),
        );
        Some(TapRecorder {
            tap: self.clone(),
            route,
            method: request.method.clone(),
            path,
            request_headers: kept_headers(&request.headers, &self.extra_headers),
            start,
            request: Arc::new(Mutex::new(Chunks::new(&self.budget))),
            response: Chunks::new(&self.budget),
            response_times: Vec::new(),
            status: StatusCode::OK,
            response_headers: HeaderMap::new(),
            ttfb: Duration::ZERO,
            event_stream: false,
            terminal: TerminalEvent::default(),
        })
    }
}

/// The headers the adapters and the shadow replay read (content type and encoding, accept,
/// KServe's binary-tensor split, gRPC's message compression). Copying only these keeps the tap
/// to a few small allocations per request instead of a whole header map.
const KEPT_HEADERS: [HeaderName; 5] = [
    http::header::CONTENT_TYPE,
    http::header::CONTENT_ENCODING,
    http::header::ACCEPT,
    HeaderName::from_static("inference-header-content-length"),
    HeaderName::from_static("grpc-encoding"),
];

fn kept_headers(from: &HeaderMap, extra: &[HeaderName]) -> HeaderMap {
    // One pass comparing names (standard ones compare as tags) is cheaper than hashing each
    // kept name for a lookup: requests carry a handful of headers.
    let mut out = HeaderMap::new();
    for (name, value) in from {
        if KEPT_HEADERS.contains(name) || extra.contains(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// One body as it streams, and why it is no longer recorded (an `inspection_total` result).
struct Chunks {
    chunks: Vec<Bytes>,
    bytes: u64,
    skipped: Option<Skip>,
    held: Reservation,
}

impl Chunks {
    fn new(budget: &Arc<Budget>) -> Self {
        Self {
            chunks: Vec::new(),
            bytes: 0,
            skipped: None,
            held: Reservation::new(budget),
        }
    }

    fn push(&mut self, data: &Bytes, max: u64) -> bool {
        if self.skipped.is_some() {
            return false;
        }
        self.bytes += data.len() as u64;
        if self.bytes > max {
            self.give_up(Skip::TooLarge);
            return false;
        }
        if !self.held.grow(data.len() as u64) {
            self.give_up(Skip::Budget);
            return false;
        }
        self.chunks.push(data.clone());
        true
    }

    /// Stop recording: let go of what was held at once rather than at the end.
    fn give_up(&mut self, why: Skip) {
        self.skipped = Some(why);
        self.chunks = Vec::new();
        self.held.release();
    }
}

/// Records one exchange as it streams. The request side is shared with the request body
/// (which may be polled on another task); the response side is owned by the response body.
pub struct TapRecorder {
    tap: Tap,
    route: Arc<RouteInfo>,
    method: Method,
    path: String,
    request_headers: HeaderMap,
    start: Instant,
    request: Arc<Mutex<Chunks>>,
    response: Chunks,
    response_times: Vec<Duration>,
    status: StatusCode,
    response_headers: HeaderMap,
    ttfb: Duration,
    /// The response is `text/event-stream`: its chunks feed `terminal`.
    event_stream: bool,
    terminal: TerminalEvent,
}

/// The request body's handle on the recorder.
#[derive(Clone)]
pub struct RequestTap {
    chunks: Arc<Mutex<Chunks>>,
    max: u64,
}

impl RequestTap {
    pub fn push(&self, data: &Bytes) {
        if let Ok(mut c) = self.chunks.lock() {
            c.push(data, self.max);
        }
    }
}

impl TapRecorder {
    pub fn request_tap(&self) -> RequestTap {
        RequestTap {
            chunks: self.request.clone(),
            max: self.tap.max_body,
        }
    }

    pub fn headers(&mut self, status: StatusCode, headers: &HeaderMap, now: Instant) {
        self.status = status;
        self.response_headers = kept_headers(headers, &[]);
        self.ttfb = now - self.start;
        self.event_stream = self
            .response_headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    }

    pub fn response_chunk(&mut self, data: &Bytes, now: Instant) {
        if self.event_stream {
            self.terminal.feed(data);
        }
        if self.response.push(data, self.tap.max_body) {
            self.response_times.push(now - self.start);
        } else {
            self.response_times = Vec::new();
        }
    }

    /// The response is an event stream that has passed its terminal event (`data: [DONE]`):
    /// the client has the whole answer, whether or not it waits for the body's end.
    pub fn saw_terminal_event(&self) -> bool {
        self.event_stream && self.terminal.seen()
    }

    /// The exchange completed: hand it to the adapters, or count why not.
    pub fn complete(self, now: Instant) {
        self.hand_over(now, false);
    }

    /// The client went away mid-response: hand over what passed through until then (the time
    /// to first token and the tokens it received are facts), marked as aborted.
    pub fn client_aborted(self, now: Instant) {
        self.hand_over(now, true);
    }

    fn hand_over(mut self, now: Instant, client_aborted: bool) {
        let (request, mut held) = match self.request.lock() {
            Ok(mut r) => match r.skipped {
                None => {
                    let held = std::mem::replace(&mut r.held, Reservation::new(&self.tap.budget));
                    (std::mem::take(&mut r.chunks), held)
                }
                Some(why) => {
                    self.tap.skip(&self.route, why);
                    return;
                }
            },
            Err(_) => {
                self.tap.skip(&self.route, Skip::TooLarge);
                return;
            }
        };
        if let Some(why) = self.response.skipped {
            self.tap.skip(&self.route, why);
            return;
        }
        held.absorb(self.response.held);
        let capture = Capture {
            held,
            route: self.route,
            method: self.method,
            path: self.path,
            request_headers: self.request_headers,
            request_body: request,
            status: self.status,
            response_headers: self.response_headers,
            response_chunks: self
                .response_times
                .into_iter()
                .zip(std::mem::take(&mut self.response.chunks))
                .collect(),
            start: self.start,
            ttfb: self.ttfb,
            total: now - self.start,
            client_aborted,
        };
        if let Err(e) = self.tap.tx.try_send(capture) {
            self.tap.skip(&e.into_inner().route, Skip::QueueFull);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::config::Protocol;

    fn route(slo: bool) -> Arc<RouteInfo> {
        Arc::new(RouteInfo {
            name: "r".into(),
            model: "m".into(),
            protocol: Protocol::KserveV2,
            index: 0,
            slo,
        })
    }

    fn post() -> http::request::Parts {
        http::Request::post("/v2/models/m/infer")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    /// One whole exchange through the tap; whether it was recorded.
    fn exchange(tap: &Tap, route: Arc<RouteInfo>) -> bool {
        let start = Instant::now();
        let Some(mut r) = tap.recorder(route, &post(), start) else {
            return false;
        };
        r.request_tap().push(&Bytes::from_static(b"{}"));
        r.headers(StatusCode::OK, &HeaderMap::new(), start);
        r.response_chunk(&Bytes::from_static(b"{}"), start);
        r.complete(start);
        true
    }

    fn counted(m: &InspectionMetrics, result: &str) -> u64 {
        m.total.with_label_values(&["r", result]).get()
    }

    #[test]
    fn a_busy_tap_records_one_in_n_and_counts_every_other_exchange() {
        let metrics = InspectionMetrics::register(&Registry::new()).unwrap();
        let cfg = InspectionConfig {
            queue_capacity: 4,
            busy_sample_one_in: 5,
            ..Default::default()
        };
        let (tap, mut rx) = Tap::new(&cfg, metrics.clone(), 1);
        // Up to half the queue and one more: every exchange recorded; then the tap is busy.
        for _ in 0..3 {
            assert!(exchange(&tap, route(false)));
        }
        assert!(tap.busy());
        // Busy: one in five recorded; of those four, one fits the queue and three find it full.
        let recorded = (0..20).filter(|_| exchange(&tap, route(false))).count();
        assert_eq!(recorded, 4);
        assert_eq!(counted(&metrics, InspectionMetrics::SAMPLED_OUT), 16);
        assert_eq!(counted(&metrics, InspectionMetrics::DROPPED_QUEUE_FULL), 3);
        // Nothing lost uncounted: 4 queued + 3 dropped + 16 sampled out = 23 exchanges.
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued + 3 + 16, 3 + 20);
        // The adapters caught up: every exchange is recorded again.
        assert!(!tap.busy());
        assert!((0..3).all(|_| exchange(&tap, route(false))));
        // A route with an SLO is never sampled, busy or not.
        assert!((0..5).all(|_| exchange(&tap, route(true))));
        assert_eq!(counted(&metrics, InspectionMetrics::SAMPLED_OUT), 16);
    }

    #[test]
    fn half_the_byte_budget_held_makes_the_tap_busy() {
        let metrics = InspectionMetrics::register(&Registry::new()).unwrap();
        let cfg = InspectionConfig {
            max_body_bytes: 100,
            max_queued_bytes: 100,
            ..Default::default()
        };
        let (tap, _rx) = Tap::new(&cfg, metrics, 1);
        let start = Instant::now();
        let r = tap.recorder(route(false), &post(), start).unwrap();
        r.request_tap().push(&Bytes::from(vec![b' '; 50]));
        assert!(!tap.busy(), "half is not more than half");
        r.request_tap().push(&Bytes::from(vec![b' '; 1]));
        assert!(tap.busy());
        drop(r);
        assert!(!tap.busy(), "a dropped recording gives its bytes back");
    }

    #[test]
    fn one_in_one_records_everything() {
        let metrics = InspectionMetrics::register(&Registry::new()).unwrap();
        let cfg = InspectionConfig {
            queue_capacity: 2,
            busy_sample_one_in: 1,
            ..Default::default()
        };
        let (tap, _rx) = Tap::new(&cfg, metrics.clone(), 1);
        assert!((0..10).all(|_| exchange(&tap, route(false))));
        assert_eq!(counted(&metrics, InspectionMetrics::SAMPLED_OUT), 0);
        assert_eq!(counted(&metrics, InspectionMetrics::DROPPED_QUEUE_FULL), 8);
    }
}
