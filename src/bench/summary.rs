//! One run's summary: the query records turned into latency statistics, early-stopping
//! estimates, SLO checks, the VALID/INVALID verdict with its reasons, and a per-second timeline.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::client::ErrorKind;
use super::config::{BenchConfig, Scenario};
use super::early_stop::{Estimate, SloEarlyStopping};
use super::llm::record::RequestRecord;
use super::llm::saturation::Saturation;
use super::llm::summary::LlmSummary;
use super::scrape::EnergyReading;
use super::stats::LatencyStats;

/// One query's record, times in seconds from the start of the run.
#[derive(Debug, Clone)]
pub(super) struct Rec {
    pub(super) sched: f64,
    pub(super) done: f64,
    pub(super) latency: f64,
    pub(super) error: Option<ErrorKind>,
    pub(super) ttft: Option<f64>,
    pub(super) tpot: Option<f64>,
    pub(super) tokens: u32,
}

/// Queries scheduled within one second of the run, for the latency-over-time chart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TimelinePoint {
    pub second: u64,
    pub queries: u64,
    pub errors: u64,
    pub p50_secs: Option<f64>,
    pub p99_secs: Option<f64>,
    pub max_secs: Option<f64>,
}

/// One bound checked against a measured p99.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SloCheck {
    /// `latency`, `ttft` or `tpot`.
    pub name: String,
    pub bound_secs: f64,
    pub p99_secs: Option<f64>,
    pub met: bool,
}

/// Everything one run measured, and its verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub scenario: Scenario,
    pub target: String,
    pub target_qps: Option<f64>,
    pub concurrency_limit: usize,
    pub seed: u64,
    pub warmup_secs: f64,
    /// From the first scheduled query to the last completion.
    pub duration_secs: f64,
    pub issued: u64,
    pub completed_ok: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub error_ratio: f64,
    /// Issue rate as scheduled: `(issued - 1) / time of the last scheduled query`.
    pub scheduled_qps: Option<f64>,
    /// Successful completions per second over the whole run.
    pub achieved_qps: f64,
    /// Latency of successful queries (server: from the scheduled time).
    pub latency: Option<LatencyStats>,
    pub ttft: Option<LatencyStats>,
    pub tpot: Option<LatencyStats>,
    pub output_tokens: u64,
    /// MLPerf early-stopping estimates for p90 and p99.
    pub early_stopping: Vec<Estimate>,
    /// Early stopping against the p99 SLO (failed queries count as over it).
    pub slo_early_stopping: Option<SloEarlyStopping>,
    pub slo_checks: Vec<SloCheck>,
    pub valid: bool,
    /// Why the run is INVALID; empty when valid.
    pub reasons: Vec<String>,
    pub timeline: Vec<TimelinePoint>,
    pub energy: Option<EnergyReading>,
    /// Why the run ended before its schedule (its verdict was already certain); `None` when it
    /// ran to the end.
    #[serde(default)]
    pub stopped_early: Option<String>,
    /// OpenAI targets: token throughput, TTFT/ITL/TPOT and goodput (see [`LlmSummary`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSummary>,
    /// OpenAI targets: every request's record (`requests.jsonl` beside the report files).
    #[serde(skip)]
    pub records: Vec<RequestRecord>,
    /// The request the next run should start with to send new prompts (`first_item`).
    #[serde(skip)]
    pub next_item: u64,
}

impl RunSummary {
    /// Add the LLM figures of `records` (sorted by issue order) and the engine's saturation.
    pub(super) fn llm_figures(
        &mut self,
        cfg: &BenchConfig,
        mut records: Vec<RequestRecord>,
        saturation: Option<Saturation>,
    ) {
        records.sort_by_key(|r| r.index);
        let mut l = super::llm::summary::summarize(
            &records,
            self.duration_secs,
            &cfg.slo,
            cfg.workload.as_ref().map(|w| w.tokenizer.clone()),
        );
        l.saturation = saturation;
        match cfg.scenario {
            Scenario::Server => l.arrival = Some(cfg.arrival),
            Scenario::Offline => l.users = Some(cfg.concurrency()),
            Scenario::SingleStream => l.users = Some(1),
        }
        l.workload = cfg.workload.as_ref().map(|w| w.source.clone());
        if cfg.slo.is_set() && l.slo_attainment < cfg.slo_attainment {
            self.valid = false;
            self.reasons.push(format!(
                "{:.1}% of requests met the per-request SLO, below --slo-attainment {:.1}%",
                l.slo_attainment * 100.0,
                cfg.slo_attainment * 100.0
            ));
        }
        self.llm = Some(l);
        self.records = records;
    }

    /// The figure of merit's percentile value for the scenario (p90 single-stream, else p99).
    pub fn headline_latency(&self) -> Option<f64> {
        self.latency.as_ref().map(|l| match self.scenario {
            Scenario::SingleStream => l.p90,
            _ => l.p99,
        })
    }

    pub fn verdict(&self) -> &'static str {
        if self.valid {
            "VALID"
        } else {
            "INVALID"
        }
    }
}

pub(super) fn summarize(cfg: &BenchConfig, mut recs: Vec<Rec>) -> RunSummary {
    recs.sort_by(|a, b| a.sched.total_cmp(&b.sched));
    let issued = recs.len() as u64;
    let mut error_kinds = BTreeMap::new();
    let mut ok_lat = Vec::new();
    let mut ttft = Vec::new();
    let mut tpot = Vec::new();
    let mut tokens = 0u64;
    for r in &recs {
        match r.error {
            Some(e) => *error_kinds.entry(e.as_str().to_string()).or_insert(0) += 1,
            None => {
                ok_lat.push(r.latency);
                ttft.extend(r.ttft);
                tpot.extend(r.tpot);
                tokens += u64::from(r.tokens);
            }
        }
    }
    let errors = issued - ok_lat.len() as u64;
    let last_done = recs.iter().map(|r| r.done).fold(0.0, f64::max);
    let last_sched = recs.last().map_or(0.0, |r| r.sched);
    let latency = LatencyStats::from_samples(&mut ok_lat);
    let early_stopping = [0.90, 0.99]
        .iter()
        .map(|&p| Estimate::compute(&ok_lat, p))
        .collect::<Vec<_>>();
    let ttft_stats = LatencyStats::from_samples(&mut ttft);
    let tpot_stats = LatencyStats::from_samples(&mut tpot);
    let error_ratio = if issued == 0 {
        0.0
    } else {
        errors as f64 / issued as f64
    };

    let mut reasons = Vec::new();
    if issued < cfg.min_queries {
        reasons.push(format!(
            "min queries not met: {issued} of {}",
            cfg.min_queries
        ));
    }
    if issued == 0 || ok_lat.is_empty() {
        reasons.push("no successful query".to_string());
    }
    if error_ratio > cfg.max_error_ratio {
        reasons.push(format!(
            "error ratio {:.4} above --max-error-ratio {}",
            error_ratio, cfg.max_error_ratio
        ));
    }
    let mut slo_checks = Vec::new();
    let mut check = |name: &str, bound: Option<f64>, stats: &Option<LatencyStats>| {
        if let Some(bound) = bound {
            let p99 = stats.as_ref().map(|s| s.p99);
            let met = p99.is_some_and(|v| v <= bound);
            if !met {
                reasons.push(match p99 {
                    Some(v) => format!(
                        "{name} p99 {} above the SLO {}",
                        super::fmt_secs(v),
                        super::fmt_secs(bound)
                    ),
                    None => format!("{name} p99 not measured (SLO {})", super::fmt_secs(bound)),
                });
            }
            slo_checks.push(SloCheck {
                name: name.to_string(),
                bound_secs: bound,
                p99_secs: p99,
                met,
            });
        }
    };
    check("latency", cfg.slo_p99, &latency);
    check("ttft", cfg.slo_ttft_p99, &ttft_stats);
    check("tpot", cfg.slo_tpot_p99, &tpot_stats);
    let slo_early_stopping = cfg
        .slo_p99
        .map(|bound| SloEarlyStopping::compute(&ok_lat, errors, 0.99, bound));
    match &slo_early_stopping {
        Some(es) if !es.satisfied => reasons.push(format!(
            "early stopping: {} of {} queries over the SLO; {} more needed to claim p99 at 99% confidence",
            es.over_bound, es.queries, es.more_queries_needed
        )),
        None if cfg.scenario != Scenario::Offline => {
            // Without an SLO the claim is the percentile estimate itself.
            let p = cfg.scenario.target_percentile();
            if let Some(e) = early_stopping.iter().find(|e| e.percentile == p) {
                if !e.satisfied {
                    reasons.push(format!(
                        "early stopping: {} queries, p{} needs at least {} ({} more)",
                        e.queries,
                        p * 100.0,
                        e.min_queries,
                        e.more_queries_needed
                    ));
                }
            }
        }
        _ => {}
    }

    RunSummary {
        scenario: cfg.scenario,
        target: cfg.target.as_str(),
        target_qps: (cfg.scenario == Scenario::Server).then_some(cfg.qps),
        concurrency_limit: cfg.concurrency(),
        seed: cfg.seed,
        warmup_secs: cfg.warmup.as_secs_f64(),
        duration_secs: last_done,
        issued,
        completed_ok: ok_lat.len() as u64,
        errors,
        error_kinds,
        error_ratio,
        scheduled_qps: (issued > 1 && last_sched > 0.0).then(|| (issued - 1) as f64 / last_sched),
        achieved_qps: if last_done > 0.0 {
            ok_lat.len() as f64 / last_done
        } else {
            0.0
        },
        latency,
        ttft: ttft_stats,
        tpot: tpot_stats,
        output_tokens: tokens,
        early_stopping,
        slo_early_stopping,
        slo_checks,
        valid: reasons.is_empty(),
        reasons,
        timeline: timeline(&recs),
        energy: None,
        stopped_early: None,
        llm: None,
        records: Vec::new(),
        next_item: 0,
    }
}

fn timeline(recs: &[Rec]) -> Vec<TimelinePoint> {
    let mut bins: BTreeMap<u64, (u64, u64, Vec<f64>)> = BTreeMap::new();
    for r in recs {
        let b = bins.entry(r.sched.max(0.0) as u64).or_default();
        b.0 += 1;
        match r.error {
            Some(_) => b.1 += 1,
            None => b.2.push(r.latency),
        }
    }
    bins.into_iter()
        .map(|(second, (queries, errors, mut lat))| {
            let s = LatencyStats::from_samples(&mut lat);
            TimelinePoint {
                second,
                queries,
                errors,
                p50_secs: s.as_ref().map(|s| s.p50),
                p99_secs: s.as_ref().map(|s| s.p99),
                max_secs: s.as_ref().map(|s| s.max),
            }
        })
        .collect()
}
