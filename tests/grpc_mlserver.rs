//! gRPC through the sidecar with real peers: MLServer's gRPC port behind it (`h2c`), the real
//! `tritonclient.grpc` and plain `grpcio` clients in front: failed calls counted with their
//! codes, payloads read on `kserve_v2` routes (the same metrics as over HTTP JSON), ONNX shadows,
//! a gRPC shadow (MLServer replayed to itself over h2c) and feedback fed from gRPC traffic, and
//! `inferwatch bench` over gRPC. (gRPC canaries: tests/grpc_canary.rs.)

mod grpc_support;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use grpc_support::*;
use http::Request;
use inferwatch::proxy::config::UpstreamProtocol;
use inferwatch::routes::config::{Protocol, RouteConfig};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_status_counts_failed_calls_with_their_codes() {
    let python = peers_python(&["mlserver", "mlserver_sklearn", "sklearn"]);
    peers_python(&["tritonclient.grpc", "grpc"]);
    let dir = tempfile::tempdir().unwrap();
    let (server, _http_port, grpc_port) = start_mlserver(&python, dir.path()).await;
    let direct = format!("127.0.0.1:{grpc_port}");

    let mut cfg = test_config(&format!("http://{direct}"));
    cfg.proxy.upstream_protocol = UpstreamProtocol::H2c;
    cfg.proxy.routes = vec![grpc_route(Protocol::KserveV2)];
    let sc = Sidecar::start(cfg).await;
    let via = sc.proxy_addr.to_string();

    let triton = run_client(&python, vec!["triton".into(), via.clone(), direct.clone()]).await;
    let grpcio = run_client(&python, vec!["grpcio".into(), via, direct]).await;
    // The clients saw what MLServer answers: NOT_FOUND for an unknown model, INTERNAL for a
    // wrong input shape.
    assert_eq!(triton.codes.get("NOT_FOUND"), Some(&6), "{triton:?}");
    assert_eq!(triton.codes.get("INTERNAL"), Some(&4), "{triton:?}");
    assert_eq!(grpcio.codes.get("NOT_FOUND"), Some(&3), "{grpcio:?}");
    assert_eq!(grpcio.codes.get("INTERNAL"), Some(&2), "{grpcio:?}");
    let ok = (triton.ok + grpcio.ok) as f64;
    let mut failed = BTreeMap::<String, u64>::new();
    for (code, n) in triton.codes.iter().chain(&grpcio.codes) {
        *failed.entry(code.clone()).or_default() += n;
    }
    let failed_total: u64 = failed.values().sum();

    let route = [("route", "grpc")];
    assert_eventually!(sc.scrape().await.sum("inferwatch_requests_total", &route) >= ok);
    let s = sc.scrape().await;
    // Every call is a request; the failed ones are `grpc_error`, never `ok`.
    assert_eq!(
        s.get(
            "inferwatch_requests_total",
            &[
                ("route", "grpc"),
                ("model", "iris"),
                ("code_class", "2xx"),
                ("outcome", "ok")
            ]
        ),
        Some(ok)
    );
    assert_eq!(
        s.get(
            "inferwatch_requests_total",
            &[
                ("route", "grpc"),
                ("model", "iris"),
                ("code_class", "2xx"),
                ("outcome", "grpc_error")
            ]
        ),
        Some(failed_total as f64)
    );
    assert_eq!(
        s.sum("inferwatch_requests_total", &route),
        ok + failed_total as f64,
        "no call counted twice or under another outcome"
    );
    // The codes, as the client libraries reported them.
    assert_eq!(
        s.get(
            "inferwatch_grpc_calls_total",
            &[("route", "grpc"), ("model", "iris"), ("grpc_code", "OK")]
        ),
        Some(ok)
    );
    for (code, n) in &failed {
        assert_eq!(
            s.get(
                "inferwatch_grpc_calls_total",
                &[("route", "grpc"), ("model", "iris"), ("grpc_code", code)]
            ),
            Some(*n as f64),
            "grpc_code {code}"
        );
    }
    assert_eq!(
        s.sum("inferwatch_grpc_calls_total", &route),
        ok + failed_total as f64
    );
    // Failed calls were answered by the model server, so they are timed like any other.
    assert_eq!(
        s.get(
            "inferwatch_request_duration_seconds_count",
            &[("route", "grpc"), ("model", "iris")]
        ),
        Some(ok + failed_total as f64)
    );
    if let Err(report) = promtool_check(&sc.scrape_text().await) {
        panic!("promtool check metrics:\n{report}");
    }
    // The payloads were read: per-class predictions are exactly the classes the clients got
    // (raw FP64 contents from tritonclient, typed contents and streams from grpcio); failed
    // calls are not inspected.
    assert_eq!(triton.classes.len(), 3, "{triton:?}");
    let mut classes = triton.classes.clone();
    for (c, n) in &grpcio.classes {
        *classes.entry(c.clone()).or_default() += n;
    }
    let parsed = [("route", "grpc"), ("result", "parsed")];
    let infer_ok = (triton.infer_ok + grpcio.infer_ok) as f64;
    assert_eventually!(
        sc.scrape()
            .await
            .sum("inferwatch_inspection_total", &parsed)
            == infer_ok
    );
    let s = sc.scrape().await;
    for (class, n) in &classes {
        assert_eq!(
            s.get(
                "inferwatch_predictions_total",
                &[("route", "grpc"), ("model", "iris"), ("class", class)]
            ),
            Some(*n as f64),
            "class {class}"
        );
    }
    let rows = (triton.rows + grpcio.rows) as f64;
    assert_eq!(s.sum("inferwatch_predictions_total", &route), rows);
    assert_eq!(
        s.get(
            "inferwatch_batch_size_sum",
            &[("route", "grpc"), ("model", "iris")]
        ),
        Some(rows)
    );
    assert_eq!(
        s.get(
            "inferwatch_batch_size_count",
            &[("route", "grpc"), ("model", "iris")]
        ),
        Some(infer_ok)
    );
    assert_eq!(
        s.sum("inferwatch_inspection_total", &[("result", "malformed")]),
        0.0
    );
    assert_eq!(s.sum("inferwatch_input_anomalies_total", &[]), 0.0);
    sc.shutdown().await;
    drop(server);
}

/// The same model over HTTP JSON (`tritonclient.http`) and over gRPC (`tritonclient.grpc`, raw
/// binary contents), each through its own sidecar with a `kserve_v2` route of the same name:
/// the prediction metrics are identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_and_grpc_give_identical_prediction_metrics() {
    let python = peers_python(&["mlserver", "mlserver_sklearn", "sklearn"]);
    peers_python(&["tritonclient.grpc", "tritonclient.http", "grpc"]);
    let dir = tempfile::tempdir().unwrap();
    let (server, http_port, grpc_port) = start_mlserver(&python, dir.path()).await;

    let route = |prefix: &str| RouteConfig {
        name: "infer".into(),
        path_prefix: prefix.into(),
        protocol: Protocol::KserveV2,
        model: "iris".into(),
        ..RouteConfig::default()
    };
    let mut http_cfg = test_config(&format!("http://127.0.0.1:{http_port}"));
    http_cfg.proxy.routes = vec![route("/v2/models/")];
    let mut grpc_cfg = test_config(&format!("http://127.0.0.1:{grpc_port}"));
    grpc_cfg.proxy.upstream_protocol = UpstreamProtocol::H2c;
    grpc_cfg.proxy.routes = vec![route(SERVICE)];
    let (via_http, via_grpc) = (
        Sidecar::start(http_cfg).await,
        Sidecar::start(grpc_cfg).await,
    );

    let seen = run_client(
        &python,
        vec![
            "same".into(),
            via_http.proxy_addr.to_string(),
            via_grpc.proxy_addr.to_string(),
        ],
    )
    .await;
    let parsed = [("route", "infer"), ("result", "parsed")];
    for sc in [&via_http, &via_grpc] {
        assert_eventually!(
            sc.scrape()
                .await
                .sum("inferwatch_inspection_total", &parsed)
                == seen.infer_ok as f64
        );
    }
    let (h, g) = (via_http.scrape().await, via_grpc.scrape().await);
    let families = [
        "inferwatch_predictions_total",
        "inferwatch_prediction_confidence_bucket",
        "inferwatch_prediction_confidence_sum",
        "inferwatch_prediction_confidence_count",
        "inferwatch_batch_size_bucket",
        "inferwatch_batch_size_sum",
        "inferwatch_batch_size_count",
        "inferwatch_input_anomalies_total",
    ];
    for family in families {
        let pick = |s: &Scrape| {
            s.samples
                .iter()
                .filter(|x| x.name == family)
                .map(|x| (format!("{:?}", x.labels), x.value))
                .collect::<Vec<_>>()
        };
        let (ph, pg) = (pick(&h), pick(&g));
        assert_eq!(ph.len(), pg.len(), "{family}: {ph:?} vs {pg:?}");
        for ((lh, vh), (lg, vg)) in ph.iter().zip(&pg) {
            assert_eq!(lh, lg, "{family}");
            // serde_json's default float parsing may round a JSON decimal to the f64 next to
            // the one the binary gRPC contents carry: sums agree to 1e-12, counts exactly.
            assert!(
                (vh - vg).abs() <= 1e-12 * vh.abs().max(1.0),
                "{family}{lh} differs between HTTP JSON ({vh}) and gRPC ({vg})"
            );
        }
    }
    for (class, n) in &seen.classes {
        assert_eq!(
            g.get(
                "inferwatch_predictions_total",
                &[("route", "infer"), ("model", "iris"), ("class", class)]
            ),
            Some(*n as f64),
            "class {class}"
        );
    }
    assert_eq!(
        g.get(
            "inferwatch_prediction_confidence_count",
            &[("route", "infer"), ("model", "iris")]
        ),
        Some(seen.rows as f64)
    );
    via_http.shutdown().await;
    via_grpc.shutdown().await;
    drop(server);
}

/// ONNX shadows fed from gRPC traffic (the decoded raw contents): agreement with the live
/// answers equals what the client computes itself with onnxruntime on the same inputs. An HTTP
/// shadow target at MLServer's own gRPC port gets every call replayed over h2c and agrees on
/// every row. Feedback
/// joins ground truth to gRPC calls by the request id in their metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onnx_shadow_fed_from_grpc_traffic_agrees_with_independent_truth() {
    use inferwatch::shadow::config::{ShadowKind, ShadowTargetConfig};
    let python = peers_python(&["mlserver", "mlserver_sklearn", "sklearn"]);
    peers_python(&["tritonclient.grpc", "onnxruntime"]);
    let ort = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.venv-peers/ORT_DYLIB_PATH"
    ))
    .expect("run scripts/install-peers.sh: .venv-peers/ORT_DYLIB_PATH");
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
    let dir = tempfile::tempdir().unwrap();
    let (server, _, grpc_port) = start_mlserver(&python, dir.path()).await;

    let mut cfg = test_config(&format!("http://127.0.0.1:{grpc_port}"));
    cfg.proxy.upstream_protocol = UpstreamProtocol::H2c;
    cfg.proxy.routes = vec![grpc_route(Protocol::KserveV2)];
    let onnx = |name: &str, file: &str| ShadowTargetConfig {
        name: name.into(),
        route: "grpc".into(),
        kind: ShadowKind::Onnx,
        sample_ratio: 1.0,
        max_in_flight: 64,
        model_path: format!("{models}/{file}"),
        label_output: "label".into(),
        score_output: "probabilities".into(),
        ..ShadowTargetConfig::default()
    };
    let token = dir.path().join("feedback.token");
    std::fs::write(&token, "s3cret\n").unwrap();
    cfg.feedback.enabled = true;
    cfg.feedback.token_file = token.display().to_string();
    cfg.shadow.onnx_library = ort.trim().to_string();
    cfg.shadow.queue_capacity = 4096;
    cfg.shadow.targets = vec![
        onnx("onnx_same", "iris.onnx"),
        onnx("onnx_perturbed", "iris_perturbed.onnx"),
        ShadowTargetConfig {
            name: "http_same".into(),
            route: "grpc".into(),
            kind: ShadowKind::Http,
            sample_ratio: 1.0,
            max_in_flight: 64,
            url: format!("http://127.0.0.1:{grpc_port}"),
            ..ShadowTargetConfig::default()
        },
    ];
    let sc = Sidecar::start(cfg).await;
    let seen = run_client(
        &python,
        vec![
            "onnx".into(),
            sc.proxy_addr.to_string(),
            "120".into(),
            models.into(),
        ],
    )
    .await;
    let rows = seen.rows as f64;
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
        let disagreeing = s.sum(
            "inferwatch_shadow_comparisons_total",
            &[("target", target), ("result", "disagree")],
        );
        eprintln!("shadow {target} over gRPC: {disagreeing} of {rows} rows disagree");
        assert_eq!(disagreeing, seen.disagree[key] as f64, "{target}");
        assert_eq!(
            s.get(
                "inferwatch_shadow_requests_total",
                &[("target", target), ("outcome", "ok")]
            ),
            Some(seen.infer_ok as f64)
        );
    }
    assert!(seen.disagree["iris_perturbed"] > seen.disagree["iris"]);
    // MLServer's gRPC port as its own shadow: every call replayed over h2c, every row agrees.
    assert_eventually!(
        sc.scrape().await.sum(
            "inferwatch_shadow_requests_total",
            &[("target", "http_same")]
        ) >= seen.infer_ok as f64,
        Duration::from_secs(30)
    );
    let s = sc.scrape().await;
    let same = |k: &str, v: &str| s.sum(k, &[("target", "http_same"), ("result", v)]);
    eprintln!(
        "gRPC shadow http_same: {} agree, {} disagree, {} incomparable",
        same("inferwatch_shadow_comparisons_total", "agree"),
        same("inferwatch_shadow_comparisons_total", "disagree"),
        same("inferwatch_shadow_comparisons_total", "incomparable")
    );
    assert_eq!(
        s.get(
            "inferwatch_shadow_requests_total",
            &[("target", "http_same"), ("outcome", "ok")]
        ),
        Some(seen.infer_ok as f64),
        "every gRPC call replayed to the gRPC shadow"
    );
    assert_eq!(same("inferwatch_shadow_comparisons_total", "agree"), rows);
    assert_eq!(
        s.get(
            "inferwatch_shadow_agreement_ratio",
            &[("target", "http_same"), ("window", "1h")]
        ),
        Some(1.0)
    );

    // Feedback: the true class of every call, as the client received it, except that every
    // other call gets its first row's class wrong.
    let mut labels = Vec::new();
    let mut wrong = 0.0;
    for (i, (id, classes)) in seen.live.iter().enumerate() {
        let mut label: Vec<String> = classes.clone();
        if i % 2 == 1 {
            label[0] = ((label[0].parse::<u32>().unwrap() + 1) % 3).to_string();
            wrong += 1.0;
        }
        labels.push(serde_json::json!({"request_id": id, "label": label}));
    }
    assert_eventually!(
        sc.scrape()
            .await
            .get("inferwatch_feedback_pending_predictions", &[])
            == Some(seen.live.len() as f64)
    );
    let req = Request::post(sc.admin_url("/feedback"))
        .header("authorization", "Bearer s3cret")
        .header("content-type", "application/json")
        .body(full(serde_json::Value::Array(labels).to_string()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let s = sc.scrape().await;
    let feedback = |result| s.get("inferwatch_feedback_total", &[("result", result)]);
    assert_eq!(feedback("correct"), Some(seen.live.len() as f64 - wrong));
    assert_eq!(feedback("incorrect"), Some(wrong));
    sc.shutdown().await;
    drop(server);
}

/// `inferwatch bench --protocol kserve_v2_grpc` against MLServer's gRPC port, and the same
/// bench over HTTP JSON against its REST port: both run clean (figures printed); a gRPC bench
/// for a model the server lacks fails every query as `grpc_status`, not as a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_over_grpc_and_over_http_against_the_same_mlserver() {
    use inferwatch::bench::client::Target;
    use inferwatch::bench::config::BenchConfig;
    use inferwatch::bench::{requests, run_bench, Scenario};
    let python = peers_python(&["mlserver", "mlserver_sklearn", "sklearn"]);
    let dir = tempfile::tempdir().unwrap();
    let (server, http_port, grpc_port) = start_mlserver(&python, dir.path()).await;

    let grpc = |model: &str| {
        let mut c = BenchConfig::new(
            Target::parse(&format!("http://127.0.0.1:{grpc_port}/{model}")).unwrap(),
            Protocol::KserveV2,
            Scenario::SingleStream,
        );
        c.grpc = true;
        c.requests = std::sync::Arc::new(vec![requests::default_grpc(model)]);
        c.duration = Duration::from_millis(300);
        c.min_queries = 100;
        c
    };
    let mut http = BenchConfig::new(
        Target::parse(&format!(
            "http://127.0.0.1:{http_port}/v2/models/iris/infer"
        ))
        .unwrap(),
        Protocol::KserveV2,
        Scenario::SingleStream,
    );
    http.duration = Duration::from_millis(300);
    http.min_queries = 100;

    for (name, cfg) in [("gRPC", grpc("iris")), ("HTTP JSON", http)] {
        let r = run_bench(&cfg).await.unwrap();
        let l = r.latency.clone().unwrap();
        eprintln!(
            "bench {name} single-stream vs MLServer: {} queries, p50 {:.2} ms, p90 {:.2} ms, {:.0} q/s",
            r.issued,
            l.p50 * 1e3,
            l.p90 * 1e3,
            r.achieved_qps
        );
        assert!(r.issued >= 100, "{name}");
        assert_eq!(r.errors, 0, "{name}: {:?}", r.error_kinds);
        assert_eq!(r.completed_ok, r.issued, "{name}");
    }
    let mut missing = grpc("no-such-model");
    missing.min_queries = 20;
    let r = run_bench(&missing).await.unwrap();
    assert_eq!(r.completed_ok, 0);
    assert_eq!(
        r.error_kinds.get("grpc_status"),
        Some(&r.issued),
        "{:?}",
        r.error_kinds
    );
    drop(server);
}
