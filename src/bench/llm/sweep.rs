//! `--sweep-concurrency 1,2,4,8`: a closed-loop step per number of users, each judged like a
//! rate sweep's step ([`crate::bench::sweep::passed`]); and the answer of any LLM sweep, the
//! passing step with the highest goodput.

use serde::{Deserialize, Serialize};

use crate::bench::config::{BenchConfig, Scenario};
use crate::bench::run::run_bench;
use crate::bench::sweep::{has_slo, passed, SweepResult, SweepStep};
use crate::bench::BenchError;

/// The step a sweep answers with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestGoodput {
    pub step: usize,
    pub goodput_rps: f64,
    /// Open-loop steps: the target rate.
    pub qps: Option<f64>,
    /// Closed-loop steps: the users.
    pub concurrency: Option<usize>,
    pub output_tokens_per_s: f64,
}

/// The passing step with the highest goodput, if a step passed and had LLM figures.
pub fn best_goodput(steps: &[SweepStep]) -> Option<BestGoodput> {
    steps
        .iter()
        .filter(|s| s.passed)
        .filter_map(|s| s.summary.llm.as_ref().map(|l| (s, l)))
        .max_by(|a, b| a.1.goodput_rps.total_cmp(&b.1.goodput_rps))
        .map(|(s, l)| BestGoodput {
            step: s.index,
            goodput_rps: l.goodput_rps,
            qps: s.concurrency.is_none().then_some(s.qps),
            concurrency: s.concurrency,
            output_tokens_per_s: l.output_tokens_per_s,
        })
}

/// Parse `--sweep-concurrency`: positive integers, comma-separated.
pub fn parse_levels(s: &str) -> Result<Vec<usize>, BenchError> {
    let levels: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().ok().filter(|n| *n > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            BenchError::Setting(format!(
                "--sweep-concurrency {s:?}: use positive integers, e.g. 1,2,4,8"
            ))
        })?;
    Ok(levels)
}

/// Run one closed-loop step per level, in order.
pub async fn run_concurrency_sweep(
    base: &BenchConfig,
    levels: &[usize],
) -> Result<SweepResult, BenchError> {
    if !has_slo(base) {
        return Err(BenchError::Setting(
            "--sweep-concurrency needs an SLO to judge steps by (--slo-ttft, --slo-tpot, \
             --slo-e2e, --slo-ttft-p99, --slo-tpot-p99 or --slo-p99)"
                .into(),
        ));
    }
    let mut steps = Vec::new();
    for (index, &n) in levels.iter().enumerate() {
        let mut cfg = base.clone();
        cfg.scenario = Scenario::Offline;
        cfg.concurrency_limit = Some(n);
        // New prompts for each step (a prefix cache would serve repeats faster).
        cfg.first_item = steps
            .last()
            .map_or(cfg.first_item, |s: &SweepStep| s.summary.next_item);
        if index > 0 {
            cfg.warmup = std::time::Duration::ZERO;
        }
        let summary = run_bench(&cfg).await?;
        let ok = passed(&cfg, &summary);
        if cfg.progress {
            eprintln!(
                "sweep step {index} ({n} users): goodput {:.3} req/s, {:.1} output tokens/s -> {}",
                summary.llm.as_ref().map_or(0.0, |l| l.goodput_rps),
                summary.llm.as_ref().map_or(0.0, |l| l.output_tokens_per_s),
                if ok { "pass" } else { "fail" }
            );
        }
        steps.push(SweepStep {
            index,
            phase: "concurrency".into(),
            qps: summary.achieved_qps,
            concurrency: Some(n),
            passed: ok,
            summary,
        });
    }
    let best = best_goodput(&steps);
    let note = match &best {
        Some(b) => format!(
            "highest goodput within the SLO at {} users",
            b.concurrency.unwrap_or(0)
        ),
        None => "no step met the SLO".into(),
    };
    Ok(SweepResult {
        slo_p99_secs: base.slo_p99,
        over: "concurrency".into(),
        capacity_qps: None,
        failing_qps: None,
        capacity_confirmed: false,
        capacity_joules_per_inference: None,
        best_goodput: best,
        steps,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(parse_levels("1, 2,4,8").unwrap(), vec![1, 2, 4, 8]);
        assert!(parse_levels("1,0").is_err());
        assert!(parse_levels("a").is_err());
        assert!(parse_levels("").is_err());
    }
}
