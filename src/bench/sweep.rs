//! `--sweep`: the highest server-scenario QPS whose p99 meets the SLO.
//!
//! Bracketing first (double the rate while steps pass, halve it while they fail), then
//! bisection between the highest passing and lowest failing rate until they are within
//! `--sweep-tolerance` of each other. Every step is a full server-scenario run, at least
//! `--duration` long and with at least as many queries as MLPerf's early stopping needs to claim
//! a p99 at all (662), so no step's percentile rests on a handful of samples. A step passes when
//! its p99 (and TTFT/TPOT p99 where bounded) is within the SLO and its error ratio is within
//! `--max-error-ratio`; whether early stopping can also *prove* it at 99% confidence is recorded
//! per step and for the answer.

use serde::{Deserialize, Serialize};

use super::config::{BenchConfig, Scenario};
use super::early_stop;
use super::run::run_bench;
use super::summary::RunSummary;
use super::BenchError;

/// How the sweep searches; the per-step run settings are in `base`.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub base: BenchConfig,
    pub start_qps: f64,
    pub min_qps: f64,
    pub max_qps: f64,
    /// Stop bisecting when `failing / passing - 1` is at most this.
    pub tolerance: f64,
    pub max_steps: usize,
}

/// One step of the search.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepStep {
    pub index: usize,
    /// `bracket`, `bisect`, or `concurrency` (a step of `--sweep-concurrency`).
    pub phase: String,
    /// Target QPS (open loop); a closed-loop step's achieved rate.
    pub qps: f64,
    /// Closed-loop steps: the number of users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    pub passed: bool,
    pub summary: RunSummary,
}

/// The sweep's answer and every step behind it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepResult {
    /// `--slo-p99`; `None` when the steps are judged by token SLOs only.
    pub slo_p99_secs: Option<f64>,
    /// `rate` (open-loop QPS) or `concurrency` (closed-loop users).
    #[serde(default = "rate")]
    pub over: String,
    /// OpenAI targets: the passing step with the highest goodput (the sweep's answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_goodput: Option<crate::bench::llm::sweep::BestGoodput>,
    pub steps: Vec<SweepStep>,
    /// The highest target QPS that passed; `None` if none did.
    pub capacity_qps: Option<f64>,
    /// The lowest target QPS that failed above the capacity; `None` if none did.
    pub failing_qps: Option<f64>,
    /// Early stopping at the capacity step proves its p99 within the SLO at 99% confidence.
    pub capacity_confirmed: bool,
    /// J/inference at the capacity step, when an energy source was up.
    pub capacity_joules_per_inference: Option<f64>,
    pub note: String,
}

fn rate() -> String {
    "rate".into()
}

impl SweepConfig {
    pub fn validate(&self) -> Result<(), BenchError> {
        if !has_slo(&self.base) {
            return Err(BenchError::Setting(
                "--sweep needs --slo-p99 (or, for --protocol openai, a token SLO: --slo-ttft, \
                 --slo-tpot, --slo-e2e, --slo-ttft-p99, --slo-tpot-p99)"
                    .into(),
            ));
        }
        if self.base.scenario != Scenario::Server {
            return Err(BenchError::Setting(
                "--sweep runs the server scenario".into(),
            ));
        }
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if !(ok(self.start_qps) && ok(self.min_qps) && ok(self.max_qps))
            || self.min_qps > self.start_qps
            || self.start_qps > self.max_qps
        {
            return Err(BenchError::Setting(
                "need 0 < --sweep-min-qps <= start --qps <= --sweep-max-qps".into(),
            ));
        }
        if !(self.tolerance > 0.0 && self.tolerance < 1.0) || self.max_steps == 0 {
            return Err(BenchError::Setting(
                "--sweep-tolerance must be within (0, 1) and --sweep-max-steps at least 1".into(),
            ));
        }
        self.base.validate()
    }
}

/// Whether a sweep has something to judge steps by.
pub fn has_slo(cfg: &BenchConfig) -> bool {
    cfg.slo_p99.is_some()
        || (cfg.protocol == crate::routes::config::Protocol::Openai
            && (cfg.slo_ttft_p99.is_some() || cfg.slo_tpot_p99.is_some() || cfg.slo.is_set()))
}

/// A step passes when it ran to its end, its error ratio and p99 bounds are within limits,
/// and (per-request SLO) at least `--slo-attainment` of its requests met every bound.
pub fn passed(cfg: &BenchConfig, s: &RunSummary) -> bool {
    s.stopped_early.is_none()
        && s.latency.is_some()
        && s.error_ratio <= cfg.max_error_ratio
        && s.slo_checks.iter().all(|c| c.met)
        && (!cfg.slo.is_set()
            || s.llm
                .as_ref()
                .is_some_and(|l| l.slo_attainment >= cfg.slo_attainment))
}

/// Run the search.
pub async fn run_sweep(sc: &SweepConfig) -> Result<SweepResult, BenchError> {
    sc.validate()?;
    let slo = sc.base.slo_p99;
    // A p99 latency claim needs as many queries as early stopping asks for; token SLOs are
    // judged on what the step ran (its --duration and --min-queries).
    let min_step_queries = if slo.is_some() {
        early_stop::min_queries(0.99, early_stop::CONFIDENCE)
    } else {
        0
    };
    let mut steps: Vec<SweepStep> = Vec::new();
    let mut lo: Option<f64> = None;
    let mut hi: Option<f64> = None;
    let mut note = String::new();

    let step = |qps: f64, phase: &str, steps: &mut Vec<SweepStep>| {
        let mut cfg = sc.base.clone();
        cfg.qps = qps;
        cfg.scenario = Scenario::Server;
        cfg.min_queries = cfg.min_queries.max(min_step_queries);
        cfg.seed = sc.base.seed.wrapping_add(steps.len() as u64);
        // New prompts for each step (a prefix cache would serve repeats faster).
        cfg.first_item = steps.last().map_or(cfg.first_item, |s| s.summary.next_item);
        // A step past saturation ends as soon as its failure is certain.
        cfg.stop_when_certain = true;
        // The warmup only matters before the first step; later steps follow a warm server.
        if !steps.is_empty() {
            cfg.warmup = std::time::Duration::ZERO;
        }
        let index = steps.len();
        let phase = phase.to_string();
        async move {
            let summary = run_bench(&cfg).await?;
            let ok = passed(&cfg, &summary);
            if cfg.progress {
                eprintln!(
                    "sweep step {index} ({phase}) {qps:.2} qps: p99 {}, {} errors, achieved {:.2} qps -> {}{}",
                    summary.latency.as_ref().map_or("n/a".into(), |l| super::fmt_secs(l.p99)),
                    summary.errors,
                    summary.achieved_qps,
                    if ok { "pass" } else { "fail" },
                    summary.stopped_early.as_ref().map_or(String::new(), |w| format!(" (stopped early: {w})"))
                );
            }
            Ok::<_, BenchError>(SweepStep {
                index,
                phase,
                qps,
                concurrency: None,
                passed: ok,
                summary,
            })
        }
    };

    let mut q = sc.start_qps;
    while steps.len() < sc.max_steps {
        let s = step(q, "bracket", &mut steps).await?;
        let ok = s.passed;
        steps.push(s);
        if ok {
            lo = Some(q);
            if hi.is_some() {
                break;
            }
            if q * 2.0 > sc.max_qps {
                note = format!("passed at --sweep-max-qps bound {q:.2}; capacity may be higher");
                break;
            }
            q *= 2.0;
        } else {
            hi = Some(q);
            if lo.is_some() {
                break;
            }
            if q / 2.0 < sc.min_qps {
                note = format!("failed down to --sweep-min-qps bound {q:.2}");
                break;
            }
            q /= 2.0;
        }
    }
    while let (Some(l), Some(h)) = (lo, hi) {
        if h / l - 1.0 <= sc.tolerance || steps.len() >= sc.max_steps {
            break;
        }
        let m = (l + h) / 2.0;
        let s = step(m, "bisect", &mut steps).await?;
        if s.passed {
            lo = Some(m);
        } else {
            hi = Some(m);
        }
        steps.push(s);
    }
    if steps.len() >= sc.max_steps && note.is_empty() {
        note = format!("stopped at --sweep-max-steps {}", sc.max_steps);
    }
    let cap_step = lo.and_then(|l| steps.iter().find(|s| s.passed && s.qps == l));
    Ok(SweepResult {
        slo_p99_secs: slo,
        over: rate(),
        best_goodput: crate::bench::llm::sweep::best_goodput(&steps),
        capacity_qps: lo,
        failing_qps: hi.filter(|h| lo.is_none_or(|l| *h > l)),
        capacity_confirmed: cap_step
            .and_then(|s| s.summary.slo_early_stopping.as_ref())
            .is_some_and(|e| e.satisfied),
        capacity_joules_per_inference: cap_step
            .and_then(|s| s.summary.energy.as_ref())
            .and_then(|e| e.joules_per_inference),
        steps,
        note,
    })
}
