//! `[quality]` config: the example documents every chart and drift key, a valid section loads
//! with its types, and type errors and unknown keys inside charts carry their key paths.

use inferwatch::config::load_str;
use inferwatch::quality::config::{ChartConfig, ChartKind, DriftConfig, EwmaLimits};

const EXAMPLE: &str = include_str!("../config/inferwatch.toml");

#[test]
fn example_documents_every_chart_and_drift_key() {
    // The example keeps its defaults (no charts), so chart keys appear in commented form.
    let keys =
        |v: serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let chart = ChartConfig {
        center: Some(0.0),
        sigma: Some(1.0),
        ..ChartConfig::default()
    };
    let all = keys(serde_json::to_value(&chart).unwrap())
        .into_iter()
        .chain(keys(serde_json::to_value(DriftConfig::default()).unwrap()));
    for key in all {
        let present = EXAMPLE.lines().any(|l| {
            let l = l.trim_start().trim_start_matches('#').trim_start();
            l.starts_with(&format!("{key} ="))
        });
        assert!(present, "config/inferwatch.toml does not document `{key}`");
    }
}

#[test]
fn a_full_quality_section_loads() {
    let cfg = load_str(
        r#"
[[proxy.routes]]
name = "infer"
path_prefix = "/v2/"

[quality]
queue_capacity = 100
state_file = "/var/lib/inferwatch/quality.json"

[[quality.charts]]
name = "infer_errors"
signal = "request_error:infer"
kind = "p"
subgroup_interval_secs = 0.1
center = 0.001

[[quality.charts]]
name = "infer_p99"
signal = "latency_p99:infer"
kind = "ewma"
ewma_limits = "asymptotic"
limit = 2.814

[[quality.charts]]
name = "canary"
signal = "canary:golden"
kind = "shewhart"
we_two_of_three = true
we_four_of_five = true
we_eight_in_a_row = true

[[quality.drift]]
signal = "confidence"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let q = &cfg.quality;
    assert_eq!(q.queue_capacity, 100);
    assert_eq!(q.charts.len(), 3);
    assert_eq!(q.charts[0].kind, ChartKind::P);
    assert_eq!(q.charts[0].subgroup_interval_secs, 0.1);
    assert_eq!(q.charts[0].center, Some(0.001));
    assert_eq!(q.charts[1].ewma_limits, EwmaLimits::Asymptotic);
    assert!(q.charts[2].we_eight_in_a_row);
    assert_eq!(q.drift[0].reference_size, 1000);
}

#[test]
fn type_errors_and_unknown_keys_in_charts_have_paths() {
    let got = load_str(
        "[[quality.charts]]\nname = \"a\"\nsignal = \"s\"\nkind = \"xbar\"\nlamda = 0.2\ncenter = \"high\"\n",
    )
    .unwrap_err()
    .lines();
    assert_eq!(
        got,
        vec![
            "quality.charts[0].kind: unknown variant `xbar`, expected one of `shewhart`, `ewma`, `cusum`, `p`",
            "quality.charts[0].center: invalid type: string \"high\", expected a number",
            "quality.charts[0].lamda: unknown key, did you mean `lambda`?",
        ]
    );
}
