//! `report.html`: a self-contained page (no script, nothing fetched) with inline SVG charts of a
//! run, a sweep or a capacity report, and the Markdown text below them.

use std::fmt::Write;

use super::ReportFile;
use crate::bench::capacity::CapacityReport;
use crate::bench::fmt_secs;
use crate::bench::stats::LatencyStats;
use crate::bench::summary::{RunSummary, TimelinePoint};
use crate::bench::svg::{esc, Chart, Rule, Series, PALETTE};
use crate::bench::sweep::SweepResult;

/// The whole `report.html`: charts, then the Markdown text for reference.
pub fn page(f: &ReportFile) -> String {
    let mut body = String::new();
    let md_tables = super::markdown::document(f);
    match (&f.bench, &f.sweep, &f.capacity) {
        (Some(r), _, _) => html_run(&mut body, r),
        (_, Some(s), _) => html_sweep(&mut body, s),
        (_, _, Some(c)) => {
            html_capacity(&mut body, c);
            html_goodput(&mut body, c);
        }
        _ => {}
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>inferwatch {kind} report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th {{ background: #f3f3f3; }}
td.l, th.l {{ text-align: left; }}
.valid {{ color: #1a7f37; font-weight: bold; }} .invalid {{ color: #c62828; font-weight: bold; }}
svg {{ max-width: 100%; height: auto; border: 1px solid #eee; margin: 0.5em 0; font-family: system-ui, sans-serif; }}
details pre {{ background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 12px; }}
</style></head><body>
<h1>inferwatch {kind} report</h1>
<p>inferwatch {ver}. Command: <code>{cmd}</code></p>
{body}
<details><summary>Full text (as report.md)</summary><pre>{md}</pre></details>
</body></html>
"#,
        kind = esc(&f.kind),
        ver = esc(&f.inferwatch_version),
        cmd = esc(&f.command.join(" ")),
        body = body,
        md = esc(&md_tables)
    )
}

fn slo_rule(v: f64) -> Rule {
    Rule {
        value: v,
        label: format!("SLO {}", fmt_secs(v)),
        color: "#c62828",
    }
}

/// A latency quantile drawn as a line. Each keeps its name and colour on every chart (a run's
/// latency by second, a sweep's latency by offered load, a capacity report's p99 by load band).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    P50,
    P90,
    P99,
    Max,
}

impl Line {
    fn name(self) -> &'static str {
        match self {
            Line::P50 => "p50",
            Line::P90 => "p90",
            Line::P99 => "p99",
            Line::Max => "max",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Line::P50 => PALETTE[0],
            Line::P90 => PALETTE[2],
            Line::P99 => PALETTE[1],
            Line::Max => PALETTE[3],
        }
    }

    /// The quantile in one second of a run's timeline (which keeps no p90).
    fn in_second(self, p: &TimelinePoint) -> Option<f64> {
        match self {
            Line::P50 => p.p50_secs,
            Line::P90 => None,
            Line::P99 => p.p99_secs,
            Line::Max => p.max_secs,
        }
    }

    /// The quantile in a run's or a sweep step's statistics.
    fn of(self, l: &LatencyStats) -> f64 {
        match self {
            Line::P50 => l.p50,
            Line::P90 => l.p90,
            Line::P99 => l.p99,
            Line::Max => l.max,
        }
    }
}

/// The chart series of the latency quantiles `lines` over `rows`: `point` gives a row's x and its
/// value of one quantile, or `None` where the row has none (no point drawn). Every latency line
/// of the reports is built here.
fn latency_series<T>(
    lines: &[Line],
    rows: &[T],
    point: impl Fn(&T, Line) -> Option<(f64, f64)>,
) -> Vec<Series> {
    lines
        .iter()
        .map(|&line| Series {
            name: line.name().into(),
            color: line.color(),
            points: rows.iter().filter_map(|r| point(r, line)).collect(),
        })
        .collect()
}

fn html_run(o: &mut String, r: &RunSummary) {
    let class = if r.valid { "valid" } else { "invalid" };
    let _ = writeln!(
        o,
        r#"<h2>{} run</h2><p>Result: <span class="{class}">{}</span></p>"#,
        esc(r.scenario.as_str()),
        r.verdict()
    );
    // The latency SLO, drawn on both charts.
    let slo_rules: Vec<_> = r
        .slo_checks
        .iter()
        .filter(|c| c.name == "latency")
        .map(|c| slo_rule(c.bound_secs))
        .collect();
    let chart = Chart {
        title: "Latency by scheduled second".into(),
        x_label: "seconds into the run".into(),
        y_label: "latency (ms)".into(),
        series: latency_series(
            &[Line::P50, Line::P99, Line::Max],
            &r.timeline,
            |p, line| line.in_second(p).map(|v| (p.second as f64, v)),
        ),
        h_rules: slo_rules.clone(),
        v_rules: vec![],
        y_scale: 1000.0,
    };
    o.push_str(&chart.render());
    if let Some(l) = &r.latency {
        let ladder = Chart {
            title: "Latency percentiles".into(),
            x_label: "percentile".into(),
            y_label: "latency (ms)".into(),
            series: vec![Series {
                name: "latency".into(),
                color: PALETTE[0],
                points: vec![
                    (50.0, l.p50),
                    (90.0, l.p90),
                    (95.0, l.p95),
                    (99.0, l.p99),
                    (99.9, l.p999),
                    (100.0, l.max),
                ],
            }],
            h_rules: slo_rules,
            v_rules: vec![],
            y_scale: 1000.0,
        };
        o.push_str(&ladder.render());
    }
    if let Some(l) = &r.llm {
        o.push_str(&crate::bench::llm::charts::run(l));
    }
}

fn html_sweep(o: &mut String, s: &SweepResult) {
    let mut steps: Vec<_> = s.steps.iter().collect();
    steps.sort_by(|a, b| a.qps.total_cmp(&b.qps));
    let _ = writeln!(
        o,
        "<h2>Sweep over {} under p99 SLO {}</h2><p>{}</p>",
        esc(&s.over),
        esc(&s.slo_p99_secs.map_or("-".into(), fmt_secs)),
        match s.capacity_qps {
            Some(c) => format!(
                r#"Capacity: <span class="valid">{c:.2} qps</span>{}"#,
                if s.capacity_confirmed {
                    " (confirmed by early stopping at 99% confidence)"
                } else {
                    " (point estimate)"
                }
            ),
            None => r#"<span class="invalid">No tested rate met the SLO.</span>"#.into(),
        }
    );
    let cap_rule: Vec<Rule> = s
        .capacity_qps
        .map(|c| Rule {
            value: c,
            label: format!("capacity {c:.1}"),
            color: "#1a7f37",
        })
        .into_iter()
        .collect();
    o.push_str(
        &Chart {
            title: "Latency percentiles vs offered load".into(),
            x_label: "target qps".into(),
            y_label: "latency (ms)".into(),
            series: latency_series(&[Line::P50, Line::P90, Line::P99], &steps, |st, line| {
                st.summary.latency.as_ref().map(|l| (st.qps, line.of(l)))
            }),
            h_rules: s.slo_p99_secs.map(slo_rule).into_iter().collect(),
            v_rules: cap_rule.clone(),
            y_scale: 1000.0,
        }
        .render(),
    );
    o.push_str(
        &Chart {
            title: "Throughput".into(),
            x_label: "target qps".into(),
            y_label: "qps".into(),
            series: vec![
                Series {
                    name: "achieved".into(),
                    color: PALETTE[0],
                    points: steps
                        .iter()
                        .map(|st| (st.qps, st.summary.achieved_qps))
                        .collect(),
                },
                Series {
                    name: "offered".into(),
                    color: "#999",
                    points: steps.iter().map(|st| (st.qps, st.qps)).collect(),
                },
            ],
            h_rules: vec![],
            v_rules: cap_rule.clone(),
            y_scale: 1.0,
        }
        .render(),
    );
    let energy: Vec<(f64, f64)> = steps
        .iter()
        .filter_map(|st| {
            st.summary
                .energy
                .as_ref()
                .and_then(|e| e.joules_per_inference)
                .map(|j| (st.qps, j))
        })
        .collect();
    o.push_str(
        &Chart {
            title: "Energy per inference vs offered load".into(),
            x_label: "target qps".into(),
            y_label: "J/inference".into(),
            series: vec![Series {
                name: "J/inference".into(),
                color: PALETTE[2],
                points: energy,
            }],
            h_rules: vec![],
            v_rules: cap_rule,
            y_scale: 1.0,
        }
        .render(),
    );
    o.push_str(&crate::bench::llm::charts::sweep(s));
}

fn html_capacity(o: &mut String, c: &CapacityReport) {
    let _ = writeln!(
        o,
        "<h2>Capacity from live data</h2><p>Source {}, {:.0}s range.</p>",
        esc(&c.prometheus),
        c.end_unix - c.start_unix
    );
    for r in &c.routes {
        let _ = writeln!(
            o,
            "<h3>route {}, model {}</h3><p>{}</p>",
            esc(&r.route),
            esc(&r.model),
            match (r.capacity_qps_per_replica, r.replicas_needed, c.target_qps) {
                (Some(cap), Some(n), Some(t)) => format!(
                    "Capacity per replica within SLO: {}{cap:.2} qps; {n} replica(s) for {t:.2} qps.",
                    if r.capacity_is_lower_bound { "&ge; " } else { "" }
                ),
                (Some(cap), _, _) => format!(
                    "Capacity per replica within SLO: {}{cap:.2} qps.",
                    if r.capacity_is_lower_bound { "&ge; " } else { "" }
                ),
                _ => String::new(),
            }
        );
        let t0 = c.start_unix;
        o.push_str(
            &Chart {
                title: "QPS per replica over the range".into(),
                x_label: "seconds from the range start".into(),
                y_label: "qps".into(),
                series: vec![
                    Series {
                        name: "max replica".into(),
                        color: PALETTE[1],
                        points: r.qps_timeline.iter().map(|p| (p.0 - t0, p.1)).collect(),
                    },
                    Series {
                        name: "median replica".into(),
                        color: PALETTE[0],
                        points: r.qps_timeline.iter().map(|p| (p.0 - t0, p.2)).collect(),
                    },
                ],
                h_rules: vec![],
                v_rules: vec![],
                y_scale: 1.0,
            }
            .render(),
        );
        let mut pooled_p99 = latency_series(&[Line::P99], &r.bands, |b, _| {
            b.p99_secs.map(|p| (b.mean_qps, p))
        });
        // A band's p99 is the quantile of its replicas' pooled histogram, and says so.
        pooled_p99[0].name = "p99 pooled".into();
        o.push_str(
            &Chart {
                title: "p99 by load band".into(),
                x_label: "qps per replica (band mean)".into(),
                y_label: "p99 (ms)".into(),
                series: pooled_p99,
                h_rules: c.slo_p99_secs.map(slo_rule).into_iter().collect(),
                v_rules: r
                    .capacity_qps_per_replica
                    .map(|v| Rule {
                        value: v,
                        label: format!("capacity {v:.1}"),
                        color: "#1a7f37",
                    })
                    .into_iter()
                    .collect(),
                y_scale: 1000.0,
            }
            .render(),
        );
    }
}

/// Goodput ratio by load band, one line per replica, and the cause of each replica's first
/// failing band; the tables are in the text below.
fn html_goodput(o: &mut String, c: &CapacityReport) {
    for g in &c.goodput {
        let _ = writeln!(
            o,
            "<h2>Goodput, route {}, model {}</h2><p>{}</p>",
            esc(&g.route),
            esc(&g.model),
            esc(&match g.capacity_qps_per_replica {
                Some(cap) => format!(
                    "Goodput capacity per replica: {}{cap:.2} req/s at {:.1}% meeting every bound. {}",
                    if g.capacity_is_lower_bound { ">= " } else { "" },
                    c.goodput_target * 100.0,
                    g.confidence
                ),
                None => format!("No goodput capacity: {}", g.confidence),
            })
        );
        if let Some(w) = &g.why {
            let _ = writeln!(
                o,
                "<p>Why it fails beyond: <span class=\"invalid\">{}</span> (replica {}): {}</p>",
                esc(w.cause.as_str()),
                esc(&g.why_replica),
                esc(&w.detail)
            );
        }
        o.push_str("<ul>");
        for r in &g.replicas {
            let _ = write!(
                o,
                "<li>replica {}: capacity {}",
                esc(&r.replica),
                r.capacity_qps.map_or("n/a".into(), |v| format!(
                    "{}{v:.2} req/s",
                    if r.lower_bound { "&ge; " } else { "" }
                ))
            );
            if let Some(w) = &r.why {
                let _ = write!(
                    o,
                    "; {:.2}&ndash;{:.2} req/s fails by <b>{}</b>: {}",
                    w.qps_low,
                    w.qps_high,
                    esc(w.cause.as_str()),
                    esc(&w.detail)
                );
            }
            o.push_str("</li>");
        }
        o.push_str("</ul>\n");
        let series: Vec<Series> = g
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| Series {
                name: r.replica.clone(),
                color: PALETTE[i % PALETTE.len()],
                points: r
                    .bands
                    .iter()
                    .filter_map(|b| b.goodput_ratio.map(|v| (b.mean_qps, v * 100.0)))
                    .collect(),
            })
            .collect();
        o.push_str(
            &Chart {
                title: "Goodput ratio by load band".into(),
                x_label: "req/s per replica (band mean)".into(),
                y_label: "% meeting every bound".into(),
                series,
                h_rules: vec![Rule {
                    value: c.goodput_target * 100.0,
                    label: format!("target {:.1}%", c.goodput_target * 100.0),
                    color: "#c62828",
                }],
                v_rules: g
                    .capacity_qps_per_replica
                    .map(|v| Rule {
                        value: v,
                        label: format!("capacity {v:.1}"),
                        color: "#1a7f37",
                    })
                    .into_iter()
                    .collect(),
                y_scale: 1.0,
            }
            .render(),
        );
        let waiting: Vec<Series> = g
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| Series {
                name: r.replica.clone(),
                color: PALETTE[i % PALETTE.len()],
                points: r
                    .bands
                    .iter()
                    .filter_map(|b| b.engine.waiting_mean.map(|v| (b.mean_qps, v)))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        if !waiting.is_empty() {
            o.push_str(
                &Chart {
                    title: "Engine queue (requests waiting) by load band".into(),
                    x_label: "req/s per replica (band mean)".into(),
                    y_label: "requests waiting".into(),
                    series: waiting,
                    h_rules: vec![],
                    v_rules: vec![],
                    y_scale: 1.0,
                }
                .render(),
            );
        }
    }
}
