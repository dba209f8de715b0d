//! SVG charts of the LLM figures for `report.html`: a run's TTFT/ITL/TPOT percentiles; a
//! sweep's TTFT, ITL, goodput and output tokens/s against rate or concurrency, and the engine's
//! saturation per step.

use super::summary::{Dist, LlmSummary};
use crate::bench::svg::{Chart, Series, PALETTE};
use crate::bench::sweep::{SweepResult, SweepStep};

/// Percentile ladders of TTFT, ITL and TPOT for one run.
pub fn run(l: &LlmSummary) -> String {
    let ladder = |d: &Option<Dist>| {
        d.as_ref()
            .map(|d| vec![(50.0, d.p50), (90.0, d.p90), (99.0, d.p99)])
            .unwrap_or_default()
    };
    Chart {
        title: "Token latencies by percentile".into(),
        x_label: "percentile".into(),
        y_label: "seconds (ms)".into(),
        series: vec![
            Series {
                name: "TTFT".into(),
                color: PALETTE[0],
                points: ladder(&l.ttft_s),
            },
            Series {
                name: "ITL".into(),
                color: PALETTE[1],
                points: ladder(&l.itl_s),
            },
            Series {
                name: "TPOT".into(),
                color: PALETTE[2],
                points: ladder(&l.tpot_s),
            },
        ],
        h_rules: vec![],
        v_rules: vec![],
        y_scale: 1000.0,
    }
    .render()
}

/// A step's x: its users in a concurrency sweep, its target rate otherwise.
fn x(s: &SweepStep) -> f64 {
    s.concurrency.map_or(s.qps, |c| c as f64)
}

/// TTFT, ITL, goodput, output tokens/s and saturation against the sweep's load.
pub fn sweep(r: &SweepResult) -> String {
    let mut steps: Vec<&SweepStep> = r.steps.iter().filter(|s| s.summary.llm.is_some()).collect();
    if steps.is_empty() {
        return String::new();
    }
    steps.sort_by(|a, b| x(a).total_cmp(&x(b)));
    let x_label = if r.over == "concurrency" {
        "concurrent users"
    } else {
        "target qps"
    };
    let series = |name: &str, color: &'static str, f: &dyn Fn(&LlmSummary) -> Option<f64>| Series {
        name: name.into(),
        color,
        points: steps
            .iter()
            .filter_map(|s| f(s.summary.llm.as_ref()?).map(|v| (x(s), v)))
            .collect(),
    };
    let chart = |title: &str, y: &str, scale: f64, s: Vec<Series>| {
        Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y.into(),
            series: s,
            h_rules: vec![],
            v_rules: vec![],
            y_scale: scale,
        }
        .render()
    };
    let mut o = String::new();
    o.push_str(&chart(
        "TTFT vs load",
        "TTFT (ms)",
        1000.0,
        vec![
            series("p50", PALETTE[0], &|l| l.ttft_s.map(|d| d.p50)),
            series("p99", PALETTE[1], &|l| l.ttft_s.map(|d| d.p99)),
        ],
    ));
    o.push_str(&chart(
        "Inter-token latency vs load",
        "ITL (ms)",
        1000.0,
        vec![
            series("p50", PALETTE[0], &|l| l.itl_s.map(|d| d.p50)),
            series("p99", PALETTE[1], &|l| l.itl_s.map(|d| d.p99)),
        ],
    ));
    o.push_str(&chart(
        "Goodput vs load",
        "requests/s",
        1.0,
        vec![
            series("goodput", PALETTE[2], &|l| Some(l.goodput_rps)),
            series("throughput", "#999", &|l| Some(l.requests_per_s)),
        ],
    ));
    o.push_str(&chart(
        "Output tokens/s vs load",
        "tokens/s",
        1.0,
        vec![series("output tokens/s", PALETTE[0], &|l| {
            Some(l.output_tokens_per_s)
        })],
    ));
    if steps.iter().any(|s| {
        s.summary
            .llm
            .as_ref()
            .is_some_and(|l| l.saturation.is_some())
    }) {
        o.push_str(&chart(
            "Engine saturation vs load",
            "waiting requests / KV-cache use",
            1.0,
            vec![
                series("waiting (max)", PALETTE[3], &|l| {
                    l.saturation.as_ref()?.waiting_max
                }),
                series("KV cache (max)", PALETTE[4], &|l| {
                    l.saturation.as_ref()?.kv_cache_usage_max
                }),
            ],
        ));
    }
    o
}
