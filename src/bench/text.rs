//! Plain-text accounts of one run, a sweep and a capacity report, for the terminal.

use std::fmt::Write;

use super::capacity::CapacityReport;
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
    if let Some(l) = &s.llm {
        o.push_str(&super::llm::text::run_text(l));
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
    let _ = writeln!(
        o,
        "inferwatch bench --sweep over {}: p99 SLO {}",
        r.over,
        r.slo_p99_secs.map_or("-".into(), f)
    );
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
    o.push_str(&super::llm::text::sweep_text(r));
    match r.capacity_qps {
        _ if r.over == "concurrency" => {}
        Some(c) => {
            let _ = writeln!(
                o,
                "Capacity: {c:.2} qps within the SLO{} ({}){}",
                r.slo_p99_secs
                    .map_or(String::new(), |v| format!(" (p99 {})", f(v))),
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

/// A plain-text account of the report, for the terminal.
pub fn capacity_text(r: &CapacityReport) -> String {
    let f = fmt_secs;
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), f);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "inferwatch report: {} over {:.0}s (step {}s, rate window {}s)",
        r.prometheus,
        r.end_unix - r.start_unix,
        r.step_secs,
        r.rate_window_secs
    );
    if r.routes.is_empty() {
        let _ = writeln!(o, "  no inferwatch_requests_total data in the range");
    }
    for rc in &r.routes {
        let _ = writeln!(
            o,
            "route {} model {}: {} replica(s)",
            rc.route, rc.model, rc.replicas_seen
        );
        let _ = writeln!(
            o,
            "  qps per replica: peak {:.2}, typical {:.2}; fleet peak {:.2}; {:.0} requests, {:.3}% errors",
            rc.peak_qps_per_replica,
            rc.typical_qps_per_replica,
            rc.peak_fleet_qps,
            rc.requests,
            rc.error_ratio * 100.0
        );
        let _ = writeln!(
            o,
            "  latency: p50 {}, p99 {}, p99 at peak {}",
            opt(rc.p50_secs),
            opt(rc.p99_secs),
            opt(rc.p99_at_peak_secs)
        );
        if let Some(j) = rc.joules_per_inference {
            let _ = writeln!(o, "  energy: {j:.4} J/inference");
        }
        for b in &rc.bands {
            let _ = writeln!(
                o,
                "  band {:>8.2}..{:<8.2} qps: {:>5} steps, p99 {}{}",
                b.qps_low,
                b.qps_high,
                b.samples,
                opt(b.p99_secs),
                match b.meets_slo {
                    Some(true) => " (within SLO)",
                    Some(false) => " (OVER SLO)",
                    None => "",
                }
            );
        }
        if let Some(c) = rc.capacity_qps_per_replica {
            let _ = writeln!(
                o,
                "  capacity per replica within SLO: {}{c:.2} qps",
                if rc.capacity_is_lower_bound {
                    ">= "
                } else {
                    ""
                }
            );
        }
        if let Some(h) = rc.latency_headroom_ratio {
            let _ = writeln!(o, "  latency headroom at peak: {:.1}%", h * 100.0);
        }
        if let Some(n) = rc.replicas_needed {
            let _ = writeln!(
                o,
                "  replicas needed for {:.2} qps: {n}{}",
                r.target_qps.unwrap_or(0.0),
                if rc.capacity_is_lower_bound {
                    " (at most)"
                } else {
                    ""
                }
            );
        }
    }
    goodput_text(&mut o, r);
    o
}

/// A share as a percentage, `n/a` when unknown (the text and Markdown reports).
pub(crate) fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:.1}%", v * 100.0))
}

/// A figure to two decimals, `-` when unknown.
pub(crate) fn num(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

/// The goodput capacity of routes with an SLO, with each replica's bands and engine gauges.
fn goodput_text(o: &mut String, r: &CapacityReport) {
    for g in &r.goodput {
        let _ = writeln!(
            o,
            "goodput: route {} model {}: {:.0} requests, {} met every bound (target {})",
            g.route,
            g.model,
            g.requests,
            pct(g.goodput_ratio),
            pct(Some(r.goodput_target))
        );
        let results: Vec<String> = g
            .requests_by_result
            .iter()
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect();
        let _ = writeln!(o, "  by result: {}", results.join(", "));
        for rep in &g.replicas {
            let _ = writeln!(
                o,
                "  replica {}: {} steps ({} warm-up/cool-down left out), peak {:.2} req/s",
                rep.replica, rep.steps, rep.steps_excluded, rep.peak_qps
            );
            let _ = writeln!(
                o,
                "    {:>17} {:>5} {:>8} {:>9} {:>8}  {:>7} {:>7} {:>6} {:>8} {:>6}",
                "band req/s",
                "steps",
                "requests",
                "goodput/s",
                "ratio",
                "waiting",
                "running",
                "kv max",
                "preempt/s",
                "queue"
            );
            for b in &rep.bands {
                let e = &b.engine;
                let _ = writeln!(
                    o,
                    "    {:>8.2}..{:<8.2} {:>5} {:>8.0} {:>9.2} {:>8}  {:>7} {:>7} {:>6} {:>8} {:>6}{}",
                    b.qps_low,
                    b.qps_high,
                    b.steps,
                    b.requests,
                    b.goodput_qps,
                    pct(b.goodput_ratio),
                    num(e.waiting_mean),
                    num(e.running_mean),
                    num(e.kv_cache_usage_max),
                    num(e.preemptions_per_sec),
                    pct(e.queue_share),
                    match (b.meets_target, b.sure) {
                        (Some(false), true) => "  BELOW TARGET",
                        (Some(false), false) => "  below target (by chance?)",
                        _ => "",
                    }
                );
            }
            let _ = writeln!(
                o,
                "    capacity: {}; {}",
                rep.capacity_qps.map_or("n/a".into(), |c| format!(
                    "{}{c:.2} req/s",
                    if rep.lower_bound { ">= " } else { "" }
                )),
                rep.confidence
            );
            if let Some(w) = &rep.why {
                let _ = writeln!(
                    o,
                    "    why {:.2}..{:.2} req/s fails: {} ({})",
                    w.qps_low,
                    w.qps_high,
                    w.cause.as_str(),
                    w.detail
                );
            }
        }
        if let Some(c) = g.capacity_qps_per_replica {
            let _ = writeln!(
                o,
                "  goodput capacity per replica: {}{c:.2} req/s ({})",
                if g.capacity_is_lower_bound { ">= " } else { "" },
                g.confidence
            );
        }
        if let Some(w) = &g.why {
            let _ = writeln!(
                o,
                "  why it fails beyond: {} (replica {})",
                w.cause.as_str(),
                g.why_replica
            );
        }
        if let (Some(n), Some(t)) = (g.replicas_needed, r.target_qps) {
            let _ = writeln!(
                o,
                "  replicas needed for {t:.2} req/s at the goodput target: {n}"
            );
        }
    }
}
