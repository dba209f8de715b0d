//! The route table: first-match path-prefix routing to a fixed set of route names, each route's
//! pre-resolved metric handles and latency sketch (so per-request accounting is a few atomic
//! operations and one short lock), and the quantile gauges built from those sketches.
//!
//! The proxy writes it; nothing off the live path imports it. Off-path readers (the quality
//! engine, the energy sampler) see it through their own narrow traits, implemented in `app.rs`,
//! and a tapped exchange carries only the route's [`RouteInfo`].

pub mod config;
mod latency_gauges;
mod slo;

pub use latency_gauges::LatencyExporter;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{Histogram, IntCounter, IntGauge};
use tokio::time::Instant;

use crate::latency::config::LatencyConfig;
use crate::latency::WindowedSketch;
use crate::metrics::{CodeClass, GrpcCode, Outcome, ProxyMetrics};
use config::{Protocol, RouteConfig, SloConfig};
use slo::LiveSlo;

pub use config::OTHER_ROUTE;

/// What a route is, as label values and the payload protocol: all that a tapped exchange
/// carries of its route off the live path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub name: String,
    /// The `model` label until an adapter names the model.
    pub model: String,
    pub protocol: Protocol,
    /// Position in the route table (`other` last), for per-route handles kept in arrays.
    pub index: usize,
    /// The route has an SLO (`[proxy.routes.slo]`): its goodput count needs every exchange
    /// inspected, so the tap never samples it.
    pub slo: bool,
}

/// Per-route state: label values, metric handles, the windowed latency sketch.
pub struct RouteStats {
    pub info: Arc<RouteInfo>,
    pub duration: Histogram,
    pub ttfb: Histogram,
    pub in_flight: IntGauge,
    pub sketch: WindowedSketch,
    // Counters are resolved on first use, so only the (code_class, outcome) pairs that happen
    // appear in /metrics, and after that each count is one atomic add.
    counters: Vec<OnceLock<IntCounter>>,
    grpc_counters: [OnceLock<IntCounter>; GrpcCode::COUNT],
    metrics: ProxyMetrics,
    /// `inferwatch_slo_requests_total` under the route's model, on routes with an SLO: the
    /// requests no capture brings to the inspector that classifies the rest.
    slo: Option<LiveSlo>,
}

impl RouteStats {
    #[allow(clippy::too_many_arguments)]
    fn new(
        index: usize,
        name: &str,
        model: &str,
        protocol: Protocol,
        slo: Option<&SloConfig>,
        metrics: &ProxyMetrics,
        lat: &LatencyConfig,
        start: Instant,
    ) -> Self {
        let max_window = lat.windows_secs.iter().copied().max().unwrap_or(60);
        Self {
            info: Arc::new(RouteInfo {
                name: name.to_string(),
                model: model.to_string(),
                protocol,
                index,
                slo: slo.is_some(),
            }),
            duration: metrics.duration.with_label_values(&[name, model]),
            ttfb: metrics.ttfb.with_label_values(&[name, model]),
            in_flight: metrics.in_flight.with_label_values(&[name]),
            sketch: WindowedSketch::new(
                Duration::from_secs(lat.slot_secs.max(1)),
                Duration::from_secs(max_window),
                lat.relative_accuracy,
                start,
            ),
            counters: (0..CodeClass::COUNT * Outcome::ALL.len())
                .map(|_| OnceLock::new())
                .collect(),
            grpc_counters: std::array::from_fn(|_| OnceLock::new()),
            metrics: metrics.clone(),
            slo: slo.map(|slo| LiveSlo::new(name, model, slo, metrics)),
        }
    }

    /// Count one finished request whose time does not matter to its SLO class (one the sidecar
    /// answered itself).
    pub fn count(&self, class: CodeClass, outcome: Outcome) {
        self.count_timed(class, outcome, Duration::ZERO);
    }

    /// Count one finished request, `elapsed` after its start.
    pub fn count_timed(&self, class: CodeClass, outcome: Outcome, elapsed: Duration) {
        let slot = class.index() * Outcome::ALL.len() + outcome.index();
        self.counters[slot]
            .get_or_init(|| {
                self.metrics.requests.with_label_values(&[
                    &self.info.name,
                    &self.info.model,
                    class.as_str(),
                    outcome.as_str(),
                ])
            })
            .inc();
        if let Some(slo) = &self.slo {
            slo.finished(class, outcome, elapsed);
        }
    }

    /// Count one finished gRPC call by its status code.
    pub fn count_grpc(&self, code: GrpcCode) {
        self.grpc_counters[code.index()]
            .get_or_init(|| {
                self.metrics.grpc_calls.with_label_values(&[
                    &self.info.name,
                    &self.info.model,
                    code.as_str(),
                ])
            })
            .inc();
    }

    /// Requests finished on this route so far: `(total, failed)`, where failed means a 5xx
    /// answer or any outcome other than `ok` (a gRPC call with a non-OK `grpc-status` is
    /// `grpc_error`; one the sidecar answered itself keeps its local outcome). Read by samplers
    /// off the live path.
    pub fn totals(&self) -> (u64, u64) {
        let mut total = 0;
        let mut failed = 0;
        for class in 0..CodeClass::COUNT {
            for outcome in Outcome::ALL {
                let Some(c) = self.counters[class * Outcome::ALL.len() + outcome.index()].get()
                else {
                    continue;
                };
                let n = c.get();
                total += n;
                if outcome != Outcome::Ok || class == CodeClass::C5xx.index() {
                    failed += n;
                }
            }
        }
        (total, failed)
    }

    /// Requests on a route with an SLO that the live path classified as not good (no answer,
    /// a failure, a client that left past a bound before the headers); `None` without an SLO.
    /// Read off the live path.
    pub fn slo_misses(&self) -> Option<u64> {
        self.slo.as_ref().map(LiveSlo::misses)
    }

    /// Record one request's total duration in the histogram and the sliding-window sketch.
    pub fn observe_duration(&self, secs: f64, now: Instant) {
        self.duration.observe(secs);
        self.sketch.record(secs, now);
    }
}

/// First-match path-prefix router over the configured routes, with `other` last.
pub struct Router {
    prefixes: Vec<String>,
    stats: Vec<Arc<RouteStats>>,
}

impl Router {
    /// The configured `routes` (each with a sketch shaped by `latency`), then `other`.
    pub fn new(
        routes: &[RouteConfig],
        latency: &LatencyConfig,
        metrics: &ProxyMetrics,
        start: Instant,
    ) -> Self {
        let mut prefixes = Vec::new();
        let mut stats = Vec::new();
        for r in routes {
            prefixes.push(r.path_prefix.clone());
            stats.push(Arc::new(RouteStats::new(
                stats.len(),
                &r.name,
                &r.model,
                r.protocol,
                r.slo.is_set().then_some(&r.slo),
                metrics,
                latency,
                start,
            )));
        }
        stats.push(Arc::new(RouteStats::new(
            stats.len(),
            OTHER_ROUTE,
            "unknown",
            Protocol::Opaque,
            None,
            metrics,
            latency,
            start,
        )));
        Self { prefixes, stats }
    }

    pub fn route(&self, path: &str) -> &Arc<RouteStats> {
        let idx = self
            .prefixes
            .iter()
            .position(|p| path.starts_with(p.as_str()))
            .unwrap_or(self.prefixes.len());
        &self.stats[idx]
    }

    /// All routes, `other` last.
    pub fn all(&self) -> &[Arc<RouteStats>] {
        &self.stats
    }

    /// The route of this name, if configured (`other` included).
    pub fn get(&self, name: &str) -> Option<&Arc<RouteStats>> {
        self.stats.iter().find(|r| r.info.name == name)
    }
}
