//! Canary probes: golden requests with known answers, sent straight to the upstream on a
//! schedule with jitter and read back through the route's protocol adapter, so "is the model
//! still right" is measured even when no live traffic carries labels. Also the upstream's cold
//! start (sidecar start, or the upstream coming back, to the first correct answer) and the
//! latency of the first live request after an idle gap.
//!
//! A probe sends one request at a time; probes of the same upstream take turns, so it never has
//! more than one probe request in flight, and a turn not had within the probe's timeout is
//! skipped and counted. A round that overruns its interval delays the next one (missed rounds
//! are counted, not fired back to back), so a slow upstream never gets a queue of probes.

pub mod config;
pub mod golden;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{header, HeaderMap, HeaderValue, Method, Request};
use http_body_util::Full;
use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry,
};
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::{self, answer, HttpClient, SendError};
use crate::metrics::{names, registered, RatioGauge};
use crate::protocol::{CaptureHook, Rule, Seen};
use crate::quality::signal::SignalHandle;
use crate::quality::SignalSender;
use crate::routes::config::{Protocol, RouteConfig};

use config::{AccuracyConfig, ColdStartConfig, ProbeConfig};
use golden::GoldenRow;

/// `result` label values of `inferwatch_probes_total`.
pub mod result {
    pub const CORRECT: &str = "correct";
    pub const INCORRECT: &str = "incorrect";
    pub const ERROR: &str = "error";
}

#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    #[error("canary[{index}].golden_file: {source}")]
    Golden {
        index: usize,
        source: golden::GoldenError,
    },
    #[error(transparent)]
    Header(#[from] client::HeaderError),
    #[error("canary[{index}].route: no route named {route:?}")]
    Route { index: usize, route: String },
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The probe metric families.
#[derive(Clone)]
struct ProbeMetrics {
    total: IntCounterVec,
    success: IntGaugeVec,
    duration: HistogramVec,
    accuracy: RatioGauge,
    skipped: IntCounterVec,
}

impl ProbeMetrics {
    fn register(
        registry: &Registry,
        buckets: Vec<f64>,
        accuracy: &AccuracyConfig,
    ) -> prometheus::Result<Self> {
        let total = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    names::PROBES_TOTAL,
                    "Golden requests sent by canary probes, by result: correct, incorrect, error (no answer, non-2xx, unreadable).",
                ),
                &["probe", "result"],
            )?,
        )?;
        let success = registered(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    names::PROBE_SUCCESS,
                    "1 when the probe's last round answered at least success_ratio of its golden rows correctly.",
                ),
                &["probe"],
            )?,
        )?;
        let duration = registered(
            registry,
            HistogramVec::new(
                HistogramOpts::new(
                    names::PROBE_DURATION_SECONDS,
                    "Time of one golden request, sent to answer read (errors included).",
                )
                .buckets(buckets),
                &["probe"],
            )?,
        )?;
        let skipped = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    names::PROBES_SKIPPED_TOTAL,
                    "Golden requests not sent: another probe's request to the same upstream held it past the timeout, or rounds missed while a slow round ran.",
                ),
                &["probe"],
            )?,
        )?;
        let accuracy = RatioGauge::register(
            registry,
            names::PROBE_ACCURACY_RATIO,
            "Share of answered golden requests whose answer was correct, over the window (errors excluded: they show in probe_success and probes_total).",
            &["probe"],
            &accuracy.windows_secs,
            Duration::from_secs(accuracy.slot_secs.max(1)),
        )?;
        Ok(Self {
            total,
            success,
            duration,
            accuracy,
            skipped,
        })
    }
}

/// Upstream cold start: from the sidecar's start, or from the upstream answering again after it
/// refused connections, to its first correct canary answer.
pub struct ColdStart {
    phase: Mutex<Phase>,
    seconds: Gauge,
    total: IntCounter,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Since the sidecar started, no correct answer yet.
    Starting(Instant),
    Up,
    /// Connections refused (or timed out) since the upstream was last up.
    Down,
    /// Answering again since this instant, no correct answer yet.
    Warming(Instant),
}

impl ColdStart {
    fn register(registry: &Registry, started: Instant) -> prometheus::Result<Self> {
        let seconds = registered(
            registry,
            Gauge::new(
                names::UPSTREAM_COLD_START_SECONDS,
                "Last cold start of the upstream: sidecar start, or the upstream answering again after refusing connections, to the first correct canary answer (resolution: the probe interval).",
            )?,
        )?;
        let total = registered(
            registry,
            IntCounter::new(
                names::UPSTREAM_COLD_STARTS_TOTAL,
                "Cold starts measured (the first after the sidecar starts, then one per recovery).",
            )?,
        )?;
        Ok(Self {
            phase: Mutex::new(Phase::Starting(started)),
            seconds,
            total,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A probe could not connect.
    fn unreachable(&self) {
        let mut p = self.lock();
        if matches!(*p, Phase::Up | Phase::Warming(_)) {
            *p = Phase::Down;
        }
    }

    /// The upstream answered (any status) a request sent at `sent`.
    fn reachable(&self, sent: Instant) {
        let mut p = self.lock();
        if matches!(*p, Phase::Down) {
            *p = Phase::Warming(sent);
        }
    }

    /// A correct answer arrived at `now`.
    fn correct(&self, now: Instant) {
        let mut p = self.lock();
        if let Phase::Starting(since) | Phase::Warming(since) = *p {
            self.seconds
                .set(now.saturating_duration_since(since).as_secs_f64());
            self.total.inc();
            *p = Phase::Up;
        }
    }
}

/// One configured probe, ready to run.
struct Probe {
    name: String,
    protocol: Protocol,
    rule: Rule,
    method: Method,
    base: String,
    default_path: String,
    rows: Vec<GoldenRow>,
    headers: HeaderMap,
    interval: Duration,
    jitter: Duration,
    timeout: Duration,
    abs_tolerance: f64,
    rel_tolerance: f64,
    success_ratio: f64,
    /// Held while a request to this probe's upstream is in flight (shared by every probe of
    /// that upstream).
    upstream_busy: Arc<tokio::sync::Mutex<()>>,
    /// Probes of `proxy.upstream` measure its cold start.
    cold: Option<Arc<ColdStart>>,
    signal: Option<SignalHandle>,
}

/// Where probes go and how, from outside `[[canary]]` (app.rs hands it over: the canary does
/// not read the proxy's section).
pub struct Upstream<'a> {
    /// `proxy.upstream`: the model server, for probes that name no upstream of their own (and
    /// the one whose cold start is measured).
    pub url: &'a str,
    /// `proxy.connect_timeout_secs`
    pub connect_timeout: Duration,
    /// `inspection.max_body_bytes`: the largest answer read.
    pub max_body: u64,
}

/// Every configured probe; `run` drives them until stopped.
pub struct Canary {
    probes: Vec<Probe>,
    client: HttpClient,
    /// For golden rows that are gRPC calls (HTTP/2 with prior knowledge).
    h2c: HttpClient,
    max_body: u64,
    metrics: ProbeMetrics,
}

impl Canary {
    /// Load every golden set and secret header file; `None` when no probe is configured.
    /// `routes`: the live routes whose protocol and prediction rule read the answers.
    /// `started`: when the sidecar started (the origin of the first cold start).
    pub fn build(
        cfg: &[ProbeConfig],
        accuracy: &AccuracyConfig,
        routes: &[RouteConfig],
        upstream: &Upstream<'_>,
        registry: &Registry,
        latency_buckets: Vec<f64>,
        signals: &SignalSender,
        started: Instant,
    ) -> Result<Option<Self>, CanaryError> {
        if cfg.is_empty() {
            return Ok(None);
        }
        let metrics = ProbeMetrics::register(registry, latency_buckets, accuracy)?;
        let cold = Arc::new(ColdStart::register(registry, started)?);
        let mut busy: HashMap<String, Arc<tokio::sync::Mutex<()>>> = HashMap::new();
        let mut probes = Vec::new();
        for (index, p) in cfg.iter().enumerate() {
            let route =
                routes
                    .iter()
                    .find(|r| r.name == p.route)
                    .ok_or_else(|| CanaryError::Route {
                        index,
                        route: p.route.clone(),
                    })?;
            let rows = golden::load(Path::new(&p.golden_file), &p.path)
                .map_err(|source| CanaryError::Golden { index, source })?;
            let headers =
                client::headers(&format!("canary[{index}]"), &p.headers, &p.header_files)?;
            let base = if p.upstream.is_empty() {
                upstream.url
            } else {
                &p.upstream
            };
            let base = base.trim_end_matches('/').to_string();
            let upstream_busy = busy.entry(base.clone()).or_default().clone();
            // Series exist from the start, so "no answer yet" reads as 0, not as absent.
            metrics.success.with_label_values(&[&p.name]).set(0);
            for r in [result::CORRECT, result::INCORRECT, result::ERROR] {
                metrics.total.with_label_values(&[&p.name, r]);
            }
            metrics.skipped.with_label_values(&[&p.name]);
            probes.push(Probe {
                name: p.name.clone(),
                protocol: route.protocol,
                rule: Rule::new(&route.prediction),
                method: Method::from_bytes(p.method.as_bytes()).unwrap_or(Method::POST),
                base,
                default_path: p.path.clone(),
                rows,
                headers,
                interval: Duration::from_secs_f64(p.interval_secs),
                jitter: Duration::from_secs_f64(p.jitter_secs),
                timeout: Duration::from_secs_f64(p.timeout_secs),
                abs_tolerance: p.abs_tolerance,
                rel_tolerance: p.rel_tolerance,
                success_ratio: p.success_ratio,
                upstream_busy,
                cold: (p.upstream.is_empty()
                    || p.upstream.trim_end_matches('/') == upstream.url.trim_end_matches('/'))
                .then(|| cold.clone()),
                signal: signals.handle(&format!("canary:{}", p.name)),
            });
        }
        Ok(Some(Self {
            probes,
            client: client::new(upstream.connect_timeout),
            h2c: client::grpc::h2c(upstream.connect_timeout),
            max_body: upstream.max_body,
            metrics,
        }))
    }

    /// Run every probe until `stop` turns true (a round in progress stops after its current
    /// request).
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let mut tasks = Vec::new();
        let (client, h2c) = (self.client, self.h2c);
        for probe in self.probes {
            let ctx = Ctx {
                client: client.clone(),
                h2c: h2c.clone(),
                max_body: self.max_body,
                metrics: self.metrics.clone(),
            };
            tasks.push(tokio::spawn(probe.run(ctx, stop.clone())));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

struct Ctx {
    client: HttpClient,
    h2c: HttpClient,
    max_body: u64,
    metrics: ProbeMetrics,
}

/// What one golden request came to.
enum RowResult {
    Correct,
    Incorrect,
    Error,
    Skipped,
}

impl Probe {
    async fn run(self, ctx: Ctx, mut stop: watch::Receiver<bool>) {
        let mut rng = rand::rngs::SmallRng::from_entropy();
        // The first round goes out at once: a cold start is measured from the sidecar's start.
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let round_start = Instant::now();
            let (mut correct, mut sent) = (0usize, 0usize);
            for row in &self.rows {
                if *stop.borrow() {
                    return;
                }
                match self.send(&ctx, row).await {
                    RowResult::Correct => {
                        correct += 1;
                        sent += 1;
                    }
                    RowResult::Incorrect | RowResult::Error => sent += 1,
                    RowResult::Skipped => {}
                }
            }
            if sent > 0 {
                let ok = correct as f64 / sent as f64 >= self.success_ratio;
                ctx.metrics
                    .success
                    .with_label_values(&[&self.name])
                    .set(i64::from(ok));
            }
            let jitter = if self.jitter.is_zero() {
                Duration::ZERO
            } else {
                self.jitter.mul_f64(rng.gen::<f64>())
            };
            next = round_start + self.interval + jitter;
            let now = Instant::now();
            if next < now {
                // The round overran the schedule: start the next one now, and count the
                // rounds that did not happen rather than firing them back to back.
                let missed = (now - next).as_secs_f64() / self.interval.as_secs_f64();
                ctx.metrics
                    .skipped
                    .with_label_values(&[&self.name])
                    .inc_by((missed.floor() as u64) * self.rows.len() as u64);
                next = now;
            }
        }
    }

    async fn send(&self, ctx: &Ctx, row: &GoldenRow) -> RowResult {
        let m = &ctx.metrics;
        // Probes of one upstream take turns; a turn not had within the timeout is skipped, so
        // at most one probe request per probe is ever waiting, never a queue of them.
        let Ok(_busy) = tokio::time::timeout(self.timeout, self.upstream_busy.lock()).await else {
            m.skipped.with_label_values(&[&self.name]).inc();
            return RowResult::Skipped;
        };
        let grpc_path;
        let path = if row.grpc {
            grpc_path = client::grpc::model_infer_path();
            &grpc_path
        } else {
            row.path.as_deref().unwrap_or(&self.default_path)
        };
        let mut req = Request::new(Full::new(row.body.clone()));
        *req.method_mut() = if row.grpc {
            Method::POST
        } else {
            self.method.clone()
        };
        *req.uri_mut() = match format!("{}{path}", self.base).parse() {
            Ok(u) => u,
            Err(_) => return self.count(m, RowResult::Error, "bad url"),
        };
        let h = req.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        for (k, v) in &self.headers {
            h.insert(k, v.clone());
        }
        if row.grpc {
            h.remove(header::ACCEPT);
            client::grpc::request_headers(h);
        }
        let request_headers = h.clone();
        let sent = Instant::now();
        let http = if row.grpc { &ctx.h2c } else { &ctx.client };
        let reply = client::send(http, req, self.timeout, ctx.max_body).await;
        m.duration
            .with_label_values(&[&self.name])
            .observe(sent.elapsed().as_secs_f64());
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, SendError::Connect(_)) {
                    if let Some(c) = &self.cold {
                        c.unreachable();
                    }
                }
                return self.count(m, RowResult::Error, &e.to_string());
            }
        };
        if let Some(c) = &self.cold {
            c.reachable(sent);
        }
        if row.grpc {
            if let Err(why) = client::grpc::result(&reply) {
                return self.count(m, RowResult::Error, &why);
            }
        } else if !reply.status.is_success() {
            return self.count(m, RowResult::Error, &format!("status {}", reply.status));
        }
        let answer = match answer::read(
            self.protocol,
            &self.rule,
            path,
            &row.body,
            &request_headers,
            &reply.body,
            &reply.headers,
        ) {
            Ok(a) => a,
            Err(e) => return self.count(m, RowResult::Error, &e.to_string()),
        };
        match row
            .expect
            .check(&answer, &self.rule, self.abs_tolerance, self.rel_tolerance)
        {
            Ok(()) => {
                if let Some(c) = &self.cold {
                    c.correct(Instant::now());
                }
                self.count(m, RowResult::Correct, "")
            }
            Err(why) => {
                tracing::debug!(probe = %self.name, line = row.line, %why, "incorrect canary answer");
                self.count(m, RowResult::Incorrect, "")
            }
        }
    }

    fn count(&self, m: &ProbeMetrics, r: RowResult, why: &str) -> RowResult {
        let label = match r {
            RowResult::Correct => result::CORRECT,
            RowResult::Incorrect => result::INCORRECT,
            RowResult::Error | RowResult::Skipped => result::ERROR,
        };
        m.total.with_label_values(&[&self.name, label]).inc();
        match r {
            RowResult::Correct | RowResult::Incorrect => {
                let hit = matches!(r, RowResult::Correct);
                m.accuracy.outcome(&[&self.name], hit);
                if let Some(s) = &self.signal {
                    s.observe(f64::from(u8::from(hit)));
                }
            }
            _ => tracing::debug!(probe = %self.name, error = %why, "canary request failed"),
        }
        r
    }
}

/// Latency of the first live request after a route was idle longer than `idle_gap_secs`
/// (fed from the inspector's captures, so it covers tapped routes).
pub struct IdleTracker {
    gap: Duration,
    started: Instant,
    last_end: Mutex<HashMap<String, Instant>>,
    gauge: GaugeVec,
}

impl IdleTracker {
    /// `None` when `cold_start.idle_gap_secs` is 0.
    pub fn build(
        cfg: &ColdStartConfig,
        registry: &Registry,
        started: Instant,
    ) -> prometheus::Result<Option<Arc<Self>>> {
        if cfg.idle_gap_secs <= 0.0 {
            return Ok(None);
        }
        let gauge = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    names::FIRST_REQUEST_AFTER_IDLE_SECONDS,
                    "Duration of the last live request that arrived after its route was idle longer than cold_start.idle_gap_secs.",
                ),
                &["route"],
            )?,
        )?;
        Ok(Some(Arc::new(Self {
            gap: Duration::from_secs_f64(cfg.idle_gap_secs),
            started,
            last_end: Mutex::new(HashMap::new()),
            gauge,
        })))
    }
}

impl CaptureHook for IdleTracker {
    /// Reads predictions (or timings) only.
    fn reads_inputs(&self, _route: &str) -> bool {
        false
    }

    fn seen(&self, seen: &Seen<'_>) {
        let c = seen.capture;
        let route = &c.route.name;
        let end = c.start + c.total;
        let mut last = self.last_end.lock().unwrap_or_else(|e| e.into_inner());
        let prev = last.get(route.as_str()).copied().unwrap_or(self.started);
        if c.start.saturating_duration_since(prev) > self.gap {
            self.gauge
                .with_label_values(&[route])
                .set(c.total.as_secs_f64());
        }
        match last.get_mut(route.as_str()) {
            Some(t) => *t = (*t).max(end),
            None => {
                last.insert(route.clone(), end.max(prev));
            }
        }
    }
}
