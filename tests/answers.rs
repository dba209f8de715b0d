//! Shadow isolation (a hanging and a refusing target leave the live path alone; their replays
//! are dropped and counted), the ONNX library's start-up error, and the feedback join end to
//! end through `POST /feedback`.

mod support;

use std::time::{Duration, Instant};

use http::{Method, Request, Response};
use http_body_util::BodyExt;
use inferwatch::app::App;
use inferwatch::config::Config;
use inferwatch::routes::config::{Protocol, RouteConfig};
use inferwatch::shadow::config::{ShadowKind, ShadowTargetConfig};
use support::*;

const ANSWER: &str = r#"{"model_name":"iris","outputs":[{"name":"predict","shape":[1],"datatype":"INT64","data":[1]}]}"#;
const INFER: &str =
    r#"{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[5.1,3.5,1.4,0.2]}]}"#;

async fn kserve_upstream() -> Upstream {
    Upstream::start(|_req| async {
        let mut r = Response::new(full(ANSWER));
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r
    })
    .await
}

fn kserve_config(upstream: &str) -> Config {
    let mut cfg = test_config(upstream);
    cfg.proxy.routes = vec![RouteConfig {
        name: "infer".into(),
        path_prefix: "/v2/models/".into(),
        protocol: Protocol::KserveV2,
        model: "m".into(),
        ..RouteConfig::default()
    }];
    cfg
}

async fn infer(sc: &Sidecar, id: Option<&str>) -> Duration {
    let mut req =
        Request::post(sc.url("/v2/models/iris/infer")).header("content-type", "application/json");
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    let t = Instant::now();
    let resp = client()
        .request(req.body(full(INFER)).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    t.elapsed()
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99).div_ceil(100) - 1]
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_and_refusing_shadows_leave_the_live_path_alone() {
    let upstream = kserve_upstream().await;
    // Accepts connections and never answers.
    let hang = RawUpstream::start(|s| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(s);
    })
    .await;
    let refused = format!("http://127.0.0.1:{}", free_port());
    let plain = Sidecar::start(kserve_config(&upstream.url())).await;
    let mut cfg = kserve_config(&upstream.url());
    let target = |name: &str, url: &str| ShadowTargetConfig {
        name: name.into(),
        route: "infer".into(),
        kind: ShadowKind::Http,
        sample_ratio: 1.0,
        max_in_flight: 4,
        timeout_secs: 0.5,
        url: url.into(),
        ..ShadowTargetConfig::default()
    };
    cfg.shadow.targets = vec![target("hangs", &hang.url()), target("refuses", &refused)];
    cfg.shadow.queue_capacity = 16;
    let shadowed = Sidecar::start(cfg).await;

    // Warm both, then alternate so that machine noise hits both the same way.
    for _ in 0..50 {
        infer(&plain, None).await;
        infer(&shadowed, None).await;
    }
    let rounds = 1500;
    let rss_before = resident_bytes();
    let (mut base, mut with) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        if i % 2 == 0 {
            base.push(infer(&plain, None).await);
            with.push(infer(&shadowed, None).await);
        } else {
            with.push(infer(&shadowed, None).await);
            base.push(infer(&plain, None).await);
        }
    }
    let rss_growth = resident_bytes().saturating_sub(rss_before);
    let (p_base, p_with) = (p99(base), p99(with));
    eprintln!(
        "live p99 over {rounds} requests: {p_base:?} without shadows, {p_with:?} with a hanging and a refusing shadow; RSS growth {} KiB",
        rss_growth / 1024
    );
    assert!(
        p_with <= p_base * 2 + Duration::from_millis(2),
        "p99 {p_with:?} with shadows vs {p_base:?} without"
    );
    // Memory stays flat: queues and in-flight replays are bounded.
    assert!(rss_growth < 32 << 20, "RSS grew {} MiB", rss_growth >> 20);

    let total = (rounds + 50) as f64;
    let s = shadowed.scrape().await;
    let count = |t: &str, o: &str| {
        s.get(
            "inferwatch_shadow_requests_total",
            &[("target", t), ("outcome", o)],
        )
        .unwrap_or(0.0)
    };
    // Every sampled request is accounted for: replayed, failed, timed out or dropped (a few
    // may still be in flight at the scrape).
    for t in ["hangs", "refuses"] {
        let seen = count(t, "ok") + count(t, "error") + count(t, "timeout") + count(t, "dropped");
        assert!(
            seen >= total - 8.0 && seen <= total,
            "{t}: {seen} of {total}"
        );
        eprintln!(
            "{t}: ok {} error {} timeout {} dropped {}",
            count(t, "ok"),
            count(t, "error"),
            count(t, "timeout"),
            count(t, "dropped")
        );
    }
    assert!(count("hangs", "dropped") > total * 0.5);
    assert!(count("hangs", "timeout") > 0.0);
    assert!(count("refuses", "error") > 0.0);
    assert_eq!(count("hangs", "ok") + count("refuses", "ok"), 0.0);
    if let Err(report) = promtool_check(&shadowed.scrape_text().await) {
        panic!("promtool check metrics:\n{report}");
    }
    // Feedback is off: its endpoint does not exist.
    let resp = client()
        .request(
            Request::post(shadowed.admin_url("/feedback"))
                .body(full("{}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    shadowed.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test]
async fn missing_onnx_library_is_a_clear_startup_error_only_with_an_onnx_target() {
    let mut cfg = kserve_config("http://127.0.0.1:9");
    cfg.shadow.onnx_library = "/nonexistent/libonnxruntime.so.1.23.2".into();
    cfg.shadow.targets = vec![ShadowTargetConfig {
        name: "cand".into(),
        route: "infer".into(),
        kind: ShadowKind::Http,
        url: "http://127.0.0.1:9".into(),
        ..ShadowTargetConfig::default()
    }];
    assert!(cfg.validate().is_empty());
    // An HTTP target alone never opens the library.
    assert!(App::build(cfg.clone()).is_ok());
    cfg.shadow.targets[0].kind = ShadowKind::Onnx;
    cfg.shadow.targets[0].model_path = "models/iris.onnx".into();
    cfg.shadow.targets[0].label_output = "label".into();
    let err = App::build(cfg).err().expect("build must fail").to_string();
    assert_eq!(
        err,
        "shadow.onnx_library: /nonexistent/libonnxruntime.so.1.23.2 does not exist (an onnx shadow target is configured; point it at libonnxruntime.so.<version>)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_labels_join_recent_predictions() {
    let upstream = kserve_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let mut cfg = kserve_config(&upstream.url());
    cfg.feedback.enabled = true;
    cfg.feedback.token_file = token.display().to_string();
    cfg.feedback.ttl_secs = 2.0;
    let sc = Sidecar::start(cfg).await;
    for i in 0..10 {
        infer(&sc, Some(&format!("r{i}"))).await;
    }
    infer(&sc, None).await;
    assert_eventually!(
        sc.scrape()
            .await
            .get("inferwatch_feedback_pending_predictions", &[])
            == Some(10.0)
    );
    let post = |body: String, auth: Option<&'static str>| {
        let url = sc.admin_url("/feedback");
        async move {
            let mut req = Request::builder().method(Method::POST).uri(url);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = client()
                .request(req.body(full(body)).unwrap())
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let labels: Vec<serde_json::Value> = (0..10)
        .map(|i| serde_json::json!({"request_id": format!("r{i}"), "label": if i < 7 { 1 } else { 2 }}))
        .chain([serde_json::json!({"request_id": "nobody", "label": 1})])
        .collect();
    let body = serde_json::to_string(&labels).unwrap();
    assert_eq!(post(body.clone(), None).await.0, 401);
    assert_eq!(post(body.clone(), Some("Bearer wrong")).await.0, 401);
    let (status, reply) = post(body, Some("Bearer t0ken")).await;
    assert_eq!(status, 200, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(
        (
            reply["correct"].as_u64(),
            reply["incorrect"].as_u64(),
            reply["unknown"].as_u64()
        ),
        (Some(7), Some(3), Some(1))
    );
    let (status, _) = post("{\"request_id\": 5}".into(), Some("Bearer t0ken")).await;
    assert_eq!(status, 400);
    // Labelled twice, and too late.
    let (_, reply) = post(
        r#"{"request_id": "r0", "label": 1}"#.into(),
        Some("Bearer t0ken"),
    )
    .await;
    assert!(reply.contains("\"duplicate\":1"), "{reply}");
    infer(&sc, Some("late")).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (_, reply) = post(
        r#"{"request_id": "late", "label": 1}"#.into(),
        Some("Bearer t0ken"),
    )
    .await;
    assert!(reply.contains("\"expired\":1"), "{reply}");
    let s = sc.scrape().await;
    let ratio = s
        .get(
            "inferwatch_labeled_accuracy_ratio",
            &[("route", "infer"), ("model", "iris"), ("window", "1h")],
        )
        .unwrap();
    assert!((ratio - 0.7).abs() < 1e-12, "{ratio}");
    for (r, n) in [
        ("correct", 7.0),
        ("incorrect", 3.0),
        ("unknown", 1.0),
        ("duplicate", 1.0),
        ("expired", 1.0),
    ] {
        assert_eq!(
            s.get("inferwatch_feedback_total", &[("result", r)]),
            Some(n),
            "{r}"
        );
    }
    if let Err(report) = promtool_check(&sc.scrape_text().await) {
        panic!("promtool check metrics:\n{report}");
    }
    sc.shutdown().await;
}
