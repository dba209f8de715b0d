//! gRPC canaries against a real peer: golden rows written as the JSON form of a
//! `ModelInferRequest` go to MLServer's gRPC port as unary `ModelInfer` calls over h2c; the
//! probes' accuracy must equal the share of right answers sklearn itself computes (as the HTTP
//! canaries' does in tests/answers_mlserver.rs), and a row for a model the server lacks (a
//! non-OK `grpc-status`) is a probe error.

mod grpc_support;
mod support;

use std::process::Command;
use std::time::Duration;

use grpc_support::*;
use inferwatch::canary::config::ProbeConfig;
use inferwatch::proxy::config::UpstreamProtocol;
use inferwatch::routes::config::Protocol;
use serde_json::{json, Value};
use support::*;

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/answers_iris.py");

/// The HTTP golden set `answers_iris.py golden` wrote, as gRPC rows: the same inputs (FP64
/// `data`) in a `ModelInferRequest` for `model`, the same expectations.
fn as_grpc(http_rows: &str, model: &str) -> String {
    let mut out = String::new();
    for line in http_rows.lines().filter(|l| !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).unwrap();
        let grpc = json!({
            "grpc": {"model_name": model, "inputs": row["request"]["inputs"]},
            "expect": row["expect"],
        });
        out.push_str(&grpc.to_string());
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_canaries_against_mlserver_match_sklearn() {
    let python = peers_python(&["mlserver", "mlserver_sklearn", "sklearn"]);
    let dir = tempfile::tempdir().unwrap();
    let (server, _, grpc_port) = start_mlserver(&python, dir.path()).await;
    let out = Command::new(&python)
        .args([PEER, "golden", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shares: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, from, model) in [
        ("grpc_golden", "golden", "iris"),
        ("grpc_golden_wrong", "golden_wrong", "iris"),
        ("grpc_no_model", "golden", "no_such_model"),
    ] {
        let http = std::fs::read_to_string(dir.path().join(format!("{from}.jsonl"))).unwrap();
        std::fs::write(
            dir.path().join(format!("{name}.jsonl")),
            as_grpc(&http, model),
        )
        .unwrap();
    }

    let mut cfg = test_config(&format!("http://127.0.0.1:{grpc_port}"));
    cfg.proxy.upstream_protocol = UpstreamProtocol::H2c;
    cfg.proxy.routes = vec![grpc_route(Protocol::KserveV2)];
    let probe = |name: &str| ProbeConfig {
        name: name.into(),
        route: "grpc".into(),
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
    cfg.canary = vec![
        probe("grpc_golden"),
        probe("grpc_golden_wrong"),
        probe("grpc_no_model"),
    ];
    let sc = Sidecar::start(cfg).await;
    for name in ["grpc_golden", "grpc_golden_wrong", "grpc_no_model"] {
        assert_eventually!(
            sc.scrape()
                .await
                .sum("inferwatch_probes_total", &[("probe", name)])
                >= 150.0,
            Duration::from_secs(90)
        );
    }
    let s = sc.scrape().await;
    let count = |probe: &str, result: &str| {
        s.sum(
            "inferwatch_probes_total",
            &[("probe", probe), ("result", result)],
        )
    };
    for (name, from) in [
        ("grpc_golden", "golden"),
        ("grpc_golden_wrong", "golden_wrong"),
    ] {
        let want = shares[from].as_f64().unwrap();
        let ratio = s
            .get(
                "inferwatch_probe_accuracy_ratio",
                &[("probe", name), ("window", "1h")],
            )
            .unwrap();
        eprintln!("gRPC canary {name}: accuracy {ratio:.4}, sklearn says {want:.4}");
        assert_eq!(count(name, "error"), 0.0, "{name}");
        assert!((ratio - want).abs() < 1e-9, "{name}: {ratio} != {want}");
        assert_eq!(count(name, "correct"), (want * 150.0).round(), "{name}");
    }
    assert_eq!(count("grpc_no_model", "error"), 150.0);
    assert_eq!(count("grpc_no_model", "correct"), 0.0);
    // The probes went straight to the model server, not through the proxy.
    assert_eq!(s.sum("inferwatch_requests_total", &[]), 0.0);
    sc.shutdown().await;
    drop(server);
}
