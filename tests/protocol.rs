//! The inspector end to end against a scripted upstream: input anomalies, label caps, quality
//! signals, and bad payloads counted as malformed while the client still gets them unchanged.

mod support;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use inferwatch::app::App;
use inferwatch::protocol::SignalSink;
use inferwatch::routes::config::{FeatureBound, PredictionConfig, Protocol, RouteConfig};
use support::*;

/// Replies with the body in `x-reply` (`\n` spelled `\\n`), the status in `x-status` and the
/// content type in `x-content-type`, so each request scripts its own answer.
async fn scripted_upstream() -> Upstream {
    Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        let h = req.headers();
        let reply = h
            .get("x-reply")
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        // `\\n` escapes become newlines byte by byte, so non-UTF-8 replies can have them too.
        let mut unescaped = Vec::with_capacity(reply.len());
        let mut i = 0;
        while i < reply.len() {
            if reply[i..].starts_with(b"\\n") {
                unescaped.push(b'\n');
                i += 2;
            } else {
                unescaped.push(reply[i]);
                i += 1;
            }
        }
        let reply = unescaped;
        let status: u16 = h
            .get("x-status")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(200);
        let ct = h
            .get("x-content-type")
            .cloned()
            .unwrap_or_else(|| "application/json".parse().unwrap());
        req.into_body().collect().await.unwrap();
        Response::builder()
            .status(status)
            .header("content-type", ct)
            .body(full(reply))
            .unwrap()
    })
    .await
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, f64)>>);

impl SignalSink for Recorder {
    fn observe(&self, signal: &str, value: f64) {
        self.0.lock().unwrap().push((signal.to_string(), value));
    }
}

fn tensor(name: &str, shape: &[i64], datatype: &str, data: &str) -> String {
    format!(r#"{{"name": "{name}", "shape": {shape:?}, "datatype": "{datatype}", "data": {data}}}"#)
}

fn infer(inputs: &str, outputs: &str) -> (String, String) {
    (
        format!(r#"{{"inputs": [{inputs}]}}"#),
        format!(r#"{{"model_name": "a", "outputs": [{outputs}]}}"#),
    )
}

/// POST `body` to `path` with a scripted reply; returns what the client received.
async fn send(
    sc: &Sidecar,
    path: &str,
    body: &str,
    reply: &[u8],
    extra: &[(&str, &str)],
) -> (u16, Bytes) {
    let mut req = Request::post(sc.url(path))
        .header("x-reply", http::HeaderValue::from_bytes(reply).unwrap());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = client()
        .request(req.body(full(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn anomalies_caps_signals_and_malformed_payloads() {
    let up = scripted_upstream().await;
    let mut cfg = test_config(&up.url());
    cfg.inspection.max_class_labels = 2;
    cfg.inspection.max_model_labels = 1;
    cfg.inspection.max_features_tracked = 1;
    cfg.proxy.routes = vec![
        RouteConfig {
            name: "kserve".into(),
            path_prefix: "/v2/models/".into(),
            protocol: Protocol::KserveV2,
            model: "m".into(),
            prediction: PredictionConfig {
                feature_bounds: vec![FeatureBound {
                    feature: 0,
                    min: 0.0,
                    max: 10.0,
                }],
                ..PredictionConfig::default()
            },
            ..RouteConfig::default()
        },
        RouteConfig {
            name: "chat".into(),
            path_prefix: "/v1/".into(),
            protocol: Protocol::Openai,
            model: "m".into(),
            ..RouteConfig::default()
        },
        RouteConfig {
            name: "custom".into(),
            path_prefix: "/predict".into(),
            protocol: Protocol::Json,
            model: "fraud".into(),
            prediction: PredictionConfig {
                class_pointer: "/label".into(),
                score_pointer: "/p".into(),
                ..PredictionConfig::default()
            },
            ..RouteConfig::default()
        },
    ];
    let recorder = Arc::new(Recorder::default());
    let mut app = App::build(cfg).unwrap();
    app.set_signal_sink(recorder.clone());
    let sc = Sidecar::start_app(app).await;
    let path = "/v2/models/a/infer";
    let labels = |data: &str, n: i64| tensor("label", &[n, 1], "BYTES", data);

    // NaN, and 20 outside feature 0's [0, 10].
    let (req, resp) = infer(
        &tensor("x", &[2, 2], "FP32", r#"[1, 2, 20, "NaN"]"#),
        &labels(r#"["x", "y"]"#, 2),
    );
    send(&sc, path, &req, resp.as_bytes(), &[]).await;
    // Three features instead of two; a third class past the cap of two.
    let (req, resp) = infer(
        &tensor("x", &[1, 3], "FP32", "[1, 2, 3]"),
        &labels(r#"["z"]"#, 1),
    );
    send(&sc, path, &req, resp.as_bytes(), &[]).await;
    // Same shape as the first, another datatype.
    let (req, resp) = infer(
        &tensor("x", &[1, 2], "INT64", "[1, 2]"),
        &labels(r#"["x"]"#, 1),
    );
    send(&sc, path, &req, resp.as_bytes(), &[]).await;
    // A second model past the cap of one.
    let (req, resp) = infer(
        &tensor("x", &[1, 2], "FP32", "[1, 2]"),
        &labels(r#"["x"]"#, 1),
    );
    let resp = resp.replace(r#""model_name": "a""#, r#""model_name": "b""#);
    send(&sc, path, &req, resp.as_bytes(), &[]).await;
    // Not an inference; an error status.
    send(&sc, "/v2/models/a/ready", "", b"", &[]).await;
    send(&sc, path, &req, b"{}", &[("x-status", "500")]).await;
    // Malformed: the client still gets exactly what the upstream sent.
    let (status, body) = send(&sc, path, &req, b"{\"outputs\": [", &[]).await;
    assert_eq!((status, &body[..]), (200, &b"{\"outputs\": ["[..]));
    let sse = [("x-content-type", "text/event-stream")];
    let chat = r#"{"model": "llm", "stream": true}"#;
    let bad_utf8 =
        b"data: {\"choices\": [{\"delta\": {\"content\": \"\xff\"}}]}\\n\\ndata: [DONE]\\n\\n";
    let (_, body) = send(&sc, "/v1/chat/completions", chat, bad_utf8, &sse).await;
    let sent = b"data: {\"choices\": [{\"delta\": {\"content\": \"\xff\"}}]}\n\ndata: [DONE]\n\n";
    assert_eq!(&body[..], &sent[..]);
    let truncated = br#"data: {"choices": [{"delta": {"content": "a"}}]}\n\ndata: {"cho"#;
    send(&sc, "/v1/chat/completions", chat, truncated, &sse).await;
    // JSON pointers.
    send(
        &sc,
        "/predict",
        r#"{"x": 1}"#,
        br#"{"label": "fraud", "p": 0.8}"#,
        &[],
    )
    .await;

    assert_eventually!(sc.scrape().await.sum("inferwatch_inspection_total", &[]) == 10.0);
    let s = sc.scrape().await;
    let result = |route: &str, r: &str| {
        s.get(
            "inferwatch_inspection_total",
            &[("route", route), ("result", r)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(result("kserve", "parsed"), 4.0);
    assert_eq!(result("kserve", "skipped_endpoint"), 1.0);
    assert_eq!(result("kserve", "skipped_status"), 1.0);
    assert_eq!(result("kserve", "malformed"), 1.0);
    assert_eq!(result("chat", "malformed"), 2.0);
    assert_eq!(result("custom", "parsed"), 1.0);

    let anomaly = |kind: &str| {
        s.get(
            "inferwatch_input_anomalies_total",
            &[("route", "kserve"), ("model", "a"), ("kind", kind)],
        )
    };
    assert_eq!(anomaly("nan"), Some(1.0));
    assert_eq!(anomaly("out_of_bounds"), Some(1.0));
    assert_eq!(anomaly("shape_change"), Some(1.0));
    assert_eq!(anomaly("dtype_change"), Some(1.0));
    assert_eq!(anomaly("inf"), None);

    let class = |model: &str, class: &str| {
        s.get(
            "inferwatch_predictions_total",
            &[("route", "kserve"), ("model", model), ("class", class)],
        )
    };
    assert_eq!(class("a", "x"), Some(2.0));
    assert_eq!(class("a", "y"), Some(1.0));
    assert_eq!(class("a", "other"), Some(1.0));
    assert_eq!(class("other", "x"), Some(1.0));
    assert_eq!(
        s.get(
            "inferwatch_predictions_total",
            &[("route", "custom"), ("model", "fraud"), ("class", "fraud")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "inferwatch_prediction_confidence_sum",
            &[("route", "custom"), ("model", "fraud")]
        ),
        Some(0.8)
    );
    assert_eq!(
        s.get(
            "inferwatch_batch_size_count",
            &[("route", "kserve"), ("model", "a")]
        ),
        Some(3.0)
    );

    // Feature 0 only (max_features_tracked = 1), finite values only, per row; model b (capped
    // to `other`) feeds the route's signal too.
    let signals = recorder.0.lock().unwrap().clone();
    let feature0: Vec<f64> = signals
        .iter()
        .filter(|(n, _)| n == "feature_0:kserve")
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(feature0, vec![1.0, 20.0, 1.0, 1.0, 1.0]);
    assert!(!signals.iter().any(|(n, _)| n.contains("feature_1")));
    assert!(signals.contains(&("confidence:custom".to_string(), 0.8)));

    if let Err(report) = promtool_check(&sc.scrape_text().await) {
        panic!("promtool check metrics:\n{report}");
    }
    sc.shutdown().await;
}
