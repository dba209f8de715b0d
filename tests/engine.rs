//! Engine saturation: the sidecar scrapes a model server's own `/metrics` off the live path and
//! exports the normalised set. Served here from text written from vLLM's documented names (no
//! GPU to run vLLM on); an endpoint that answers 404, garbage, or is down is counted by reason
//! and the proxy keeps serving.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use support::*;

const VLLM: &str = include_str!("fixtures/engine/vllm.prom");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_metrics_are_normalised_and_bad_endpoints_counted() {
    // /metrics answers: the fixture, then 404, then garbage, then the fixture again; other
    // paths are the model server's inference answers.
    let scrapes = Arc::new(AtomicUsize::new(0));
    let seen = scrapes.clone();
    let up = Upstream::start(move |req: Request<hyper::body::Incoming>| {
        let n = if req.uri().path() == "/metrics" {
            seen.fetch_add(1, Ordering::SeqCst)
        } else {
            usize::MAX
        };
        async move {
            match n {
                usize::MAX => Response::new(full("{}")),
                0..=2 => Response::new(full(VLLM)),
                3..=4 => Response::builder().status(404).body(full("no")).unwrap(),
                5..=6 => Response::new(full("<html>not metrics</html>")),
                _ => Response::new(full(VLLM)),
            }
        }
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.engine.metrics_url = format!("{}/metrics", up.url());
    cfg.engine.interval_secs = 0.2;
    cfg.engine.timeout_secs = 0.1;
    let sc = Sidecar::start(cfg).await;
    let engine = [("engine", "auto")];
    assert_eventually!(
        sc.scrape().await.get("inferwatch_engine_up", &engine) == Some(1.0),
        Duration::from_secs(10)
    );
    let s = sc.scrape().await;
    let got = |name: &str| s.get(name, &engine);
    assert_eq!(got("inferwatch_engine_requests_running"), Some(15.0));
    assert_eq!(got("inferwatch_engine_requests_waiting"), Some(7.0));
    assert_eq!(got("inferwatch_engine_kv_cache_usage_ratio"), Some(0.93));
    // The first scrape's ratio is the engine's lifetime one: 400 hits of 1000 queries.
    assert_eq!(got("inferwatch_engine_prefix_cache_hit_ratio"), Some(0.4));
    assert_eq!(got("inferwatch_engine_preemptions_total"), Some(5.0));
    assert_eq!(got("inferwatch_engine_queue_seconds_total"), Some(12.5));
    assert_eq!(got("inferwatch_engine_compute_seconds_total"), Some(80.25));

    // 404 and garbage are counted by reason; the gauges keep their last good values and the
    // unchanged cumulative figures add nothing when the endpoint comes back.
    let failures = |s: &Scrape, reason: &str| {
        s.get(
            "inferwatch_engine_scrape_failures_total",
            &[("engine", "auto"), ("reason", reason)],
        )
    };
    assert_eventually!(
        {
            let s = sc.scrape().await;
            failures(&s, "status") == Some(2.0)
                && failures(&s, "garbage") == Some(2.0)
                && s.get("inferwatch_engine_up", &engine) == Some(1.0)
        },
        Duration::from_secs(10)
    );
    let s = sc.scrape().await;
    assert_eq!(
        s.get("inferwatch_engine_preemptions_total", &engine),
        Some(5.0)
    );
    assert_eq!(
        s.get("inferwatch_engine_requests_running", &engine),
        Some(15.0)
    );
    // The proxy never noticed.
    let (status, _) = get(&sc.url("/v2/models/m/infer")).await;
    assert_eq!(status, 200);
    if let Err(report) = promtool_check(&sc.scrape_text().await) {
        panic!("promtool check metrics:\n{report}");
    }
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_endpoint_that_is_down_is_counted_and_never_fatal() {
    let up =
        Upstream::start(|_req: Request<hyper::body::Incoming>| async { Response::new(full("{}")) })
            .await;
    let mut cfg = test_config(&up.url());
    cfg.engine.metrics_url = format!("http://127.0.0.1:{}/metrics", free_port());
    cfg.engine.kind = inferwatch::engine::config::EngineKind::Vllm;
    cfg.engine.interval_secs = 0.1;
    cfg.engine.timeout_secs = 0.05;
    let sc = Sidecar::start(cfg).await;
    assert_eventually!(
        sc.scrape()
            .await
            .get(
                "inferwatch_engine_scrape_failures_total",
                &[("engine", "vllm"), ("reason", "connect")]
            )
            .is_some_and(|n| n >= 2.0),
        Duration::from_secs(10)
    );
    let s = sc.scrape().await;
    assert_eq!(
        s.get("inferwatch_engine_up", &[("engine", "vllm")]),
        Some(0.0)
    );
    let (status, _) = get(&sc.url("/v2/models/m/infer")).await;
    assert_eq!(status, 200);
    sc.shutdown().await;
}

/// A real MLServer's own metrics endpoint: after inferences through the sidecar, the normalised
/// compute seconds equal the `model_infer_request_duration_sum` MLServer itself reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlserver_metrics_endpoint_feeds_compute_seconds() {
    let python = peers_python(&["mlserver", "mlserver_sklearn", "sklearn"]);
    let dir = tempfile::tempdir().unwrap();
    let mlserver = start_mlserver_iris(&python, dir.path()).await;
    let metrics_port = mlserver.metrics_port;
    let direct = mlserver.url();

    let mut cfg = test_config(&direct);
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    cfg.engine.metrics_url = metrics_url.clone();
    cfg.engine.interval_secs = 0.2;
    cfg.engine.timeout_secs = 0.15;
    let sc = Sidecar::start(cfg).await;
    let body = r#"{"inputs":[{"name":"input-0","shape":[2,4],"datatype":"FP64","data":[5.1,3.5,1.4,0.2,6.2,2.9,4.3,1.3]}]}"#;
    for _ in 0..5 {
        let req = Request::post(sc.url("/v2/models/iris/infer"))
            .header("content-type", "application/json")
            .body(full(body))
            .unwrap();
        let resp = client().request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    // MLServer's own figure, read the same way a Prometheus would.
    let own = || async {
        let (status, text) = get(&metrics_url).await;
        assert_eq!(status, 200);
        Scrape::parse(&text).sum("model_infer_request_duration_sum", &[])
    };
    let want = own().await;
    assert!(want > 0.0, "MLServer reported no inference time");
    let mlserver = [("engine", "auto")];
    assert_eventually!(
        sc.scrape()
            .await
            .get("inferwatch_engine_compute_seconds_total", &mlserver)
            .is_some_and(|got| (got - want).abs() < 1e-9),
        Duration::from_secs(30)
    );
    assert_eq!(
        sc.scrape().await.get("inferwatch_engine_up", &mlserver),
        Some(1.0)
    );
    sc.shutdown().await;
}
