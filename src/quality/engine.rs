//! The quality engine: one task that drains pushed observations, samples the pull signals
//! (request error fraction and windowed p99 per route, read from the live path's existing
//! counters and sketches, so the live path does no extra work), forms subgroups, runs Phase I
//! then the charts, runs the drift tests, and sets the metrics.
//!
//! Clock-injected: [`Engine::push`] and [`Engine::tick`] take `now`, so tests drive it with a
//! paused tokio clock or explicit instants; [`Engine::run`] is the loop around them.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{Gauge, IntCounter, IntGauge, Registry};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::{
    parse_signal, ChartConfig, ChartKind, DriftConfig, EwmaLimits, QualityConfig, SignalRef,
};
use super::cusum::Cusum;
use super::drift;
use super::ewma::Ewma;
use super::figures::RouteFigures;
use super::metrics::QualityMetrics;
use super::pchart::PChart;
use super::phase::{self, Baseline, SavedBaseline, SavedReference, State};
use super::shewhart::{Shewhart, WeRules};
use super::signal::{Observation, SignalSender};
use super::subgroup::{Closed, Subgrouper};
use super::{Chart, Point, QualityError, Rule, Rules};

/// Most classes a categorical drift signal distinguishes; larger indices share the last bin.
pub const MAX_CLASSES: usize = 64;

/// Where a chart's observations come from.
enum Source {
    /// `request_error:<route>`: deltas of the route's (total, failed) counters per interval.
    RequestError {
        figures: Arc<dyn RouteFigures>,
        route: String,
        last: (u64, u64),
    },
    /// `latency_p99:<route>`: the route sketch's p99 over the last interval.
    LatencyP99 {
        figures: Arc<dyn RouteFigures>,
        route: String,
    },
    Pushed,
}

enum Running {
    Shewhart(Shewhart),
    Ewma(Ewma),
    Cusum(Cusum),
    P(PChart),
}

enum Phase {
    One {
        groups: Vec<Closed>,
        bad: u64,
        n: u64,
        subgroups: u64,
    },
    Two {
        baseline: Baseline,
        chart: Running,
    },
}

struct Handles {
    statistic: Gauge,
    center: Gauge,
    upper: Gauge,
    lower: Gauge,
    alarm: IntGauge,
    phase1: IntGauge,
    alarms: Vec<(Rule, IntCounter)>,
}

struct ChartRuntime {
    cfg: ChartConfig,
    source: Source,
    interval: Duration,
    next_due: Instant,
    sub: Subgrouper,
    /// A pushed 0/1 signal's current subgroup: (bad, n).
    counts: (u64, u64),
    phase: Phase,
    alarm_on: bool,
    since_signal: u64,
    handles: Handles,
}

struct DriftRuntime {
    cfg: DriftConfig,
    reference: Vec<f64>,
    ready: bool,
    edges: Vec<f64>,
    reference_counts: Vec<u64>,
    window: Vec<f64>,
    alarm_on: bool,
    m: QualityMetrics,
}

/// Where one pushed signal's observations go.
#[derive(Default, Clone)]
struct Targets {
    charts: Vec<usize>,
    drifts: Vec<usize>,
}

pub struct Engine {
    charts: Vec<ChartRuntime>,
    drifts: Vec<DriftRuntime>,
    /// Index = pushed signal id.
    targets: Vec<Targets>,
    rx: mpsc::Receiver<Observation>,
    state_path: Option<PathBuf>,
    state: State,
}

impl Engine {
    /// Build from a validated config: charts, drift tests, the signal queue and its sender, and
    /// the metrics on `registry`. A state file with baselines for these charts skips their
    /// Phase I; one that cannot be read is an error (rather than silently re-learning).
    pub fn build(
        cfg: &QualityConfig,
        routes: Arc<dyn RouteFigures>,
        registry: &Registry,
        now: Instant,
    ) -> Result<(Engine, SignalSender), QualityError> {
        let m = QualityMetrics::register(registry)?;
        let state_path = (!cfg.state_file.is_empty()).then(|| PathBuf::from(&cfg.state_file));
        let state = match &state_path {
            Some(p) => State::load(p)?,
            None => State::default(),
        };
        // A pull signal's route must exist; its totals now are the first interval's start.
        let totals = |name: &str| -> Result<(u64, u64), QualityError> {
            routes
                .totals(name)
                .ok_or_else(|| QualityError::Invalid(format!("no route named {name:?}")))
        };

        let mut ids: HashMap<String, u16> = HashMap::new();
        let mut targets: Vec<Targets> = Vec::new();
        let mut pushed_id = |name: &str, targets: &mut Vec<Targets>| -> usize {
            let next = ids.len() as u16;
            let id = *ids.entry(name.to_string()).or_insert(next);
            if targets.len() <= id as usize {
                targets.push(Targets::default());
            }
            id as usize
        };

        let mut charts = Vec::new();
        for (i, c) in cfg.charts.iter().enumerate() {
            let source = match parse_signal(&c.signal) {
                SignalRef::RequestError(r) => Source::RequestError {
                    last: totals(r)?,
                    figures: routes.clone(),
                    route: r.to_string(),
                },
                SignalRef::LatencyP99(r) => {
                    totals(r)?;
                    Source::LatencyP99 {
                        figures: routes.clone(),
                        route: r.to_string(),
                    }
                }
                SignalRef::Pushed(name) => {
                    let id = pushed_id(name, &mut targets);
                    targets[id].charts.push(i);
                    Source::Pushed
                }
            };
            let labels = [c.name.as_str(), c.signal.as_str()];
            let rules: Vec<Rule> = match c.kind {
                ChartKind::Shewhart => {
                    let mut r = vec![Rule::Limit];
                    if c.we_two_of_three {
                        r.push(Rule::We2);
                    }
                    if c.we_four_of_five {
                        r.push(Rule::We3);
                    }
                    if c.we_eight_in_a_row {
                        r.push(Rule::We4);
                    }
                    r
                }
                ChartKind::Ewma | ChartKind::P => vec![Rule::Limit],
                ChartKind::Cusum => vec![Rule::CusumUpper, Rule::CusumLower],
            };
            let handles = Handles {
                statistic: m.statistic.with_label_values(&labels),
                center: m.center.with_label_values(&labels),
                upper: m.upper.with_label_values(&labels),
                lower: m.lower.with_label_values(&labels),
                alarm: m.alarm.with_label_values(&labels),
                phase1: m.phase1.with_label_values(&labels),
                alarms: rules
                    .into_iter()
                    .map(|r| {
                        (
                            r,
                            m.alarms
                                .with_label_values(&[labels[0], labels[1], r.as_str()]),
                        )
                    })
                    .collect(),
            };
            let fixed = fixed_baseline(c);
            let saved = state
                .charts
                .get(&c.name)
                .filter(|s| s.signal == c.signal && s.kind == c.kind.as_str())
                .map(|s| s.baseline);
            let phase = match fixed.or(saved) {
                Some(baseline) => Phase::Two {
                    chart: running(c, &baseline),
                    baseline,
                },
                None => Phase::One {
                    groups: Vec::new(),
                    bad: 0,
                    n: 0,
                    subgroups: 0,
                },
            };
            handles
                .phase1
                .set(i64::from(matches!(phase, Phase::One { .. })));
            let interval = Duration::from_secs_f64(c.subgroup_interval_secs);
            charts.push(ChartRuntime {
                cfg: c.clone(),
                source,
                interval,
                next_due: now + interval,
                sub: Subgrouper::new(c.subgroup_size),
                counts: (0, 0),
                phase,
                alarm_on: false,
                since_signal: 0,
                handles,
            });
        }

        let mut drifts = Vec::new();
        for (i, d) in cfg.drift.iter().enumerate() {
            if let SignalRef::Pushed(name) = parse_signal(&d.signal) {
                let id = pushed_id(name, &mut targets);
                targets[id].drifts.push(i);
            }
            let mut rt = DriftRuntime {
                cfg: d.clone(),
                reference: Vec::with_capacity(d.reference_size),
                ready: false,
                edges: Vec::new(),
                reference_counts: Vec::new(),
                window: Vec::with_capacity(d.window_size),
                alarm_on: false,
                m: m.clone(),
            };
            if let Some(saved) = state.references.get(&d.signal) {
                if saved.values.len() == d.reference_size {
                    rt.reference = saved.values.clone();
                    rt.finish_reference();
                }
            }
            drifts.push(rt);
        }

        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let sender_ids = ids
            .into_iter()
            .map(|(name, id)| {
                let dropped = m.dropped.with_label_values(&[&name]);
                (name, (id, dropped))
            })
            .collect();
        let sender = SignalSender::new(tx, sender_ids, m.unknown.clone());
        Ok((
            Engine {
                charts,
                drifts,
                targets,
                rx,
                state_path,
                state,
            },
            sender,
        ))
    }

    /// Whether there is anything to do (no charts and no drift tests: the task just waits).
    pub fn is_idle(&self) -> bool {
        self.charts.is_empty() && self.drifts.is_empty()
    }

    /// One pushed observation.
    pub fn push(&mut self, obs: Observation) {
        let Some(t) = self.targets.get(obs.signal as usize).cloned() else {
            return;
        };
        for i in t.charts {
            let learned = self.charts[i].push(obs.value);
            self.learned(i, learned);
        }
        for i in t.drifts {
            if self.drifts[i].push(obs.value) {
                self.save_reference(i);
            }
        }
    }

    /// Close every subgroup whose interval has ended, sampling the pull signals.
    pub fn tick(&mut self, now: Instant) {
        for i in 0..self.charts.len() {
            while self.charts[i].next_due <= now {
                let interval = self.charts[i].interval;
                self.charts[i].next_due += interval;
                let learned = self.charts[i].close_interval(now);
                self.learned(i, learned);
            }
        }
    }

    /// When the next subgroup interval ends (`None` without charts).
    pub fn next_due(&self) -> Option<Instant> {
        self.charts.iter().map(|c| c.next_due).min()
    }

    /// Run until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            // Without charts, wake only for pushed observations (drift) or shutdown.
            let due = self
                .next_due()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = &mut shutdown => return,
                obs = self.rx.recv() => match obs {
                    Some(obs) => self.push(obs),
                    // Every sender is gone: only the pull signals are left.
                    None => {
                        tokio::select! {
                            _ = &mut shutdown => return,
                            _ = tokio::time::sleep_until(due) => self.tick(Instant::now()),
                        }
                    }
                },
                _ = tokio::time::sleep_until(due) => self.tick(Instant::now()),
            }
        }
    }

    fn learned(&mut self, chart: usize, baseline: Option<Baseline>) {
        let Some(baseline) = baseline else { return };
        let c = &self.charts[chart].cfg;
        tracing::info!(
            chart = %c.name,
            signal = %c.signal,
            center = baseline.center,
            sigma = baseline.sigma,
            subgroups = baseline.subgroups,
            "spc phase I done, monitoring"
        );
        let saved = SavedBaseline {
            signal: c.signal.clone(),
            kind: c.kind.as_str().to_string(),
            baseline,
            learned_at_unix: unix_now(),
        };
        self.state.charts.insert(c.name.clone(), saved);
        self.save();
    }

    fn save_reference(&mut self, i: usize) {
        let d = &self.drifts[i];
        self.state.references.insert(
            d.cfg.signal.clone(),
            SavedReference {
                signal: d.cfg.signal.clone(),
                values: d.reference.clone(),
                learned_at_unix: unix_now(),
            },
        );
        self.save();
    }

    fn save(&self) {
        if let Some(path) = &self.state_path {
            if let Err(e) = self.state.save(path) {
                tracing::warn!(error = %e, "cannot save the quality state file");
            }
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A baseline fixed in config, if it is complete (p: `center`; others: `center` and `sigma`).
fn fixed_baseline(c: &ChartConfig) -> Option<Baseline> {
    let center = c.center?;
    let sigma = match c.kind {
        ChartKind::P => (center * (1.0 - center)).sqrt(),
        _ => c.sigma?,
    };
    Some(Baseline {
        center,
        sigma,
        subgroups: 0,
        observations: 0,
    })
}

fn running(c: &ChartConfig, b: &Baseline) -> Running {
    match c.kind {
        ChartKind::Shewhart => Running::Shewhart(Shewhart::new(
            c.limit,
            WeRules {
                two_of_three: c.we_two_of_three,
                four_of_five: c.we_four_of_five,
                eight_in_a_row: c.we_eight_in_a_row,
            },
        )),
        ChartKind::Ewma => Running::Ewma(Ewma::new(
            c.lambda,
            c.limit,
            c.ewma_limits == EwmaLimits::Exact,
        )),
        ChartKind::Cusum => Running::Cusum(Cusum::new(c.k, c.h)),
        ChartKind::P => Running::P(PChart::new(b.center, c.limit)),
    }
}

impl ChartRuntime {
    /// A pushed observation; returns a baseline if it completed Phase I.
    fn push(&mut self, value: f64) -> Option<Baseline> {
        if self.cfg.kind == ChartKind::P {
            if !value.is_finite() {
                return None;
            }
            self.counts.0 += u64::from(value >= 0.5);
            self.counts.1 += 1;
            if self.cfg.subgroup_size > 0 && self.counts.1 >= self.cfg.subgroup_size {
                let (bad, n) = std::mem::take(&mut self.counts);
                return self.fraction(bad, n);
            }
            return None;
        }
        let closed = self.sub.push(value)?;
        self.subgroup(closed)
    }

    /// The end of a subgroup interval.
    fn close_interval(&mut self, now: Instant) -> Option<Baseline> {
        match &mut self.source {
            Source::RequestError {
                figures,
                route,
                last,
            } => {
                let (total, failed) = figures.totals(route).unwrap_or(*last);
                let n = total.saturating_sub(last.0);
                let bad = failed.saturating_sub(last.1);
                *last = (total, failed);
                self.fraction(bad, n)
            }
            Source::LatencyP99 { figures, route } => {
                let p99 = figures.p99(route, self.interval, now);
                let closed = p99.and_then(|v| {
                    self.sub.push(v);
                    self.sub.flush()
                })?;
                self.subgroup(closed)
            }
            Source::Pushed if self.cfg.kind == ChartKind::P => {
                let (bad, n) = std::mem::take(&mut self.counts);
                self.fraction(bad, n)
            }
            Source::Pushed => {
                let closed = self.sub.flush()?;
                self.subgroup(closed)
            }
        }
    }

    fn fraction(&mut self, bad: u64, n: u64) -> Option<Baseline> {
        if n == 0 {
            return None;
        }
        match &mut self.phase {
            Phase::One {
                bad: b,
                n: total,
                subgroups,
                ..
            } => {
                *b += bad;
                *total += n;
                *subgroups += 1;
                if *subgroups < self.cfg.phase1_subgroups {
                    return None;
                }
                let baseline = phase::estimate_fraction(*b, *total, *subgroups)?;
                self.enter_phase_two(baseline);
                Some(baseline)
            }
            Phase::Two {
                chart: Running::P(chart),
                ..
            } => {
                if let Some(point) = chart.observe(bad, n) {
                    self.plot(point);
                }
                None
            }
            Phase::Two { .. } => None,
        }
    }

    fn subgroup(&mut self, closed: Closed) -> Option<Baseline> {
        match &mut self.phase {
            Phase::One { groups, .. } => {
                groups.push(closed);
                if (groups.len() as u64) < self.cfg.phase1_subgroups {
                    return None;
                }
                match phase::estimate_continuous(groups) {
                    Some(baseline) => {
                        self.enter_phase_two(baseline);
                        Some(baseline)
                    }
                    None => {
                        // No usable sigma yet (e.g. every value equal): keep learning on a
                        // sliding set of the most recent subgroups.
                        groups.remove(0);
                        None
                    }
                }
            }
            Phase::Two { baseline, chart } => {
                let se = baseline.sigma / (closed.n as f64).sqrt();
                let z = (closed.mean - baseline.center) / se;
                let point = match chart {
                    Running::Shewhart(c) => {
                        let p = c.observe(z);
                        // Shewhart in the signal's own units.
                        Point {
                            statistic: closed.mean,
                            center: baseline.center,
                            upper: baseline.center + c.limit() * se,
                            lower: baseline.center - c.limit() * se,
                            fired: p.fired,
                        }
                    }
                    Running::Ewma(c) => c.observe(z),
                    Running::Cusum(c) => c.observe(z),
                    Running::P(_) => return None,
                };
                self.plot(point);
                None
            }
        }
    }

    fn enter_phase_two(&mut self, baseline: Baseline) {
        self.phase = Phase::Two {
            chart: running(&self.cfg, &baseline),
            baseline,
        };
        self.handles.phase1.set(0);
    }

    fn plot(&mut self, p: Point) {
        let h = &self.handles;
        h.statistic.set(p.statistic);
        h.center.set(p.center);
        h.upper.set(p.upper);
        h.lower.set(p.lower);
        if p.fired.any() {
            for (rule, counter) in &h.alarms {
                if p.fired.contains(*rule) {
                    counter.inc();
                }
            }
            self.since_signal = 0;
            if !self.alarm_on {
                self.alarm_on = true;
                h.alarm.set(1);
                tracing::warn!(
                    chart = %self.cfg.name,
                    signal = %self.cfg.signal,
                    rules = %rule_list(p.fired),
                    statistic = p.statistic,
                    upper = p.upper,
                    lower = p.lower,
                    "spc alarm"
                );
            }
        } else if self.alarm_on {
            self.since_signal += 1;
            if self.since_signal >= self.cfg.clear_after_subgroups {
                self.alarm_on = false;
                h.alarm.set(0);
                tracing::info!(
                    chart = %self.cfg.name,
                    signal = %self.cfg.signal,
                    "spc alarm cleared"
                );
            }
        }
    }
}

fn rule_list(r: Rules) -> String {
    r.iter().map(Rule::as_str).collect::<Vec<_>>().join(",")
}

impl DriftRuntime {
    /// Returns true when this observation completed the reference (to be saved).
    fn push(&mut self, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        if !self.ready {
            self.reference.push(value);
            if self.reference.len() >= self.cfg.reference_size {
                self.finish_reference();
                return true;
            }
            return false;
        }
        self.window.push(value);
        if self.window.len() >= self.cfg.window_size {
            self.test();
            self.window.clear();
        }
        false
    }

    fn finish_reference(&mut self) {
        self.ready = true;
        let labels = [self.cfg.signal.as_str()];
        if self.cfg.categorical {
            self.reference_counts = class_counts(&self.reference);
        } else {
            self.edges = drift::psi_edges(&self.reference, self.cfg.bins);
            self.reference_counts = drift::bin_counts(&self.edges, &self.reference);
            let bins = self.edges.len() + 1;
            self.m
                .psi_threshold
                .with_label_values(&labels)
                .set(drift::psi_threshold(
                    self.reference.len(),
                    self.cfg.window_size,
                    bins,
                    self.cfg.alpha,
                ));
        }
    }

    fn test(&mut self) {
        let labels = [self.cfg.signal.as_str()];
        let alpha = self.cfg.alpha;
        let drifted = if self.cfg.categorical {
            let current = class_counts(&self.window);
            let c = drift::chi_square(&self.reference_counts, &current);
            self.m
                .chi_square_p_value
                .with_label_values(&labels)
                .set(c.p_value);
            self.m
                .psi
                .with_label_values(&labels)
                .set(drift::psi(&self.reference_counts, &current));
            c.p_value < alpha
        } else {
            let current = drift::bin_counts(&self.edges, &self.window);
            let psi = drift::psi(&self.reference_counts, &current);
            let threshold = drift::psi_threshold(
                self.reference.len(),
                self.window.len(),
                self.edges.len() + 1,
                alpha,
            );
            let ks = drift::ks_two_sample(&self.reference, &self.window);
            self.m.psi.with_label_values(&labels).set(psi);
            self.m
                .ks_statistic
                .with_label_values(&labels)
                .set(ks.statistic);
            self.m.ks_p_value.with_label_values(&labels).set(ks.p_value);
            psi > threshold || ks.p_value < alpha
        };
        self.m
            .drift_alarm
            .with_label_values(&labels)
            .set(i64::from(drifted));
        if drifted != self.alarm_on {
            self.alarm_on = drifted;
            if drifted {
                tracing::warn!(signal = %self.cfg.signal, "drift alarm");
            } else {
                tracing::info!(signal = %self.cfg.signal, "drift alarm cleared");
            }
        }
    }
}

fn class_counts(values: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; MAX_CLASSES];
    for &v in values {
        let class = if v.is_finite() && v >= 0.0 {
            (v.round() as usize).min(MAX_CLASSES - 1)
        } else {
            MAX_CLASSES - 1
        };
        counts[class] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::NoRoutes;

    fn engine(
        charts: Vec<ChartConfig>,
        drift: Vec<DriftConfig>,
    ) -> (Engine, SignalSender, Registry, Instant) {
        let registry = Registry::new();
        let now = Instant::now();
        let cfg = QualityConfig {
            charts,
            drift,
            queue_capacity: 4,
            ..QualityConfig::default()
        };
        let (e, s) = Engine::build(&cfg, Arc::new(NoRoutes), &registry, now).unwrap();
        (e, s, registry, now)
    }

    fn gauge(registry: &Registry, name: &str) -> f64 {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == name)
            .map(|f| {
                let m = &f.get_metric()[0];
                if f.get_field_type() == prometheus::proto::MetricType::COUNTER {
                    m.get_counter().get_value()
                } else {
                    m.get_gauge().get_value()
                }
            })
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn pushed_shewhart_learns_then_alarms_and_clears() {
        let chart = ChartConfig {
            name: "conf".into(),
            signal: "confidence".into(),
            subgroup_size: 1,
            phase1_subgroups: 4,
            clear_after_subgroups: 2,
            ..ChartConfig::default()
        };
        let (mut e, s, reg, _) = engine(vec![chart], vec![]);
        let h = s.handle("confidence").unwrap();
        assert_eq!(gauge(&reg, "inferwatch_spc_phase1"), 1.0);
        for v in [1.0, 2.0, 1.0, 2.0] {
            assert!(h.observe(v));
            let obs = e.rx.try_recv().unwrap();
            e.push(obs);
        }
        assert_eq!(gauge(&reg, "inferwatch_spc_phase1"), 0.0);
        // centre 1.5, sigma = MR̄/d2 = 1/1.128 → UCL ≈ 4.16
        e.push(Observation {
            signal: 0,
            value: 1.5,
        });
        assert_eq!(gauge(&reg, "inferwatch_spc_alarm"), 0.0);
        assert!(
            (gauge(&reg, "inferwatch_spc_upper_control_limit") - (1.5 + 3.0 / 1.128)).abs() < 1e-9
        );
        e.push(Observation {
            signal: 0,
            value: 9.0,
        });
        assert_eq!(gauge(&reg, "inferwatch_spc_alarm"), 1.0);
        assert_eq!(gauge(&reg, "inferwatch_spc_alarms_total"), 1.0);
        e.push(Observation {
            signal: 0,
            value: 1.5,
        });
        assert_eq!(gauge(&reg, "inferwatch_spc_alarm"), 1.0);
        e.push(Observation {
            signal: 0,
            value: 1.5,
        });
        assert_eq!(gauge(&reg, "inferwatch_spc_alarm"), 0.0);
    }

    #[test]
    fn full_queue_drops_and_counts_and_unknown_signals_are_counted() {
        let chart = ChartConfig {
            name: "c".into(),
            signal: "s".into(),
            ..ChartConfig::default()
        };
        let (_e, s, reg, _) = engine(vec![chart], vec![]);
        let sent = (0..10).filter(|_| s.observe("s", 1.0)).count();
        assert_eq!(sent, 4, "queue capacity 4");
        assert_eq!(gauge(&reg, "inferwatch_quality_signal_dropped_total"), 6.0);
        assert!(!s.observe("nope", 1.0));
        assert_eq!(gauge(&reg, "inferwatch_quality_signal_unknown_total"), 1.0);
    }

    #[test]
    fn intervals_close_pushed_p_subgroups() {
        let chart = ChartConfig {
            name: "canary".into(),
            signal: "canary_correct".into(),
            kind: ChartKind::P,
            center: Some(0.01),
            subgroup_interval_secs: 1.0,
            ..ChartConfig::default()
        };
        let (mut e, _s, reg, start) = engine(vec![chart], vec![]);
        assert_eq!(gauge(&reg, "inferwatch_spc_phase1"), 0.0, "fixed centre");
        for i in 0..100 {
            e.push(Observation {
                signal: 0,
                value: f64::from(u8::from(i % 2 == 0)),
            });
        }
        e.tick(start + Duration::from_millis(999));
        assert_eq!(gauge(&reg, "inferwatch_spc_statistic"), 0.0, "no point yet");
        e.tick(start + Duration::from_secs(1));
        assert_eq!(gauge(&reg, "inferwatch_spc_statistic"), 0.5);
        assert_eq!(gauge(&reg, "inferwatch_spc_alarm"), 1.0);
    }
}
