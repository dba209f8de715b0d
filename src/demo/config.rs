//! The sidecar config the demo runs with, built in code from `Config::default()` and checked by
//! the same validation as a config file: one KServe V2 route, a canary golden set, an ONNX
//! shadow, SPC charts on canary accuracy, shadow agreement and confidence, drift tests on petal
//! length and on the predicted classes (chi-square), and every energy source with the demo's
//! own process named for the estimate.

use std::net::SocketAddr;
use std::path::Path;

use crate::canary::config::ProbeConfig;
use crate::config::Config;
use crate::energy::config::SourceMode;
use crate::quality::config::{ChartConfig, ChartKind, DriftConfig};
use crate::routes::config::{PredictionConfig, PredictionKind, Protocol, RouteConfig};
use crate::shadow::config::{ShadowKind, ShadowTargetConfig};

use super::iris::{CLASSES, DRIFT_FEATURE, MODEL_NAME};

pub const ROUTE: &str = "infer";
pub const PROBE: &str = "iris_golden";
pub const SHADOW: &str = "iris_onnx";
/// The `window` label of the accuracy and agreement ratios the summary shows.
pub const RATIO_WINDOW: &str = "1m";
/// The latency window the summary's p99 comes from.
pub const LATENCY_WINDOW: &str = "1m";

/// Timings scaled to the drift delay, so that the charts have learned their baselines (Phase I)
/// and the drift test its reference before the drift, whether that comes after two minutes or
/// after eight seconds (the test).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// SPC subgroup interval, and the canary's round interval (one round per subgroup).
    pub interval_secs: f64,
    /// Phase I subgroups: done within 60% of the drift delay.
    pub phase1_subgroups: u64,
    pub drift_reference: usize,
    pub drift_window: usize,
}

impl Plan {
    pub fn new(drift_after_secs: f64, qps: f64) -> Self {
        // 20 subgroups before the drift, at most 5 s each (a chart's usual 10 s would leave a
        // two-minute demo few points) and at least 0.25 s (enough requests per subgroup at the
        // test's 200 req/s).
        let interval_secs = (drift_after_secs / 20.0).clamp(0.25, 5.0);
        // Montgomery's 20-25 where there is time; never fewer than the 2 a sigma needs.
        let phase1_subgroups =
            ((0.6 * drift_after_secs / interval_secs).floor() as u64).clamp(2, 25);
        // The reference fills within 40% of the delay, leaving room for a window or two of
        // undrifted traffic; 1000 is the drift test's default, 100 keeps 10 per PSI bin.
        let drift_reference = ((qps * drift_after_secs * 0.4) as usize).clamp(100, 1000);
        let drift_window = (drift_reference / 2).max(100);
        Self {
            interval_secs,
            phase1_subgroups,
            drift_reference,
            drift_window,
        }
    }
}

/// What the demo's sidecar needs to know from the rest of the demo.
pub struct Inputs<'a> {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub upstream: SocketAddr,
    pub onnx_library: &'a Path,
    pub shadow_model: &'a Path,
    pub golden_file: &'a Path,
    pub plan: Plan,
}

pub fn build(i: &Inputs<'_>) -> Config {
    let mut cfg = Config::default();
    cfg.proxy.listen = i.listen;
    cfg.proxy.upstream = format!("http://{}", i.upstream);
    // The demo serves the proxy on its own runtime (one shared listener); a short grace is
    // enough for requests to a loopback model that answers in microseconds.
    cfg.proxy.worker_threads = 1;
    cfg.proxy.shutdown_grace_secs = 2.0;
    cfg.proxy.routes = vec![RouteConfig {
        name: ROUTE.into(),
        path_prefix: "/v2/models/".into(),
        protocol: Protocol::KserveV2,
        model: MODEL_NAME.into(),
        prediction: PredictionConfig {
            kind: PredictionKind::Classification,
            label_output: "label".into(),
            score_output: "probabilities".into(),
            class_labels: CLASSES.iter().map(|c| c.to_string()).collect(),
            ..PredictionConfig::default()
        },
        ..RouteConfig::default()
    }];
    cfg.admin.listen = i.admin;
    cfg.log.level = super::log_level().into();

    let interval = i.plan.interval_secs;
    cfg.canary = vec![ProbeConfig {
        name: PROBE.into(),
        route: ROUTE.into(),
        path: format!("/v2/models/{MODEL_NAME}/infer"),
        golden_file: i.golden_file.display().to_string(),
        interval_secs: interval,
        // One sidecar: nothing to de-synchronise.
        jitter_secs: 0.0,
        ..ProbeConfig::default()
    }];
    cfg.shadow.onnx_library = i.onnx_library.display().to_string();
    cfg.shadow.queue_capacity = 1024;
    cfg.shadow.targets = vec![ShadowTargetConfig {
        name: SHADOW.into(),
        route: ROUTE.into(),
        kind: ShadowKind::Onnx,
        // Half the traffic: agreement is measured on hundreds of requests per minute at the
        // demo's rate, at half the cost of a full mirror.
        sample_ratio: 0.5,
        max_in_flight: 64,
        model_path: i.shadow_model.display().to_string(),
        label_output: "label".into(),
        score_output: "probabilities".into(),
        ..ShadowTargetConfig::default()
    }];
    // Ratios over the last minute show the drift within seconds; the hour is the trend.
    cfg.accuracy.windows_secs = vec![60, 3600];
    cfg.accuracy.slot_secs = 5;

    let chart = |name: &str, signal: String, kind: ChartKind| ChartConfig {
        name: name.into(),
        signal,
        kind,
        subgroup_interval_secs: interval,
        phase1_subgroups: i.plan.phase1_subgroups,
        ..ChartConfig::default()
    };
    cfg.quality.charts = vec![
        // 0/1 signals: a p-chart with exact binomial limits. The "fraction" charted is the
        // share of right answers (agreements), so a drop below the lower limit is the alarm.
        chart("canary_accuracy", format!("canary:{PROBE}"), ChartKind::P),
        chart(
            "shadow_agreement",
            format!("shadow_agree:{SHADOW}"),
            ChartKind::P,
        ),
        ChartConfig {
            // 4σ rather than 3σ: a baseline learned from a short Phase I underestimates sigma
            // now and then, and a demo that alarms before its drift teaches the wrong lesson;
            // the rollout moves mean confidence by about 0.1, many times the subgroup's sigma.
            limit: 4.0,
            ..chart(
                "confidence",
                format!("confidence:{ROUTE}"),
                ChartKind::Shewhart,
            )
        },
    ];
    let drift = |signal: String, categorical: bool| DriftConfig {
        signal,
        categorical,
        reference_size: i.plan.drift_reference,
        window_size: i.plan.drift_window,
        ..DriftConfig::default()
    };
    cfg.quality.drift = vec![
        drift(format!("feature_{DRIFT_FEATURE}:{ROUTE}"), false),
        // The classifier's own drift signal: the share of each predicted class, by chi-square.
        drift(format!("class:{ROUTE}"), true),
    ];

    // Every source this host has (NVML, RAPL), and the estimate where neither is readable: the
    // model server runs inside this process, so the process is what the estimate charges.
    cfg.energy.nvml = SourceMode::Auto;
    cfg.energy.rapl = SourceMode::Auto;
    cfg.energy.estimate = SourceMode::Auto;
    cfg.energy.interval_secs = 1.0;
    // Ten seconds: J/inference follows the demo's changes within its refresh.
    cfg.energy.window_secs = 10.0;
    cfg.system.pid = std::process::id();
    cfg.system.interval_secs = 1.0;
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(plan: Plan) -> Config {
        build(&Inputs {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            upstream: "127.0.0.1:9".parse().unwrap(),
            onnx_library: Path::new("/nonexistent/libonnxruntime.so"),
            shadow_model: Path::new("/tmp/iris.onnx"),
            golden_file: Path::new("/tmp/golden.jsonl"),
            plan,
        })
    }

    #[test]
    fn the_demo_config_is_valid() {
        for (drift, qps) in [(120.0, 50.0), (8.0, 200.0), (2.0, 1.0), (3600.0, 1000.0)] {
            let errors = crate::config::validate(&inputs(Plan::new(drift, qps)));
            assert!(errors.is_empty(), "drift {drift} qps {qps}: {errors:?}");
        }
    }

    #[test]
    fn phase_one_ends_well_before_the_drift() {
        for drift in [8.0, 30.0, 120.0, 600.0] {
            let p = Plan::new(drift, 200.0);
            let learned = p.interval_secs * p.phase1_subgroups as f64;
            assert!(learned <= 0.6 * drift + 1e-9, "drift {drift}: {p:?}");
        }
        let p = Plan::new(120.0, 50.0);
        assert_eq!((p.interval_secs, p.phase1_subgroups), (5.0, 14));
        assert_eq!((p.drift_reference, p.drift_window), (1000, 500));
    }
}
