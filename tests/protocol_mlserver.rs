//! A real KServe V2 server (MLServer serving an sklearn classifier trained on iris) behind the
//! sidecar, and the real `tritonclient.http` client in front: answers are identical with and
//! without the sidecar, and the prediction metrics count exactly the classes the server returned.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use http::Request;
use http_body_util::BodyExt;
use inferwatch::routes::config::{Protocol, RouteConfig};
use support::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mlserver_iris.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlserver_iris_through_the_sidecar_with_tritonclient() {
    let python = peers_python(&[
        "mlserver",
        "mlserver_sklearn",
        "sklearn",
        "tritonclient.http",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mlserver = start_mlserver_iris(&python, dir.path()).await;
    let direct = mlserver.url();

    let mut cfg = test_config(&direct);
    cfg.proxy.routes = vec![RouteConfig {
        name: "infer".into(),
        path_prefix: "/v2/models/".into(),
        protocol: Protocol::KserveV2,
        model: "m".into(),
        ..RouteConfig::default()
    }];
    let sc = Sidecar::start(cfg).await;
    let via = sc.url("");
    let client_run = {
        let python = python.clone();
        let direct = direct.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(python)
                .args([SCRIPT, "client", &via, &direct])
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert!(
        client_run.status.success(),
        "tritonclient run failed:\n{}{}",
        String::from_utf8_lossy(&client_run.stdout),
        String::from_utf8_lossy(&client_run.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&client_run.stdout).unwrap();
    let classes: BTreeMap<String, u64> =
        serde_json::from_value(summary["classes"].clone()).unwrap();
    let rows = summary["rows"].as_u64().unwrap() as f64;
    let requests = summary["requests"].as_u64().unwrap() as f64;
    assert_eq!(classes.len(), 3, "{classes:?}");

    let parsed = [("route", "infer"), ("result", "parsed")];
    assert_eventually!(
        sc.scrape()
            .await
            .sum("inferwatch_inspection_total", &parsed)
            == requests
    );
    let scrape = sc.scrape().await;
    for (class, n) in &classes {
        let got = scrape.get(
            "inferwatch_predictions_total",
            &[("route", "infer"), ("model", "iris"), ("class", class)],
        );
        assert_eq!(got, Some(*n as f64), "class {class}");
    }
    assert_eq!(
        scrape.sum("inferwatch_predictions_total", &[("route", "infer")]),
        rows
    );
    assert_eq!(
        scrape.get(
            "inferwatch_prediction_confidence_count",
            &[("route", "infer"), ("model", "iris")]
        ),
        Some(rows)
    );
    assert_eq!(
        scrape.get(
            "inferwatch_batch_size_sum",
            &[("route", "infer"), ("model", "iris")]
        ),
        Some(rows)
    );
    assert_eq!(
        scrape.sum("inferwatch_inspection_total", &[("result", "malformed")]),
        0.0
    );
    assert_eq!(
        scrape.sum("inferwatch_input_anomalies_total", &[]),
        0.0,
        "clean iris inputs raised anomalies"
    );
    let text = sc.scrape_text().await;
    if let Err(report) = promtool_check(&text) {
        panic!("promtool check metrics:\n{report}");
    }
    // The server is still healthy through the sidecar at the end.
    let resp = client()
        .request(
            Request::get(sc.url("/v2/models/iris/ready"))
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    sc.shutdown().await;
    drop(mlserver);
}
