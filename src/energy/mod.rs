//! Energy per inference: energy sources (one file each: [`nvml`], [`rapl`], [`estimate`]) read
//! on their own interval off the live path, and [`attribution`] of their energy to the
//! inferences each route completed.
//!
//! Every source that is not `off` reports `inferwatch_energy_source_up{source}`. A source this
//! host does not have (no GPU driver, no powercap, no permission) is a normal state: it shows 0
//! and is logged once at debug (warn if the operator set it to `on`), then only again when it
//! changes. Reads that may block (sysfs, NVML) run on the blocking pool, so neither the proxy
//! nor a scrape ever waits for them; a scrape reads the gauges the last tick left.

pub mod attribution;
pub mod config;
pub mod estimate;
pub mod nvml;
pub mod rapl;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use prometheus::{core::Collector, CounterVec, GaugeVec, IntCounterVec, Opts, Registry};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::metrics::{names, registered};
use crate::system::ModelServer;
use attribution::{Point, RouteSnapshot, Window};
use config::{EnergyConfig, SourceMode};
pub use routes::{RouteLoad, RouteLoads};

/// A cumulative energy reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Joules since some baseline of the source's choosing; only differences between two
    /// readings with no error between them mean anything.
    pub joules: f64,
    /// False when the underlying counter has not moved since the last reading although power
    /// was drawn (NVML's counter updates coarsely): such a reading is kept out of the window, so
    /// that a 0 J delta is never reported as truth; the next fresh reading covers both intervals.
    pub fresh: bool,
}

/// Why a source has no reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// This host does not have it (no driver, no powercap, no permission): a normal state.
    #[error("not available: {0}")]
    NotAvailable(String),
    /// It exists but a read failed.
    #[error("read failed: {0}")]
    Failed(String),
}

/// One energy source. `read` may block (file reads, NVML calls): it runs on the blocking pool.
pub trait EnergySource: Send + 'static {
    /// The `source` label value.
    fn name(&self) -> &'static str;
    /// The cumulative energy now.
    fn read(&mut self) -> Result<Reading, SourceError>;
}

/// The families every source feeds, each labelled `source`.
#[derive(Clone)]
pub struct EnergyMetrics {
    pub up: GaugeVec,
    pub joules: CounterVec,
    pub power: GaugeVec,
    pub idle_power: GaugeVec,
    pub attributed: CounterVec,
    pub per_inference: GaugeVec,
    pub per_output_token: GaugeVec,
}

impl EnergyMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let up = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    names::ENERGY_SOURCE_UP,
                    "1 if the energy source gave a reading on its last try, 0 if this host does not have it or the read failed.",
                ),
                &["source"],
            )?,
        )?;
        let joules = registered(
            registry,
            CounterVec::new(
                Opts::new(
                    names::ENERGY_JOULES_TOTAL,
                    "Energy the source measured (source=\"estimate\": estimated) since inferwatch started: GPUs in scope, or CPU packages.",
                ),
                &["source"],
            )?,
        )?;
        let power = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    names::ENERGY_POWER_WATTS,
                    "Mean power over the last sampling interval, from the source's energy counter.",
                ),
                &["source"],
            )?,
        )?;
        let idle_power = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    names::ENERGY_IDLE_POWER_WATTS,
                    "Idle power subtracted for kind=\"dynamic\": configured, or measured while no request was in flight.",
                ),
                &["source"],
            )?,
        )?;
        let attributed = registered(
            registry,
            CounterVec::new(
                Opts::new(
                    names::ENERGY_ATTRIBUTED_JOULES_TOTAL,
                    "Energy charged to the route's completed inferences (split across routes by request-seconds); energy while nothing was in flight is charged to no route.",
                ),
                &["route", "model", "source"],
            )?,
        )?;
        let per_inference = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    names::ENERGY_PER_INFERENCE_JOULES,
                    "Joules per completed inference over the sliding window: kind=\"total\" all energy, kind=\"dynamic\" minus idle power. Absent while the route completed nothing in the window.",
                ),
                &["route", "model", "source", "kind"],
            )?,
        )?;
        let per_output_token = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    names::ENERGY_PER_OUTPUT_TOKEN_JOULES,
                    "Joules per generated output token over the sliding window (routes whose adapter counts tokens, e.g. OpenAI): kind=\"total\" or \"dynamic\". Absent while the route generated no tokens in the window.",
                ),
                &["route", "model", "source", "kind"],
            )?,
        )?;
        Ok(Self {
            up,
            joules,
            power,
            idle_power,
            attributed,
            per_inference,
            per_output_token,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Unknown,
    Up,
    Down,
}

/// A source and everything the sampler keeps about it.
struct Slot {
    source: Box<dyn EnergySource>,
    name: &'static str,
    mode: SourceMode,
    /// `estimate` under `auto`: stands by while a measured source is up.
    fallback_only: bool,
    health: Health,
    last_error: Option<SourceError>,
    last_joules: Option<f64>,
    window: Window,
    /// When the last point entered the window (stale readings are held back at most
    /// `max_stale`, so a counter that truly stands still is still reported).
    last_point: Option<Instant>,
}

/// Reads every enabled source each interval and turns readings into metrics.
pub struct EnergySampler {
    slots: Vec<Slot>,
    routes: Arc<dyn RouteLoads>,
    /// Every route's `(route, model)` labels, in the order of `routes.loads()`.
    labels: Vec<(String, String)>,
    /// The protocol adapters' output-token counter, for joules per token.
    output_tokens: Option<IntCounterVec>,
    metrics: EnergyMetrics,
    interval: Duration,
    max_stale: Duration,
}

/// Output tokens per route name so far, summed over the counter's model labels.
fn tokens_by_route(tokens: Option<&IntCounterVec>) -> std::collections::HashMap<String, u64> {
    let mut out = std::collections::HashMap::new();
    let Some(tokens) = tokens else { return out };
    for family in tokens.collect() {
        for m in family.get_metric() {
            if let Some(route) = m.get_label().iter().find(|l| l.name() == "route") {
                *out.entry(route.value().to_string()).or_insert(0) +=
                    m.get_counter().get_value() as u64;
            }
        }
    }
    out
}

/// Every route's cumulative figures now.
fn snapshot(
    routes: &dyn RouteLoads,
    labels: &[(String, String)],
    tokens: Option<&IntCounterVec>,
) -> Vec<RouteSnapshot> {
    let tokens = tokens_by_route(tokens);
    routes
        .loads()
        .into_iter()
        .zip(labels)
        .map(|(load, (route, _))| RouteSnapshot {
            count: load.count,
            busy_secs: load.busy_secs,
            in_flight: load.in_flight,
            output_tokens: tokens.get(route).copied().unwrap_or(0),
        })
        .collect()
}

/// What one tick read from one source (on the blocking pool).
type Outcome = Result<Reading, SourceError>;

impl EnergySampler {
    /// Builds the sources the config enables and registers their metrics. `None` when every
    /// source is `off`.
    pub fn build(
        cfg: &EnergyConfig,
        registry: &Registry,
        routes: Arc<dyn RouteLoads>,
        model_server: Option<ModelServer>,
    ) -> prometheus::Result<Option<Self>> {
        let mut sources: Vec<(Box<dyn EnergySource>, SourceMode, Option<f64>)> = Vec::new();
        if cfg.nvml != SourceMode::Off {
            let s = nvml::NvmlSource::new(cfg, registry, model_server.clone())?;
            sources.push((Box::new(s), cfg.nvml, cfg.nvml_idle_watts));
        }
        if cfg.rapl != SourceMode::Off {
            let s = rapl::RaplSource::new(&cfg.rapl_root, registry)?;
            sources.push((Box::new(s), cfg.rapl, cfg.rapl_idle_watts));
        }
        if cfg.estimate != SourceMode::Off {
            let s = estimate::EstimateSource::new(cfg, model_server);
            sources.push((Box::new(s), cfg.estimate, cfg.estimate_idle_watts));
        }
        Self::with_sources(cfg, registry, routes, sources)
    }

    /// Builds a sampler over given sources (tests pass their own).
    pub fn with_sources(
        cfg: &EnergyConfig,
        registry: &Registry,
        routes: Arc<dyn RouteLoads>,
        sources: Vec<(Box<dyn EnergySource>, SourceMode, Option<f64>)>,
    ) -> prometheus::Result<Option<Self>> {
        if sources.is_empty() {
            return Ok(None);
        }
        let metrics = EnergyMetrics::register(registry)?;
        let window = Duration::from_secs_f64(cfg.window_secs);
        let slots: Vec<Slot> = sources
            .into_iter()
            .map(|(source, mode, idle)| {
                let name = source.name();
                metrics.up.with_label_values(&[name]).set(0.0);
                metrics.joules.with_label_values(&[name]);
                Slot {
                    name,
                    fallback_only: name == estimate::NAME && mode == SourceMode::Auto,
                    source,
                    mode,
                    health: Health::Unknown,
                    last_error: None,
                    last_joules: None,
                    window: Window::new(window, idle),
                    last_point: None,
                }
            })
            .collect();
        Ok(Some(Self {
            slots,
            labels: routes.labels(),
            routes,
            output_tokens: None,
            metrics,
            interval: Duration::from_secs_f64(cfg.interval_secs),
            max_stale: window / 2,
        }))
    }

    /// Divide energy by the output tokens this counter (the protocol adapters'
    /// `inferwatch_output_tokens_total{route,model}`) records, for joules per token.
    pub fn with_output_tokens(mut self, tokens: IntCounterVec) -> Self {
        self.output_tokens = Some(tokens);
        self
    }

    /// Samples every interval until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if !self.tick().await {
                return;
            }
        }
    }

    /// One round: read the sources, then snapshot the routes (on the blocking pool), update metrics.
    /// False if the blocking read panicked (the sources are gone then; the proxy is unaffected).
    pub async fn tick(&mut self) -> bool {
        let mut slots = std::mem::take(&mut self.slots);
        let routes = self.routes.clone();
        let labels = self.labels.clone();
        let tokens = self.output_tokens.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(slots.len());
            let mut measured_up = false;
            for slot in slots.iter_mut() {
                if slot.fallback_only && measured_up {
                    outcomes.push(None);
                    continue;
                }
                let outcome = slot.source.read();
                if outcome.is_ok() && slot.name != estimate::NAME {
                    measured_up = true;
                }
                outcomes.push(Some(outcome));
            }
            // The routes after the energy: energy read at this point was spent by requests that
            // are either still in flight or already counted, never by ones the snapshot misses.
            (
                slots,
                outcomes,
                snapshot(routes.as_ref(), &labels, tokens.as_ref()),
                Instant::now(),
            )
        })
        .await;
        let (slots, outcomes, routes, now) = match joined {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "energy sampler stopped: a source panicked");
                return false;
            }
        };
        self.slots = slots;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let outcome = outcome.unwrap_or_else(|| {
                Err(SourceError::NotAvailable(
                    "standing by: a measured source (nvml or rapl) is up".into(),
                ))
            });
            self.apply(i, now, &routes, outcome);
        }
        true
    }

    fn apply(&mut self, i: usize, now: Instant, routes: &[RouteSnapshot], outcome: Outcome) {
        let metrics = &self.metrics;
        let slot = &mut self.slots[i];
        let name = slot.name;
        match outcome {
            Err(error) => {
                metrics.up.with_label_values(&[name]).set(0.0);
                if slot.health != Health::Down || slot.last_error.as_ref() != Some(&error) {
                    // Once per change, never per tick: a host without a GPU is not news.
                    let reason = error.to_string();
                    match (slot.mode, &error) {
                        (SourceMode::On, _) | (_, SourceError::Failed(_)) => {
                            tracing::warn!(source = name, %reason, "energy source down")
                        }
                        _ => tracing::debug!(source = name, %reason, "energy source down"),
                    }
                }
                if slot.health == Health::Up {
                    slot.window.reset();
                    let _ = metrics.power.remove_label_values(&[name]);
                    for (route, model) in &self.labels {
                        for kind in ["total", "dynamic"] {
                            let l = [route.as_str(), model.as_str(), name, kind];
                            let _ = metrics.per_inference.remove_label_values(&l);
                            let _ = metrics.per_output_token.remove_label_values(&l);
                        }
                    }
                }
                slot.health = Health::Down;
                slot.last_error = Some(error);
                slot.last_joules = None;
                slot.last_point = None;
            }
            Ok(reading) => {
                metrics.up.with_label_values(&[name]).set(1.0);
                if slot.health != Health::Up {
                    tracing::info!(source = name, "energy source up");
                    slot.window.reset();
                }
                slot.health = Health::Up;
                slot.last_error = None;
                if let Some(last) = slot.last_joules {
                    let delta = reading.joules - last;
                    if delta > 0.0 {
                        metrics.joules.with_label_values(&[name]).inc_by(delta);
                    }
                }
                slot.last_joules = Some(reading.joules);
                let overdue = slot
                    .last_point
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.max_stale);
                if !(reading.fresh || overdue) {
                    return;
                }
                slot.last_point = Some(now);
                let update = slot.window.push(Point {
                    at: now,
                    joules: reading.joules,
                    routes: routes.to_vec(),
                });
                if let Some(w) = update.interval_watts {
                    metrics.power.with_label_values(&[name]).set(w);
                }
                if let Some(w) = update.idle_watts {
                    metrics.idle_power.with_label_values(&[name]).set(w);
                }
                for (r, (route, model)) in self.labels.iter().enumerate() {
                    let labels = [route.as_str(), model.as_str(), name];
                    let attributed = update.attributed.get(r).copied().unwrap_or(0.0);
                    if attributed > 0.0 {
                        metrics
                            .attributed
                            .with_label_values(&labels)
                            .inc_by(attributed);
                    }
                    let gauge = |vec: &GaugeVec, kind: &str, v: Option<f64>| {
                        let l = [labels[0], labels[1], name, kind];
                        match v {
                            Some(v) => vec.with_label_values(&l).set(v),
                            None => {
                                let _ = vec.remove_label_values(&l);
                            }
                        }
                    };
                    for (vec, per) in [
                        (&metrics.per_inference, update.per_inference.get(r)),
                        (&metrics.per_output_token, update.per_output_token.get(r)),
                    ] {
                        let per = per.copied().flatten();
                        gauge(vec, "total", per.map(|p| p.total));
                        gauge(vec, "dynamic", per.and_then(|p| p.dynamic));
                    }
                }
            }
        }
    }
}
