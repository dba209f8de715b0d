//! Engine saturation from the model server's own metrics: off the live path, on an interval,
//! the sidecar scrapes the engine's `/metrics` (vLLM, SGLang, TGI, Triton, llama.cpp, MLServer,
//! or `auto` by metric names) and exports one normalised set — requests running and waiting,
//! KV-cache usage, prefix-cache hit ratio, preemptions, queue and compute time — so dashboards
//! and capacity reports can say *why* latency rose (queueing, KV-cache exhaustion). A scrape
//! that fails is counted by reason and logged once per run of failures, never fatal.

pub mod config;
pub mod exposition;
pub mod normalize;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use prometheus::{Counter, Gauge, IntCounterVec, Opts, Registry};
use tokio::sync::watch;

use crate::client::{self, HttpClient, SendError};
use crate::metrics::registered;
use config::{EngineConfig, EngineKind};
use normalize::Reading;

/// Largest scrape read: a vLLM endpoint with many models and LoRA adapters is a few hundred KB.
const MAX_SCRAPE_BYTES: u64 = 16 << 20;

/// Why a scrape failed: the `reason` label of `inferwatch_engine_scrape_failures_total`.
pub mod reason {
    pub const CONNECT: &str = "connect";
    pub const TIMEOUT: &str = "timeout";
    pub const STATUS: &str = "status";
    pub const GARBAGE: &str = "garbage";
    pub const UNKNOWN_ENGINE: &str = "unknown_engine";
}

/// The normalised families, each with the `engine` label.
struct EngineMetrics {
    up: Gauge,
    failures: IntCounterVec,
    preemptions: Counter,
    queue_secs: Counter,
    compute_secs: Counter,
}

/// The gauges' names (each its own family, labelled by `engine`).
pub const RUNNING: &str = "inferwatch_engine_requests_running";
pub const WAITING: &str = "inferwatch_engine_requests_waiting";
pub const KV: &str = "inferwatch_engine_kv_cache_usage_ratio";
const PREFIX: &str = "inferwatch_engine_prefix_cache_hit_ratio";

/// Reads one figure of a reading.
type Figure = fn(&Reading) -> Option<f64>;

/// Scrapes the engine and updates the normalised metrics.
pub struct EngineScraper {
    cfg: EngineConfig,
    client: HttpClient,
    metrics: EngineMetrics,
    per_figure: [(Gauge, Figure); 3],
    prefix: Gauge,
    /// The kind in use: configured, or detected from the first good scrape.
    kind: EngineKind,
    last: Reading,
    failing: bool,
}

impl EngineScraper {
    /// `None` when `[engine] metrics_url` is empty.
    pub fn build(cfg: &EngineConfig, registry: &Registry) -> prometheus::Result<Option<Self>> {
        if cfg.metrics_url.is_empty() {
            return Ok(None);
        }
        let engine = cfg.kind.as_str();
        let gauge = |name: &str, help: &str| {
            registered(
                registry,
                Gauge::with_opts(Opts::new(name, help).const_label("engine", engine))?,
            )
        };
        let counter = |name: &str, help: &str| {
            registered(
                registry,
                Counter::with_opts(Opts::new(name, help).const_label("engine", engine))?,
            )
        };
        let running = gauge(
            RUNNING,
            "Requests the model server is running now (its own count).",
        )?;
        let waiting = gauge(WAITING, "Requests waiting in the model server's queue now.")?;
        let kv = gauge(KV, "Share of the model server's KV cache in use (0-1); near 1 means preemption or queueing.")?;
        let prefix = gauge(PREFIX, "Share of prompt tokens (or blocks) served from the model server's prefix cache, over the last interval or as the engine reports it.")?;
        let metrics = EngineMetrics {
            up: gauge("inferwatch_engine_up", "1 when the last scrape of the model server's metrics succeeded.")?,
            failures: registered(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "inferwatch_engine_scrape_failures_total",
                        "Failed scrapes of the model server's metrics by reason: connect, timeout, status, garbage, unknown_engine.",
                    )
                    .const_label("engine", engine),
                    &["reason"],
                )?,
            )?,
            preemptions: counter("inferwatch_engine_preemptions_total", "Requests the model server preempted (evicted from the KV cache to be recomputed).")?,
            queue_secs: counter("inferwatch_engine_queue_seconds_total", "Seconds requests spent waiting in the model server's queue (cumulative; rate over the request rate is the mean wait).")?,
            compute_secs: counter("inferwatch_engine_compute_seconds_total", "Seconds the model server spent running requests (cumulative).")?,
        };
        for r in [
            reason::CONNECT,
            reason::TIMEOUT,
            reason::STATUS,
            reason::GARBAGE,
            reason::UNKNOWN_ENGINE,
        ] {
            metrics.failures.with_label_values(&[r]);
        }
        Ok(Some(Self {
            cfg: cfg.clone(),
            client: client::new(Duration::from_secs_f64(cfg.timeout_secs)),
            metrics,
            per_figure: [
                (running, |r| r.running),
                (waiting, |r| r.waiting),
                (kv, |r| r.kv_cache_usage),
            ],
            prefix,
            kind: cfg.kind,
            last: Reading::default(),
            failing: false,
        }))
    }

    /// Scrape every interval until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(self.cfg.interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = stop.changed() => if changed.is_err() { return },
            }
            if *stop.borrow() {
                return;
            }
            self.scrape().await;
        }
    }

    /// One scrape: fetch, parse, normalise, export; or count and log why not.
    pub async fn scrape(&mut self) {
        match self.fetch().await {
            Ok(reading) => {
                if self.failing {
                    tracing::info!(url = %self.cfg.metrics_url, "model server metrics readable again");
                }
                self.failing = false;
                self.metrics.up.set(1.0);
                self.export(reading);
            }
            Err((why, detail)) => {
                self.metrics.up.set(0.0);
                self.metrics.failures.with_label_values(&[why]).inc();
                // Once per run of failures: an endpoint that is down stays down for a while.
                if !self.failing {
                    tracing::warn!(url = %self.cfg.metrics_url, reason = why, %detail, "cannot read the model server's metrics; retrying every interval");
                }
                self.failing = true;
            }
        }
    }

    async fn fetch(&mut self) -> Result<Reading, (&'static str, String)> {
        let req = http::Request::get(&self.cfg.metrics_url)
            .header(http::header::ACCEPT, "text/plain")
            .body(Full::new(Bytes::new()))
            .map_err(|e| (reason::CONNECT, e.to_string()))?;
        let timeout = Duration::from_secs_f64(self.cfg.timeout_secs);
        let reply = client::send(&self.client, req, timeout, MAX_SCRAPE_BYTES)
            .await
            .map_err(|e| match e {
                SendError::Timeout => (reason::TIMEOUT, e.to_string()),
                SendError::TooLarge(_) => (reason::GARBAGE, e.to_string()),
                _ => (reason::CONNECT, e.to_string()),
            })?;
        if !reply.status.is_success() {
            return Err((reason::STATUS, reply.status.to_string()));
        }
        let text = std::str::from_utf8(&reply.body)
            .map_err(|_| (reason::GARBAGE, "not UTF-8".to_string()))?;
        let samples = exposition::parse(text).map_err(|e| (reason::GARBAGE, e.to_string()))?;
        if self.kind == EngineKind::Auto {
            self.kind = normalize::detect(&samples).ok_or((
                reason::UNKNOWN_ENGINE,
                "no known engine's metric names".to_string(),
            ))?;
            tracing::info!(
                engine = self.kind.as_str(),
                "model server metrics recognised"
            );
        }
        Ok(normalize::read(self.kind, &samples))
    }

    fn export(&mut self, r: Reading) {
        for (gauge, figure) in &self.per_figure {
            if let Some(v) = figure(&r) {
                gauge.set(v);
            }
        }
        let last = std::mem::replace(&mut self.last, r);
        // A hit ratio over this interval from the engine's cumulative counters; its own gauge
        // otherwise.
        let hits = grown(last.prefix_hits_total, r.prefix_hits_total);
        let queries = grown(last.prefix_queries_total, r.prefix_queries_total);
        match (hits, queries, r.prefix_hit_ratio) {
            (Some(h), Some(q), _) if q > 0.0 => self.prefix.set((h / q).clamp(0.0, 1.0)),
            (_, _, Some(ratio)) => self.prefix.set(ratio),
            _ => {}
        }
        for (counter, before, now) in [
            (
                &self.metrics.preemptions,
                last.preemptions_total,
                r.preemptions_total,
            ),
            (
                &self.metrics.queue_secs,
                last.queue_secs_total,
                r.queue_secs_total,
            ),
            (
                &self.metrics.compute_secs,
                last.compute_secs_total,
                r.compute_secs_total,
            ),
        ] {
            if let Some(d) = grown(before, now) {
                counter.inc_by(d);
            }
        }
    }
}

/// How much a cumulative figure grew since the last scrape (all of it after an engine restart
/// reset it, or on the first scrape).
fn grown(before: Option<f64>, now: Option<f64>) -> Option<f64> {
    let now = now?;
    Some(match before {
        Some(b) if now >= b => now - b,
        _ => now,
    })
    .filter(|d| d.is_finite() && *d >= 0.0)
}
