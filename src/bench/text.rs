//! Plain-text accounts of one run, a sweep and a capacity report, for the terminal.

use std::fmt::Write;

use super::fmt_secs;
use super::stats::LatencyStats;
use super::summary::RunSummary;
use super::sweep::{SweepResult, SweepStep};

/// A plain-text summary of one run, for the terminal.
pub fn run_text(s: &RunSummary) -> String {
    let f = fmt_secs;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "inferwatch bench: {} against {}",
        s.scenario.as_str(),
        s.target
    );
    if let Some(q) = s.target_qps {
        let _ = writeln!(o, "  target qps        {q:.2}");
    }
    if let Some(q) = s.scheduled_qps {
        let _ = writeln!(o, "  scheduled qps     {q:.2}");
    }
    let _ = writeln!(o, "  achieved qps      {:.2}", s.achieved_qps);
    let _ = writeln!(
        o,
        "  queries           {} issued, {} ok, {} errors ({:.3}%) in {:.2}s",
        s.issued,
        s.completed_ok,
        s.errors,
        s.error_ratio * 100.0,
        s.duration_secs
    );
    for (k, v) in &s.error_kinds {
        let _ = writeln!(o, "    {k:<16}{v}");
    }
    let mut stats = |name: &str, l: &Option<LatencyStats>| {
        if let Some(l) = l {
            let _ = writeln!(
                o,
                "  {name:<18}p50 {}  p90 {}  p95 {}  p99 {}  p99.9 {}  mean {}  max {}",
                f(l.p50),
                f(l.p90),
                f(l.p95),
                f(l.p99),
                f(l.p999),
                f(l.mean),
                f(l.max)
            );
        }
    };
    stats("latency", &s.latency);
    stats("ttft", &s.ttft);
    stats("tpot", &s.tpot);
    for e in &s.early_stopping {
        let _ = match e.estimate_secs {
            Some(v) => writeln!(
                o,
                "  early stopping p{}: {} at {:.0}% confidence ({} queries, at least {}; {} highest discarded)",
                e.percentile * 100.0,
                f(v),
                e.confidence * 100.0,
                e.queries,
                e.min_queries,
                e.discarded
            ),
            None => writeln!(
                o,
                "  early stopping p{}: not enough queries ({} of at least {}; {} more needed)",
                e.percentile * 100.0,
                e.queries,
                e.min_queries,
                e.more_queries_needed
            ),
        };
    }
    if let Some(es) = &s.slo_early_stopping {
        let _ = writeln!(
            o,
            "  SLO early stopping: {} of {} queries over {}; needs {} in total -> {}",
            es.over_bound,
            es.queries,
            f(es.bound_secs),
            if es.required_queries == u64::MAX {
                "never".to_string()
            } else {
                es.required_queries.to_string()
            },
            if es.satisfied {
                "satisfied".to_string()
            } else {
                format!("{} more needed", es.more_queries_needed)
            }
        );
    }
    for c in &s.slo_checks {
        let _ = writeln!(
            o,
            "  SLO {:<8} p99 {} vs {}: {}",
            c.name,
            c.p99_secs.map_or("n/a".into(), f),
            f(c.bound_secs),
            if c.met { "met" } else { "MISSED" }
        );
    }
    if let Some(e) = &s.energy {
        let _ = writeln!(o, "  energy            {}", e.describe());
    }
    let _ = writeln!(o, "Result is: {}", s.verdict());
    for r in &s.reasons {
        let _ = writeln!(o, "  - {r}");
    }
    o
}

/// A plain-text account of a sweep, for the terminal.
pub fn sweep_text(r: &SweepResult) -> String {
    let f = fmt_secs;
    let mut o = String::new();
    let _ = writeln!(o, "inferwatch bench --sweep: p99 SLO {}", f(r.slo_p99_secs));
    let _ = writeln!(
        o,
        "  {:>4} {:<8} {:>10} {:>10} {:>10} {:>10} {:>8} {:>12}  result",
        "step", "phase", "qps", "achieved", "p50", "p99", "errors", "J/inference"
    );
    for s in &r.steps {
        let l = s.summary.latency.as_ref();
        let _ = writeln!(
            o,
            "  {:>4} {:<8} {:>10.2} {:>10.2} {:>10} {:>10} {:>8} {:>12}  {}",
            s.index,
            s.phase,
            s.qps,
            s.summary.achieved_qps,
            l.map_or("n/a".into(), |l| f(l.p50)),
            l.map_or("n/a".into(), |l| f(l.p99)),
            s.summary.errors,
            s.summary
                .energy
                .as_ref()
                .and_then(|e| e.joules_per_inference)
                .map_or("-".into(), |j| format!("{j:.4}")),
            if s.passed { "pass" } else { "fail" }
        );
    }
    match r.capacity_qps {
        Some(c) => {
            let _ = writeln!(
                o,
                "Capacity: {c:.2} qps within p99 {} ({}){}",
                f(r.slo_p99_secs),
                if r.capacity_confirmed {
                    "confirmed by early stopping at 99% confidence"
                } else {
                    "point estimate; early stopping could not confirm it at 99% confidence"
                },
                r.failing_qps
                    .map_or(String::new(), |h| format!("; fails at {h:.2} qps"))
            );
        }
        None => {
            let _ = writeln!(o, "Capacity: no tested rate met the SLO");
        }
    }
    if !r.note.is_empty() {
        let _ = writeln!(o, "  note: {}", r.note);
    }
    o
}

/// The detailed text of one step (for `--verbose`-style output in the Markdown report).
pub fn step_text(s: &SweepStep) -> String {
    run_text(&s.summary)
}
