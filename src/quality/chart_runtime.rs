//! One SPC chart at run time: where its observations come from, its subgroups, Phase I (learning
//! a baseline) then Phase II (the pure chart from [`super::shewhart`], [`super::ewma`],
//! [`super::cusum`] or [`super::pchart`]), the alarm it holds, and its metric handles.

use std::time::Duration;

use prometheus::{Gauge, IntCounter, IntGauge};
use tokio::time::Instant;

use super::config::{ChartConfig, ChartKind, EwmaLimits};
use super::cusum::Cusum;
use super::ewma::Ewma;
use super::metrics::QualityMetrics;
use super::pchart::PChart;
use super::phase::{self, Baseline};
use super::pull::{Pull, Sample};
use super::shewhart::{Shewhart, WeRules};
use super::subgroup::{Closed, Subgrouper};
use super::{Chart, Point, Rule, Rules};

/// Where a chart's observations come from.
pub(super) enum Source {
    /// Sampled from the route table at the end of each interval.
    Pull(Pull),
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

pub(super) struct ChartRuntime {
    pub(super) cfg: ChartConfig,
    source: Source,
    pub(super) interval: Duration,
    pub(super) next_due: Instant,
    sub: Subgrouper,
    /// A pushed 0/1 signal's current subgroup: (bad, n).
    counts: (u64, u64),
    phase: Phase,
    alarm_on: bool,
    since_signal: u64,
    handles: Handles,
}

impl ChartRuntime {
    /// A chart for `c` fed by `source`, its first interval ending one interval after `now`. A
    /// baseline fixed in config, else `saved`, skips Phase I.
    pub(super) fn new(
        c: &ChartConfig,
        source: Source,
        m: &QualityMetrics,
        saved: Option<Baseline>,
        now: Instant,
    ) -> Self {
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
        let phase = match fixed_baseline(c).or(saved) {
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
        ChartRuntime {
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
        }
    }

    /// A pushed observation; returns a baseline if it completed Phase I.
    pub(super) fn push(&mut self, value: f64) -> Option<Baseline> {
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
    pub(super) fn close_interval(&mut self, now: Instant) -> Option<Baseline> {
        match &mut self.source {
            Source::Pull(pull) => match pull.sample(self.interval, now)? {
                Sample::Fraction { bad, n } => self.fraction(bad, n),
                Sample::Value(v) => {
                    // With subgroup_size 1 the push itself closes the subgroup; otherwise the
                    // interval's end does.
                    let closed = match self.sub.push(v) {
                        Some(closed) => closed,
                        None => self.sub.flush()?,
                    };
                    self.subgroup(closed)
                }
            },
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

fn rule_list(r: Rules) -> String {
    r.iter().map(Rule::as_str).collect::<Vec<_>>().join(",")
}
