//! Shadow comparison: a deterministic sample of tapped live requests is replayed to candidate
//! models — another HTTP endpoint speaking the route's protocol, or a local ONNX model — and
//! each answer is compared with the live one.
//!
//! The live path never sees any of it: the inspector's hook ([`ShadowHook`]) only hashes the
//! request and `try_send`s a copy into a bounded queue; the dispatcher takes a per-target slot
//! without waiting (`max_in_flight`), and every replay runs under a timeout. A full queue, a
//! target with no free slot, a hung or refusing target: each drops and counts, nothing waits.

pub mod config;
pub mod onnx;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, Method, Request};
use http_body_util::Full;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::canary::config::AccuracyConfig;
use crate::client::compare::{compare, Tolerance, Verdict};
use crate::client::{self, answer, Answer, HttpClient};
use crate::metrics::{names, registered, RatioGauge};
use crate::protocol::{CaptureHook, Inputs, Rule, Seen};
use crate::quality::signal::SignalHandle;
use crate::quality::SignalSender;
use crate::routes::config::{Protocol, RouteConfig};

use config::{ShadowConfig, ShadowKind};
use onnx::{OnnxError, OnnxJob, OnnxPool};

/// `outcome` label values of `inferwatch_shadow_requests_total`.
pub mod outcome {
    pub const OK: &str = "ok";
    pub const ERROR: &str = "error";
    pub const TIMEOUT: &str = "timeout";
    pub const DROPPED: &str = "dropped";
}

#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error(transparent)]
    Header(#[from] client::HeaderError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The shadow metric families.
#[derive(Clone)]
struct ShadowMetrics {
    requests: IntCounterVec,
    comparisons: IntCounterVec,
    agreement: RatioGauge,
    divergence: HistogramVec,
    duration: HistogramVec,
}

impl ShadowMetrics {
    fn register(
        registry: &Registry,
        accuracy: &AccuracyConfig,
        latency_buckets: Vec<f64>,
    ) -> prometheus::Result<Self> {
        let requests = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    names::SHADOW_REQUESTS_TOTAL,
                    "Sampled live requests replayed to a shadow target, by outcome: ok, error, timeout, dropped (queue full or max_in_flight reached).",
                ),
                &["target", "outcome"],
            )?,
        )?;
        let comparisons = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    names::SHADOW_COMPARISONS_TOTAL,
                    "Live answer against shadow answer, per batch row (and per generated text): agree, disagree, incomparable.",
                ),
                &["target", "result"],
            )?,
        )?;
        // Powers of ten from 1e-9 to 100: float noise, small drifts and wholly different
        // numbers land in different buckets.
        let divergence_buckets: Vec<f64> = (-9..=2).map(|e| 10f64.powi(e)).collect();
        let divergence = registered(
            registry,
            HistogramVec::new(
                HistogramOpts::new(
                    names::SHADOW_DIVERGENCE,
                    "Largest difference per request between live and shadow numbers (regression values; probabilities of agreed classes): measure abs or rel.",
                )
                .buckets(divergence_buckets),
                &["target", "measure"],
            )?,
        )?;
        let duration = registered(
            registry,
            HistogramVec::new(
                HistogramOpts::new(
                    names::SHADOW_DURATION_SECONDS,
                    "Time of one shadow replay that produced an answer (HTTP round trip or ONNX run, queueing included).",
                )
                .buckets(latency_buckets),
                &["target"],
            )?,
        )?;
        let agreement = RatioGauge::register(
            registry,
            names::SHADOW_AGREEMENT_RATIO,
            "Share of comparable live/shadow comparisons that agree, over the window.",
            &["target"],
            &accuracy.windows_secs,
            Duration::from_secs(accuracy.slot_secs.max(1)),
        )?;
        Ok(Self {
            requests,
            comparisons,
            agreement,
            divergence,
            duration,
        })
    }
}

/// One sampled live request, as replayed.
struct Job {
    path: String,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    live: Answer,
    inputs: Option<Inputs>,
    targets: Vec<usize>,
    /// A gRPC call (`content-type: application/grpc*`): replayed over h2c.
    grpc: bool,
}

enum Backend {
    Http(Box<HttpBackend>),
    Onnx(OnnxPool),
}

struct HttpBackend {
    client: HttpClient,
    /// For replays of gRPC calls (HTTP/2 with prior knowledge).
    h2c: HttpClient,
    base: String,
    headers: HeaderMap,
    max_body: u64,
}

struct Target {
    name: String,
    protocol: Protocol,
    rule: Rule,
    timeout: Duration,
    tolerance: Tolerance,
    slots: Arc<Semaphore>,
    backend: Backend,
    signal: Option<SignalHandle>,
}

/// Built from `[shadow]`: the hook for the inspector and the dispatcher task.
pub struct Shadow {
    pub hook: Arc<ShadowHook>,
    pub runner: ShadowRunner,
}

/// The inspector's side: sample, copy, `try_send`.
pub struct ShadowHook {
    tx: mpsc::Sender<Job>,
    /// Route name → (target index, sample ratio, replays over HTTP).
    routes: HashMap<String, Vec<(usize, f64, bool)>>,
    /// Target names by index, for drop counts.
    names: Vec<String>,
    metrics: ShadowMetrics,
}

/// The dispatcher: runs until stopped.
pub struct ShadowRunner {
    rx: mpsc::Receiver<Job>,
    targets: Vec<Arc<Target>>,
    metrics: ShadowMetrics,
}

/// Request headers replayed as they came: they say how to read the body. Everything else
/// (authorization, cookies, tracing) stays on the live path; targets get their own headers.
const REPLAYED: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::ACCEPT,
];

impl Shadow {
    /// `None` when no target is configured. Opens ONNX Runtime (and fails naming the setting
    /// when it cannot be found) only when an onnx target is configured. `routes`: the live
    /// routes whose protocol and prediction rule read both answers; `connect_timeout`
    /// (`proxy.connect_timeout_secs`) and `max_body` (`inspection.max_body_bytes`) bound the
    /// HTTP targets as they bound the live path.
    pub fn build(
        s: &ShadowConfig,
        accuracy: &AccuracyConfig,
        routes: &[RouteConfig],
        connect_timeout: Duration,
        max_body: u64,
        registry: &Registry,
        latency_buckets: Vec<f64>,
        signals: &SignalSender,
    ) -> Result<Option<Self>, ShadowError> {
        if s.targets.is_empty() {
            return Ok(None);
        }
        let env = if s.targets.iter().any(|t| t.kind == ShadowKind::Onnx) {
            Some(onnx::environment(&s.onnx_library)?)
        } else {
            None
        };
        let metrics = ShadowMetrics::register(registry, accuracy, latency_buckets)?;
        let http = client::new(connect_timeout);
        let h2c = client::grpc::h2c(connect_timeout);
        let mut targets = Vec::new();
        let mut sampled: HashMap<String, Vec<(usize, f64, bool)>> = HashMap::new();
        for (i, t) in s.targets.iter().enumerate() {
            let Some(route) = routes.iter().find(|r| r.name == t.route) else {
                continue;
            };
            let rule = Rule::new(&route.prediction);
            let backend = match (t.kind, &env) {
                (ShadowKind::Onnx, Some(env)) => {
                    Backend::Onnx(OnnxPool::start(env, i, t, rule.clone())?)
                }
                _ => Backend::Http(Box::new(HttpBackend {
                    client: http.clone(),
                    h2c: h2c.clone(),
                    base: t.url.trim_end_matches('/').to_string(),
                    headers: client::headers(
                        &format!("shadow.targets[{i}]"),
                        &t.headers,
                        &t.header_files,
                    )?,
                    max_body,
                })),
            };
            for o in [
                outcome::OK,
                outcome::ERROR,
                outcome::TIMEOUT,
                outcome::DROPPED,
            ] {
                metrics.requests.with_label_values(&[&t.name, o]);
            }
            sampled.entry(t.route.clone()).or_default().push((
                targets.len(),
                t.sample_ratio,
                matches!(backend, Backend::Http(_)),
            ));
            targets.push(Arc::new(Target {
                name: t.name.clone(),
                protocol: route.protocol,
                rule,
                timeout: Duration::from_secs_f64(t.timeout_secs),
                tolerance: Tolerance {
                    abs: t.abs_tolerance,
                    rel: t.rel_tolerance,
                    text: t.text_match,
                    text_min: t.text_similarity_min,
                },
                slots: Arc::new(Semaphore::new(t.max_in_flight.max(1))),
                backend,
                signal: signals.handle(&format!("shadow_agree:{}", t.name)),
            }));
        }
        let (tx, rx) = mpsc::channel(s.queue_capacity.max(1));
        Ok(Some(Self {
            hook: Arc::new(ShadowHook {
                tx,
                routes: sampled,
                names: targets.iter().map(|t| t.name.clone()).collect(),
                metrics: metrics.clone(),
            }),
            runner: ShadowRunner {
                rx,
                targets,
                metrics,
            },
        }))
    }
}

/// FNV-1a over the path and body: stable across builds and platforms (std's hasher is not), so
/// the same request is sampled the same way every run.
pub fn request_hash(path: &str, body: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in path.as_bytes().iter().chain([0u8].iter()).chain(body) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short inputs; a final avalanche (splitmix64) evens them.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Whether a request with this hash is in a `ratio` sample.
pub fn sampled(hash: u64, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    ((hash >> 11) as f64 / (1u64 << 53) as f64) < ratio
}

impl CaptureHook for ShadowHook {
    /// An ONNX target on the route runs on every input column; HTTP targets replay the body.
    fn reads_inputs(&self, route: &str) -> bool {
        self.routes
            .get(route)
            .is_some_and(|targets| targets.iter().any(|(_, _, http)| !http))
    }

    fn seen(&self, seen: &Seen<'_>) {
        let Some((_, inference)) = seen.decoded else {
            return;
        };
        let c = seen.capture;
        let Some(targets) = self.routes.get(c.route.name.as_str()) else {
            return;
        };
        let ex = seen.exchange;
        let hash = request_hash(ex.path, ex.request);
        // A gRPC call is replayed to HTTP targets as the same call over h2c (the target is
        // then a gRPC endpoint); ONNX targets take its decoded inputs like any other.
        let grpc = crate::metrics::is_grpc(&c.request_headers);
        let chosen: Vec<usize> = targets
            .iter()
            .filter(|(_, ratio, _)| sampled(hash, *ratio))
            .map(|(i, _, _)| *i)
            .collect();
        if chosen.is_empty() {
            return;
        }
        let text = if c.route.protocol == Protocol::Openai {
            match crate::protocol::tensor::parse_lenient::<serde_json::Value>(ex.response) {
                Ok(doc) => answer::whole_text(&doc),
                Err(_) => answer::stream_text(ex.response),
            }
        } else {
            None
        };
        let mut headers = HeaderMap::new();
        for name in REPLAYED {
            if let Some(v) = c.request_headers.get(&name) {
                headers.insert(name, v.clone());
            }
        }
        // A gRPC body's compressed messages are replayed as they came, with their encoding.
        if let Some(v) = c.request_headers.get("grpc-encoding").filter(|_| grpc) {
            headers.insert("grpc-encoding", v.clone());
        }
        if let Some(v) = c
            .request_headers
            .get(crate::protocol::kserve_v2::HEADER_LENGTH)
        {
            headers.insert(crate::protocol::kserve_v2::HEADER_LENGTH, v.clone());
        }
        let job = Job {
            path: c.path.clone(),
            method: c.method.clone(),
            headers,
            body: c.request_bytes(),
            live: Answer {
                predictions: inference.predictions.clone(),
                text,
                json: None,
            },
            inputs: inference.inputs.clone(),
            targets: chosen,
            grpc,
        };
        if let Err(e) = self.tx.try_send(job) {
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            for i in job.targets {
                self.metrics
                    .requests
                    .with_label_values(&[&self.names[i], outcome::DROPPED])
                    .inc();
            }
        }
    }
}

impl ShadowRunner {
    /// Dispatch jobs until `stop` turns true; replays still running then are abandoned (they
    /// are best effort, and a hung target must not hold up shutdown).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut running = JoinSet::new();
        loop {
            tokio::select! {
                job = self.rx.recv() => match job {
                    Some(job) => self.dispatch(job, &mut running),
                    None => break,
                },
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        running.abort_all();
    }

    fn dispatch(&self, job: Job, running: &mut JoinSet<()>) {
        let job = Arc::new(job);
        for &i in &job.targets {
            let target = self.targets[i].clone();
            match target.slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let m = self.metrics.clone();
                    running.spawn(replay(target, job.clone(), permit, m));
                }
                Err(_) => self
                    .metrics
                    .requests
                    .with_label_values(&[&target.name, outcome::DROPPED])
                    .inc(),
            }
        }
    }
}

/// Replay one job to one target, then compare and count.
async fn replay(
    target: Arc<Target>,
    job: Arc<Job>,
    permit: OwnedSemaphorePermit,
    m: ShadowMetrics,
) {
    let started = Instant::now();
    let got = tokio::time::timeout(target.timeout, target.answer(&job, permit)).await;
    let name = target.name.as_str();
    let shadow = match got {
        Err(_) => {
            m.requests
                .with_label_values(&[name, outcome::TIMEOUT])
                .inc();
            return;
        }
        Ok(Err(why)) => {
            tracing::debug!(target = name, error = %why, "shadow replay failed");
            m.requests.with_label_values(&[name, outcome::ERROR]).inc();
            return;
        }
        Ok(Ok(a)) => a,
    };
    m.duration
        .with_label_values(&[name])
        .observe(started.elapsed().as_secs_f64());
    m.requests.with_label_values(&[name, outcome::OK]).inc();
    let c = compare(&job.live, &shadow, target.tolerance);
    let (mut agree, mut comparable) = (0u64, 0u64);
    for v in &c.verdicts {
        m.comparisons.with_label_values(&[name, v.as_str()]).inc();
        if *v != Verdict::Incomparable {
            comparable += 1;
            let hit = *v == Verdict::Agree;
            agree += u64::from(hit);
            if let Some(s) = &target.signal {
                s.observe(f64::from(u8::from(hit)));
            }
        }
    }
    m.agreement.record(&[name], agree, comparable);
    if let Some(x) = c.max_abs {
        m.divergence.with_label_values(&[name, "abs"]).observe(x);
    }
    if let Some(x) = c.max_rel {
        m.divergence.with_label_values(&[name, "rel"]).observe(x);
    }
}

impl Target {
    async fn answer(&self, job: &Job, permit: OwnedSemaphorePermit) -> Result<Answer, String> {
        match &self.backend {
            Backend::Http(b) => {
                let HttpBackend {
                    client,
                    h2c,
                    base,
                    headers,
                    max_body,
                } = b.as_ref();
                // The permit is dropped with this future: on timeout the connection goes too.
                let _permit = permit;
                let mut req = Request::new(Full::new(job.body.clone()));
                *req.method_mut() = job.method.clone();
                *req.uri_mut() = format!("{base}{}", job.path)
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| e.to_string())?;
                let h = req.headers_mut();
                for (k, v) in &job.headers {
                    h.insert(k, v.clone());
                }
                for (k, v) in headers {
                    h.insert(k, v.clone());
                }
                if job.grpc {
                    h.remove(header::ACCEPT);
                    client::grpc::request_headers(h);
                }
                let request_headers = h.clone();
                // The target's timeout wraps this whole future (and counts as `timeout`); the
                // client's own, a little later, is only a backstop.
                let backstop = self.timeout + Duration::from_secs(1);
                let http = if job.grpc { h2c } else { client };
                let reply = client::send(http, req, backstop, *max_body)
                    .await
                    .map_err(|e| e.to_string())?;
                if job.grpc {
                    client::grpc::result(&reply)?;
                } else if !reply.status.is_success() {
                    return Err(format!("status {}", reply.status));
                }
                answer::read(
                    self.protocol,
                    &self.rule,
                    &job.path,
                    &job.body,
                    &request_headers,
                    &reply.body,
                    &reply.headers,
                )
                .map_err(|e| e.to_string())
            }
            Backend::Onnx(pool) => {
                let inputs = job
                    .inputs
                    .clone()
                    .filter(|i| i.rows > 0 && i.features > 0)
                    .ok_or("the request has no numeric inputs")?;
                let (tx, rx) = oneshot::channel();
                pool.submit(OnnxJob {
                    inputs,
                    reply: tx,
                    permit,
                })
                .map_err(|_| "ONNX queue full".to_string())?;
                rx.await.map_err(|_| "ONNX worker gone".to_string())?
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_deterministic_and_close_to_the_ratio() {
        let a = request_hash("/v2/models/iris/infer", b"{\"x\": 1}");
        assert_eq!(a, request_hash("/v2/models/iris/infer", b"{\"x\": 1}"));
        assert_ne!(a, request_hash("/v2/models/iris/infer", b"{\"x\": 2}"));
        let n = 20_000;
        let hits = (0..n)
            .filter(|i| {
                sampled(
                    request_hash("/p", format!("{{\"i\": {i}}}").as_bytes()),
                    0.1,
                )
            })
            .count();
        let share = hits as f64 / n as f64;
        assert!((share - 0.1).abs() < 0.01, "{share}");
        assert!(sampled(0, 1.0) && sampled(u64::MAX, 1.0));
        assert!(!sampled(0, 0.0));
    }
}
