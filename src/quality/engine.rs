//! The quality engine: one task that drains pushed observations into the charts and drift tests
//! that read them, ends every chart's subgroup interval on time (a pull signal is sampled then:
//! request error fraction and windowed p99 per route, read from the live path's existing
//! counters and sketches, so the live path does no extra work), and saves what Phase I learned.
//! A chart's own work is in `chart_runtime.rs`, a drift test's in `drift_runtime.rs`, the pull
//! signals in `pull.rs`.
//!
//! Clock-injected: [`Engine::push`] and [`Engine::tick`] take `now`, so tests drive it with a
//! paused tokio clock or explicit instants; [`Engine::run`] is the loop around them.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::chart_runtime::{ChartRuntime, Source};
use super::config::{parse_signal, QualityConfig, SignalRef};
use super::drift_runtime::DriftRuntime;
use super::figures::RouteFigures;
use super::metrics::QualityMetrics;
use super::phase::{Baseline, SavedBaseline, SavedReference, State};
use super::pull::Pull;
use super::signal::{Observation, SignalSender};
use super::QualityError;

pub use super::drift_runtime::MAX_CLASSES;

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
                SignalRef::RequestError(r) => Source::Pull(Pull::request_error(&routes, r)?),
                SignalRef::LatencyP99(r) => Source::Pull(Pull::latency_p99(&routes, r)?),
                SignalRef::Pushed(name) => {
                    let id = pushed_id(name, &mut targets);
                    targets[id].charts.push(i);
                    Source::Pushed
                }
            };
            let saved = state
                .charts
                .get(&c.name)
                .filter(|s| s.signal == c.signal && s.kind == c.kind.as_str())
                .map(|s| s.baseline);
            charts.push(ChartRuntime::new(c, source, &m, saved, now));
        }

        let mut drifts = Vec::new();
        for (i, d) in cfg.drift.iter().enumerate() {
            if let SignalRef::Pushed(name) = parse_signal(&d.signal) {
                let id = pushed_id(name, &mut targets);
                targets[id].drifts.push(i);
            }
            let saved = state.references.get(&d.signal);
            drifts.push(DriftRuntime::new(d, m.clone(), saved));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::config::{ChartConfig, ChartKind, DriftConfig};
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

    /// One route whose p99 is whatever the test last set.
    struct OneRoute(std::sync::Mutex<Option<f64>>);

    impl crate::quality::RouteFigures for OneRoute {
        fn totals(&self, route: &str) -> Option<(u64, u64)> {
            (route == "infer").then_some((0, 0))
        }
        fn p99(&self, route: &str, _: Duration, _: Instant) -> Option<f64> {
            (route == "infer")
                .then(|| *self.0.lock().unwrap())
                .flatten()
        }
    }

    #[test]
    fn latency_p99_charts_plot_with_any_subgroup_size() {
        for size in [0, 1] {
            let registry = Registry::new();
            let start = Instant::now();
            let cfg = QualityConfig {
                charts: vec![ChartConfig {
                    name: "p99".into(),
                    signal: "latency_p99:infer".into(),
                    subgroup_size: size,
                    phase1_subgroups: 4,
                    ..ChartConfig::default()
                }],
                ..QualityConfig::default()
            };
            let routes = Arc::new(OneRoute(std::sync::Mutex::new(None)));
            let (mut e, _s) = Engine::build(&cfg, routes.clone(), &registry, start).unwrap();
            let every = Duration::from_secs_f64(cfg.charts[0].subgroup_interval_secs);
            // Four subgroups learn the baseline; the fifth is plotted against it.
            for (i, v) in [0.10, 0.12, 0.11, 0.13, 0.115].into_iter().enumerate() {
                *routes.0.lock().unwrap() = Some(v);
                e.tick(start + every * (i as u32 + 1));
            }
            assert_eq!(
                gauge(&registry, "inferwatch_spc_phase1"),
                0.0,
                "subgroup_size {size}: intervals with a p99 end Phase I"
            );
            assert!(
                (gauge(&registry, "inferwatch_spc_center_line") - 0.115).abs() < 1e-9,
                "subgroup_size {size}: centre {}",
                gauge(&registry, "inferwatch_spc_center_line")
            );
        }
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
