//! "Is the model still right", against real peers: MLServer serving an sklearn iris classifier
//! behind the sidecar; the same model converted by skl2onnx as an in-process ONNX shadow (and a
//! deliberately perturbed one); MLServer itself as an HTTP shadow; golden sets whose expected
//! share of right answers the test computes with sklearn. The shadow agreement must equal the
//! disagreement the test computes independently with the Python onnxruntime.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use inferwatch::canary::config::ProbeConfig;
use inferwatch::routes::config::{Protocol, RouteConfig};
use inferwatch::shadow::config::{ShadowKind, ShadowTargetConfig};
use support::*;

const MLSERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mlserver_iris.py");
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/answers_iris.py");
const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");

/// The ONNX Runtime library of the peers' venv (written by scripts/install-peers.sh).
pub fn ort_library() -> PathBuf {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-peers/ORT_DYLIB_PATH");
    let path = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/install-peers.sh)", file.display()));
    PathBuf::from(path.trim())
}

fn run_json(python: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadows_and_canaries_against_mlserver_and_onnx() {
    let python = peers_python(&["mlserver", "mlserver_sklearn", "sklearn", "onnxruntime"]);
    let dir = tempfile::tempdir().unwrap();
    let (http_port, grpc_port, metrics_port) = (free_port(), free_port(), free_port());
    let ports = [http_port, grpc_port, metrics_port].map(|p| p.to_string());
    let d = dir.path().to_str().unwrap();
    let setup = Command::new(&python)
        .args([MLSERVER, "setup", d, &ports[0], &ports[1], &ports[2]])
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let shares = run_json(&python, &[PEER, "golden", d]);
    let log_path = dir.path().join("mlserver.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = KillOnDrop(
        Command::new(python.with_file_name("mlserver"))
            .args(["start", "."])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let direct = format!("http://127.0.0.1:{http_port}");
    wait_mlserver_ready(
        &format!("{direct}/v2/models/iris/ready"),
        &mut server,
        &log_path,
    )
    .await;

    let mut cfg = test_config(&direct);
    cfg.proxy.routes = vec![RouteConfig {
        name: "infer".into(),
        path_prefix: "/v2/models/".into(),
        protocol: Protocol::KserveV2,
        model: "m".into(),
        ..RouteConfig::default()
    }];
    let onnx = |name: &str, file: &str| ShadowTargetConfig {
        name: name.into(),
        route: "infer".into(),
        kind: ShadowKind::Onnx,
        sample_ratio: 1.0,
        max_in_flight: 64,
        model_path: format!("{MODELS}/{file}"),
        label_output: "label".into(),
        score_output: "probabilities".into(),
        ..ShadowTargetConfig::default()
    };
    cfg.shadow.onnx_library = ort_library().display().to_string();
    cfg.shadow.queue_capacity = 4096;
    cfg.shadow.targets = vec![
        onnx("onnx_same", "iris.onnx"),
        onnx("onnx_perturbed", "iris_perturbed.onnx"),
        ShadowTargetConfig {
            name: "http_same".into(),
            route: "infer".into(),
            kind: ShadowKind::Http,
            sample_ratio: 0.5,
            max_in_flight: 64,
            url: direct.clone(),
            ..ShadowTargetConfig::default()
        },
    ];
    let probe = |name: &str| ProbeConfig {
        name: name.into(),
        route: "infer".into(),
        path: "/v2/models/iris/infer".into(),
        golden_file: dir
            .path()
            .join(format!("{name}.jsonl"))
            .display()
            .to_string(),
        // One round, at start-up: the test reads exactly one pass over each golden set.
        interval_secs: 3600.0,
        jitter_secs: 0.0,
        ..ProbeConfig::default()
    };
    cfg.canary = vec![probe("golden"), probe("golden_wrong")];
    let sc = Sidecar::start(cfg).await;

    // Canaries: one round over 150 golden rows each.
    for name in ["golden", "golden_wrong"] {
        assert_eventually!(
            sc.scrape()
                .await
                .sum("inferwatch_probes_total", &[("probe", name)])
                >= 150.0,
            Duration::from_secs(60)
        );
    }
    let s = sc.scrape().await;
    for name in ["golden", "golden_wrong"] {
        let want = shares[name].as_f64().unwrap();
        let correct = s.sum(
            "inferwatch_probes_total",
            &[("probe", name), ("result", "correct")],
        );
        let errors = s.sum(
            "inferwatch_probes_total",
            &[("probe", name), ("result", "error")],
        );
        let ratio = s
            .get(
                "inferwatch_probe_accuracy_ratio",
                &[("probe", name), ("window", "1h")],
            )
            .unwrap();
        eprintln!("canary {name}: accuracy {ratio:.4}, sklearn says {want:.4}, errors {errors}");
        assert_eq!(errors, 0.0);
        assert!((ratio - want).abs() < 1e-9, "{name}: {ratio} != {want}");
        assert_eq!(correct, (want * 150.0).round());
    }
    assert!(shares["golden_wrong"].as_f64().unwrap() < shares["golden"].as_f64().unwrap() - 0.2);
    assert_eq!(
        s.get("inferwatch_probe_success", &[("probe", "golden")]),
        Some(0.0)
    );
    let cold = s
        .get("inferwatch_upstream_cold_start_seconds", &[])
        .unwrap();
    assert!(cold > 0.0 && cold < 60.0, "cold start {cold}");

    // Shadows: live traffic from the test's own client.
    let via = sc.url("");
    let traffic = {
        let python = python.clone();
        tokio::task::spawn_blocking(move || {
            run_json(&python, &[PEER, "traffic", &via, "300", MODELS])
        })
        .await
        .unwrap()
    };
    let rows = traffic["rows"].as_f64().unwrap();
    let requests = traffic["requests"].as_f64().unwrap();
    let disagree: BTreeMap<String, f64> =
        serde_json::from_value(traffic["disagree"].clone()).unwrap();
    for target in ["onnx_same", "onnx_perturbed"] {
        assert_eventually!(
            sc.scrape()
                .await
                .sum("inferwatch_shadow_comparisons_total", &[("target", target)])
                >= rows,
            Duration::from_secs(30)
        );
    }
    let s = sc.scrape().await;
    for (target, key) in [("onnx_same", "iris"), ("onnx_perturbed", "iris_perturbed")] {
        let t = [("target", target)];
        let ok = s.get(
            "inferwatch_shadow_requests_total",
            &[t[0], ("outcome", "ok")],
        );
        assert_eq!(ok, Some(requests), "{target}: every request replayed");
        let disagreeing = s.sum(
            "inferwatch_shadow_comparisons_total",
            &[t[0], ("result", "disagree")],
        );
        let ratio = s
            .get(
                "inferwatch_shadow_agreement_ratio",
                &[t[0], ("window", "1h")],
            )
            .unwrap();
        let truth = 1.0 - disagree[key] / rows;
        eprintln!("shadow {target}: agreement {ratio:.4} over {rows} rows, independent {truth:.4}");
        assert_eq!(disagreeing, disagree[key], "{target}");
        assert!((ratio - truth).abs() < 1e-9, "{target}: {ratio} != {truth}");
    }
    let same = s
        .get(
            "inferwatch_shadow_agreement_ratio",
            &[("target", "onnx_same"), ("window", "1h")],
        )
        .unwrap();
    let perturbed = s
        .get(
            "inferwatch_shadow_agreement_ratio",
            &[("target", "onnx_perturbed"), ("window", "1h")],
        )
        .unwrap();
    assert!(same >= 0.99, "same model agreement {same}");
    assert!(
        perturbed < same - 0.05,
        "perturbed {perturbed} vs same {same}"
    );
    // MLServer as its own HTTP shadow: about half the requests, all agreeing.
    assert_eventually!(
        sc.scrape().await.sum(
            "inferwatch_shadow_requests_total",
            &[("target", "http_same"), ("outcome", "ok")]
        ) > 0.0
    );
    let s = sc.scrape().await;
    let http_ok = s.sum(
        "inferwatch_shadow_requests_total",
        &[("target", "http_same"), ("outcome", "ok")],
    );
    assert!(
        http_ok > requests * 0.3 && http_ok < requests * 0.7,
        "{http_ok}"
    );
    assert_eq!(
        s.sum(
            "inferwatch_shadow_comparisons_total",
            &[("target", "http_same"), ("result", "disagree")]
        ),
        0.0
    );
    if let Err(report) = promtool_check(&sc.scrape_text().await) {
        panic!("promtool check metrics:\n{report}");
    }
    let t = std::time::Instant::now();
    sc.shutdown().await;
    eprintln!("sidecar shut down in {:?}", t.elapsed());
    drop(server);
}
