//! The demo's live summary: read from the sidecar's own `/metrics` (what Prometheus would
//! scrape, so the demo shows nothing the exporter does not), rendered as a block redrawn in
//! place on a terminal, or as plain lines otherwise.

use std::collections::BTreeMap;

use crate::bench::scrape::Sample;
use crate::metrics::names;

use super::config::{LATENCY_WINDOW, PROBE, RATIO_WINDOW, ROUTE, SHADOW};

/// The figures one scrape gives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Requests the proxy served on the demo route (every outcome).
    pub requests: f64,
    /// Windowed p99 of the route, in seconds (absent until the window has samples).
    pub p99: Option<f64>,
    /// Joules per inference and the source it came from.
    pub joules: Option<(f64, String)>,
    /// Energy sources that are up.
    pub sources_up: Vec<String>,
    pub agreement: Option<f64>,
    pub canary: Option<f64>,
    /// Charts whose alarm gauge is 1.
    pub spc_alarms: Vec<String>,
    /// Signals flagged by their drift test.
    pub drift_alarms: Vec<String>,
    /// Alarm signals counted since start (`inferwatch_spc_alarms_total`).
    pub spc_alarms_total: f64,
    /// Charts still learning their baseline, and charts in all.
    pub learning: usize,
    pub charts: usize,
}

fn has(labels: &BTreeMap<String, String>, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
}

/// Pick the summary's figures out of a scrape.
pub fn figures(samples: &[Sample]) -> Figures {
    let mut f = Figures::default();
    // Measured sources first: the estimate is shown only where nothing measures.
    let rank = |s: &str| match s {
        "nvml" => 0,
        "rapl" => 1,
        _ => 2,
    };
    for (name, labels, value) in samples {
        let value = *value;
        match name.as_str() {
            names::REQUESTS_TOTAL if has(labels, &[("route", ROUTE)]) => f.requests += value,
            names::LATENCY_QUANTILE_SECONDS
                if has(
                    labels,
                    &[("route", ROUTE), ("window", LATENCY_WINDOW), ("q", "0.99")],
                ) =>
            {
                // One series per model label on the route: the worst is the route's tail.
                f.p99 = Some(f.p99.map_or(value, |p: f64| p.max(value)));
            }
            names::ENERGY_PER_INFERENCE_JOULES
                if has(labels, &[("route", ROUTE), ("kind", "total")]) && value.is_finite() =>
            {
                let source = labels.get("source").cloned().unwrap_or_default();
                let better = f
                    .joules
                    .as_ref()
                    .is_none_or(|(_, s)| rank(&source) < rank(s));
                if better {
                    f.joules = Some((value, source));
                }
            }
            names::ENERGY_SOURCE_UP if value == 1.0 => {
                if let Some(s) = labels.get("source") {
                    f.sources_up.push(s.clone());
                }
            }
            names::SHADOW_AGREEMENT_RATIO
                if has(labels, &[("target", SHADOW), ("window", RATIO_WINDOW)]) =>
            {
                f.agreement = Some(value);
            }
            names::PROBE_ACCURACY_RATIO
                if has(labels, &[("probe", PROBE), ("window", RATIO_WINDOW)]) =>
            {
                f.canary = Some(value);
            }
            names::SPC_ALARM if value == 1.0 => {
                f.spc_alarms.extend(labels.get("chart").cloned());
            }
            names::SPC_ALARMS_TOTAL => f.spc_alarms_total += value,
            names::SPC_PHASE1 => {
                f.charts += 1;
                f.learning += usize::from(value == 1.0);
            }
            names::DRIFT_ALARM if value == 1.0 => {
                f.drift_alarms.extend(labels.get("signal").cloned());
            }
            _ => {}
        }
    }
    f.sources_up.sort();
    f.spc_alarms.sort();
    f.drift_alarms.sort();
    f
}

/// Where the demo is in its script.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    pub elapsed_secs: f64,
    /// Seconds until the drift (negative: since).
    pub drift_in_secs: f64,
}

fn pct(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{:.1}%", v * 100.0))
}

fn p99(f: &Figures) -> String {
    f.p99
        .map_or("n/a".into(), |s| format!("{:.2} ms", s * 1000.0))
}

fn joules(f: &Figures) -> String {
    match &f.joules {
        // Lines stay under 80 columns: a wrapped line would break the redraw's line count.
        Some((j, s)) if s == "estimate" => {
            format!("{j:.4} J/inference (estimate: CPU time, no RAPL/NVML)")
        }
        Some((j, s)) => format!("{j:.4} J/inference ({s})"),
        None => "n/a".into(),
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn phase(c: &Clock) -> String {
    if c.drift_in_secs > 0.0 {
        format!("drift in {:.0}s", c.drift_in_secs.ceil())
    } else {
        format!("drifted {:.0}s ago", -c.drift_in_secs)
    }
}

/// The block redrawn on a terminal.
pub fn block(f: &Figures, c: &Clock) -> Vec<String> {
    let learning = if f.learning > 0 {
        format!(
            "  ({} of {} charts learning their baseline)",
            f.learning, f.charts
        )
    } else {
        String::new()
    };
    vec![
        format!(
            "inferwatch demo · {:.0}s · {} · Ctrl-C to stop",
            c.elapsed_secs,
            phase(c)
        ),
        format!("  requests served   {:.0}", f.requests),
        format!("  p99 latency       {}  ({LATENCY_WINDOW} window)", p99(f)),
        format!("  energy            {}", joules(f)),
        format!(
            "  shadow agreement  {}  (ONNX shadow {SHADOW}, {RATIO_WINDOW})",
            pct(f.agreement)
        ),
        format!(
            "  canary accuracy   {}  (golden set {PROBE}, {RATIO_WINDOW})",
            pct(f.canary)
        ),
        format!("  SPC alarms        {}{learning}", list(&f.spc_alarms)),
        format!("  drift alarms      {}", list(&f.drift_alarms)),
    ]
}

/// One plain line (not a terminal: logs, CI, pipes).
pub fn line(f: &Figures, c: &Clock) -> String {
    let energy = match &f.joules {
        Some((j, s)) => format!("{j:.4}J/inference({s})"),
        None => "n/a".into(),
    };
    format!(
        "t={:.0}s {} requests={:.0} p99={} energy={} shadow_agreement={} canary_accuracy={} spc_alarms={} drift_alarms={}",
        c.elapsed_secs,
        phase(c).replace(' ', "_"),
        f.requests,
        p99(f).replace(' ', ""),
        energy,
        pct(f.agreement),
        pct(f.canary),
        list(&f.spc_alarms).replace(", ", ","),
        list(&f.drift_alarms).replace(", ", ","),
    )
}

/// ANSI: cursor up `n` lines, then clear to the end of the screen, so the next block overwrites
/// the last one.
pub fn rewind(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!("\x1b[{n}A\x1b[J")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::scrape::parse_text;

    const SCRAPE: &str = r#"
inferwatch_requests_total{code_class="2xx",model="iris",outcome="ok",route="infer"} 120
inferwatch_requests_total{code_class="2xx",model="iris",outcome="ok",route="other"} 5
inferwatch_latency_quantile_seconds{model="iris",q="0.99",route="infer",window="1m"} 0.0021
inferwatch_latency_quantile_seconds{model="iris",q="0.99",route="infer",window="10m"} 0.009
inferwatch_energy_per_inference_joules{kind="total",model="iris",route="infer",source="estimate"} 0.0125
inferwatch_energy_per_inference_joules{kind="dynamic",model="iris",route="infer",source="estimate"} 0.001
inferwatch_energy_source_up{source="estimate"} 1
inferwatch_energy_source_up{source="rapl"} 0
inferwatch_shadow_agreement_ratio{target="iris_onnx",window="1m"} 0.8
inferwatch_probe_accuracy_ratio{probe="iris_golden",window="1m"} 0.9
inferwatch_probe_accuracy_ratio{probe="iris_golden",window="1h"} 0.99
inferwatch_spc_alarm{chart="shadow_agreement",signal="shadow_agree:iris_onnx"} 1
inferwatch_spc_alarm{chart="confidence",signal="confidence:infer"} 0
inferwatch_spc_alarms_total{chart="shadow_agreement",rule="limit",signal="shadow_agree:iris_onnx"} 3
inferwatch_spc_phase1{chart="shadow_agreement",signal="shadow_agree:iris_onnx"} 0
inferwatch_spc_phase1{chart="confidence",signal="confidence:infer"} 1
inferwatch_drift_alarm{signal="feature_2:infer"} 1
"#;

    #[test]
    fn figures_come_from_the_scrape() {
        let f = figures(&parse_text(SCRAPE));
        assert_eq!(f.requests, 120.0);
        assert_eq!(f.p99, Some(0.0021));
        assert_eq!(f.joules, Some((0.0125, "estimate".to_string())));
        assert_eq!(f.sources_up, vec!["estimate".to_string()]);
        assert_eq!(f.agreement, Some(0.8));
        assert_eq!(f.canary, Some(0.9));
        assert_eq!(f.spc_alarms, vec!["shadow_agreement".to_string()]);
        assert_eq!(f.spc_alarms_total, 3.0);
        assert_eq!(f.drift_alarms, vec!["feature_2:infer".to_string()]);
        assert_eq!((f.learning, f.charts), (1, 2));
    }

    #[test]
    fn plain_line_and_block_say_the_same() {
        let f = figures(&parse_text(SCRAPE));
        let c = Clock {
            elapsed_secs: 30.0,
            drift_in_secs: -4.0,
        };
        assert_eq!(
            line(&f, &c),
            "t=30s drifted_4s_ago requests=120 p99=2.10ms energy=0.0125J/inference(estimate) shadow_agreement=80.0% canary_accuracy=90.0% spc_alarms=shadow_agreement drift_alarms=feature_2:infer"
        );
        let b = block(&f, &c).join("\n");
        assert!(b.contains("0.0125 J/inference (estimate: CPU time"), "{b}");
        assert!(block(&f, &c).iter().all(|l| l.chars().count() < 80), "{b}");
        assert!(b.contains("1 of 2 charts learning"), "{b}");
    }

    #[test]
    fn nothing_yet_reads_n_a() {
        let f = figures(&[]);
        let c = Clock {
            elapsed_secs: 1.0,
            drift_in_secs: 119.0,
        };
        let l = line(&f, &c);
        assert!(l.contains("p99=n/a energy=n/a"), "{l}");
        assert!(l.contains("drift_in_119s"), "{l}");
        assert_eq!(rewind(3), "\x1b[3A\x1b[J");
    }
}
