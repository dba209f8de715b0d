//! The LLM figures as rows of (figure, value), shared by the terminal text and `report.md`.

use std::fmt::Write;

use super::summary::{Dist, LlmSummary};
use crate::bench::fmt_secs;
use crate::bench::sweep::SweepResult;

fn dist(d: &Option<Dist>, secs: bool) -> String {
    let f = |v: f64| {
        if secs {
            fmt_secs(v)
        } else {
            format!("{v:.1}")
        }
    };
    match d {
        Some(d) => format!(
            "p50 {}  p90 {}  p99 {}  mean {}",
            f(d.p50),
            f(d.p90),
            f(d.p99),
            f(d.mean)
        ),
        None => "n/a".into(),
    }
}

/// Every LLM figure of a run as (name, value).
pub fn rows(l: &LlmSummary) -> Vec<(String, String)> {
    let mut r = vec![
        (
            "requests".into(),
            format!("{} issued, {} ok", l.requests, l.completed_ok),
        ),
        (
            "request throughput".into(),
            format!("{:.3} req/s", l.requests_per_s),
        ),
        (
            "output token throughput".into(),
            format!("{:.1} tokens/s", l.output_tokens_per_s),
        ),
        (
            "total token throughput".into(),
            format!("{:.1} tokens/s", l.total_tokens_per_s),
        ),
        (
            "goodput".into(),
            format!(
                "{:.3} req/s ({:.1}% of requests met the SLO)",
                l.goodput_rps,
                l.slo_attainment * 100.0
            ),
        ),
    ];
    if let Some(s) = &l.slo {
        let b = |v: Option<f64>| v.map_or("-".into(), fmt_secs);
        r.push((
            "SLO per request".into(),
            format!(
                "ttft {}, tpot {}, e2e {}",
                b(s.ttft_s),
                b(s.tpot_s),
                b(s.e2e_s)
            ),
        ));
    }
    let results: Vec<String> = l
        .slo_results
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    r.push(("results".into(), results.join(", ")));
    for (name, d, secs) in [
        ("ttft", &l.ttft_s, true),
        ("time to second token", &l.ttst_s, true),
        ("itl", &l.itl_s, true),
        ("tpot", &l.tpot_s, true),
        ("e2e", &l.e2e_s, true),
        ("tokens/s per user", &l.tokens_per_s_per_user, false),
    ] {
        r.push((name.into(), dist(d, secs)));
    }
    r.push((
        "input tokens".into(),
        format!(
            "mean {:.1}, total {} (from {}{})",
            l.input_tokens.mean,
            l.input_tokens.total,
            l.input_token_source,
            l.requested_input_tokens_mean
                .map_or(String::new(), |m| format!("; asked mean {m:.1}"))
        ),
    ));
    r.push((
        "output tokens".into(),
        format!(
            "mean {:.1}, total {} (from {}{})",
            l.output_tokens.mean,
            l.output_tokens.total,
            l.token_source,
            l.requested_output_tokens_mean
                .map_or(String::new(), |m| format!("; asked mean {m:.1}"))
        ),
    ));
    if let Some(a) = &l.arrival {
        r.push((
            "load".into(),
            format!("open loop, {} arrivals", a.describe()),
        ));
    }
    if let Some(n) = l.users {
        r.push(("load".into(), format!("closed loop, {n} users")));
    }
    if let Some(w) = &l.workload {
        r.push(("workload".into(), w.clone()));
    }
    if let Some(t) = &l.tokenizer {
        r.push(("token counts".into(), t.clone()));
    }
    if let Some(s) = &l.saturation {
        let o = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.2}"));
        r.push((
            "engine saturation".into(),
            format!(
                "waiting mean {} max {}, running mean {} max {}, KV cache mean {} max {} ({} samples, {})",
                o(s.waiting_mean),
                o(s.waiting_max),
                o(s.running_mean),
                o(s.running_max),
                o(s.kv_cache_usage_mean),
                o(s.kv_cache_usage_max),
                s.samples,
                s.source
            ),
        ));
    }
    if let Some(j) = l.joules_per_output_token {
        r.push(("energy".into(), format!("{j:.4} J/output token")));
    }
    r
}

/// The LLM figures for the terminal.
pub fn run_text(l: &LlmSummary) -> String {
    let mut o = String::from("  LLM\n");
    for (k, v) in rows(l) {
        let _ = writeln!(o, "    {k:<24}{v}");
    }
    o
}

/// A sweep's token figures per step, and its answer, for the terminal and `report.md`.
pub fn sweep_text(r: &SweepResult) -> String {
    if r.steps.iter().all(|s| s.summary.llm.is_none()) {
        return String::new();
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "  {:>4} {:>8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}  result",
        "step", "load", "goodput", "out tok/s", "ttft p99", "itl p50", "tpot p99", "waiting", "kv"
    );
    for s in &r.steps {
        let Some(l) = &s.summary.llm else { continue };
        let p = |d: &Option<Dist>, f: fn(&Dist) -> f64| {
            d.as_ref().map_or("n/a".into(), |d| fmt_secs(f(d)))
        };
        let sat = l.saturation.as_ref();
        let o2 = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        let _ = writeln!(
            o,
            "  {:>4} {:>8} {:>9.3} {:>10.1} {:>10} {:>10} {:>10} {:>8} {:>8}  {}",
            s.index,
            s.concurrency
                .map_or(format!("{:.2}/s", s.qps), |c| format!("{c} users")),
            l.goodput_rps,
            l.output_tokens_per_s,
            p(&l.ttft_s, |d| d.p99),
            p(&l.itl_s, |d| d.p50),
            p(&l.tpot_s, |d| d.p99),
            o2(sat.and_then(|s| s.waiting_max)),
            o2(sat.and_then(|s| s.kv_cache_usage_max)),
            if s.passed { "pass" } else { "fail" }
        );
    }
    match &r.best_goodput {
        Some(b) => {
            let _ = writeln!(
                o,
                "Highest goodput within the SLO: {:.3} req/s at {} ({:.1} output tokens/s)",
                b.goodput_rps,
                b.concurrency
                    .map_or(format!("{:.2} qps", b.qps.unwrap_or(0.0)), |c| format!(
                        "{c} users"
                    )),
                b.output_tokens_per_s
            );
        }
        None => {
            let _ = writeln!(o, "Highest goodput within the SLO: no step passed");
        }
    }
    o
}

/// The LLM figures of a run as a Markdown table.
pub fn md_run(l: &LlmSummary) -> String {
    let mut o = String::from("### LLM figures\n\n| figure | value |\n| --- | --- |\n");
    for (k, v) in rows(l) {
        let _ = writeln!(o, "| {k} | {} |", v.replace('|', "\\|"));
    }
    o.push('\n');
    o
}

/// A sweep's token figures per step as a Markdown table (empty without LLM figures).
pub fn md_sweep(r: &SweepResult) -> String {
    let text = sweep_text(r);
    if text.is_empty() {
        return text;
    }
    let mut o = String::from("### Token figures per step\n\n");
    o.push_str("| step | load | goodput (req/s) | SLO met | output tokens/s | TTFT p99 | ITL p50 | TPOT p99 | waiting (max) | KV cache (max) | J/output token | result |\n");
    o.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for s in &r.steps {
        let Some(l) = &s.summary.llm else { continue };
        let p = |d: &Option<Dist>, f: fn(&Dist) -> f64| {
            d.as_ref().map_or("n/a".into(), |d| fmt_secs(f(d)))
        };
        let o2 = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        let sat = l.saturation.as_ref();
        let _ = writeln!(
            o,
            "| {} | {} | {:.3} | {:.1}% | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
            s.index,
            s.concurrency
                .map_or(format!("{:.2} qps", s.qps), |c| format!("{c} users")),
            l.goodput_rps,
            l.slo_attainment * 100.0,
            l.output_tokens_per_s,
            p(&l.ttft_s, |d| d.p99),
            p(&l.itl_s, |d| d.p50),
            p(&l.tpot_s, |d| d.p99),
            o2(sat.and_then(|s| s.waiting_max)),
            o2(sat.and_then(|s| s.kv_cache_usage_max)),
            l.joules_per_output_token
                .map_or("-".into(), |j| format!("{j:.4}")),
            if s.passed { "pass" } else { "fail" }
        );
    }
    if let Some(b) = &r.best_goodput {
        let _ = writeln!(
            o,
            "\n**Highest goodput within the SLO: {:.3} req/s** at {} ({:.1} output tokens/s)",
            b.goodput_rps,
            b.concurrency
                .map_or(format!("{:.2} qps", b.qps.unwrap_or(0.0)), |c| format!(
                    "{c} users"
                )),
            b.output_tokens_per_s
        );
    }
    o.push('\n');
    o
}
