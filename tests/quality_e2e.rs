//! End to end: a real sidecar in front of a real upstream that starts failing 10% of requests at
//! a known moment. A p-chart on `request_error:infer` (100 ms subgroups) learns its baseline,
//! stays quiet while the upstream is healthy, and alarms within about a subgroup of the change;
//! the counter records the rule, the baseline lands in the state file, and `promtool check
//! metrics` is clean on the scrape.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use inferwatch::quality::config::{ChartConfig, ChartKind};
use support::*;

const LABELS: &[(&str, &str)] = &[("chart", "infer_errors"), ("signal", "request_error:infer")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p_chart_alarms_when_the_upstream_starts_failing() {
    let degraded = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let (d, s) = (degraded.clone(), served.clone());
    let up = Upstream::start(move |_req: Request<hyper::body::Incoming>| {
        let n = s.fetch_add(1, Ordering::Relaxed);
        // After the change, every tenth request fails: 10% exactly, no randomness in the test.
        let status = if d.load(Ordering::Relaxed) && n % 10 == 0 {
            500
        } else {
            200
        };
        async move { Response::builder().status(status).body(full("{}")).unwrap() }
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("quality.json");
    let mut cfg = test_config(&up.url());
    cfg.quality.state_file = state.display().to_string();
    cfg.quality.charts.push(ChartConfig {
        name: "infer_errors".into(),
        signal: "request_error:infer".into(),
        kind: ChartKind::P,
        subgroup_interval_secs: 0.1,
        phase1_subgroups: 10,
        clear_after_subgroups: 50,
        ..ChartConfig::default()
    });
    let sc = Sidecar::start(cfg).await;

    // Steady traffic from four concurrent clients until the test ends.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, stop) = (sc.url("/v2/models/m/infer"), stop.clone());
        clients.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = c.request(Request::get(&url).body(full("")).unwrap()).await {
                    let _ = r.into_body().collect().await;
                }
            }
        }));
    }

    // Phase I: 10 subgroups of 100 ms.
    assert_eventually!(
        sc.scrape().await.get("inferwatch_spc_phase1", LABELS) == Some(0.0),
        Duration::from_secs(5)
    );
    let saved = std::fs::read_to_string(&state).expect("state file written after Phase I");
    assert!(saved.contains("\"infer_errors\""), "{saved}");

    // Healthy for 1.5 s (15 subgroups): never an alarm.
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < quiet_until {
        let s = sc.scrape().await;
        assert_eq!(s.get("inferwatch_spc_alarm", LABELS), Some(0.0));
        assert_eq!(s.sum("inferwatch_spc_alarms_total", LABELS), 0.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = sc.scrape().await;
    let ucl = before
        .get("inferwatch_spc_upper_control_limit", LABELS)
        .unwrap();
    assert!(ucl > 0.0, "the chart is plotting");

    // The change: 10% of requests now fail. With the learned p0 (no failures: half an event
    // over Phase I) the upper limit is one failure per subgroup, so the first full subgroup after
    // the change (two or more failures) signals: expected delay 100-200 ms.
    let changed = tokio::time::Instant::now();
    degraded.store(true, Ordering::Relaxed);
    assert_eventually!(
        sc.scrape().await.get("inferwatch_spc_alarm", LABELS) == Some(1.0),
        Duration::from_secs(3)
    );
    let delay = changed.elapsed();
    let after = sc.scrape().await;
    let limit_rule = [LABELS[0], LABELS[1], ("rule", "limit")];
    assert!(
        after
            .get("inferwatch_spc_alarms_total", &limit_rule)
            .unwrap()
            >= 1.0
    );
    assert!(after.get("inferwatch_spc_statistic", LABELS).unwrap() > 0.0);
    eprintln!("alarm {} ms after the change", delay.as_millis());
    assert!(delay < Duration::from_secs(1), "alarm took {delay:?}");

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    if let Err(report) = promtool_check(&sc.scrape_text().await) {
        panic!("promtool check metrics:\n{report}");
    }
    sc.shutdown().await;
}

/// The protocol adapters feed the quality engine: a Shewhart X-bar chart on the prediction
/// confidence of a KServe V2 route stays quiet while the model is sure of itself and alarms
/// once its answers turn hesitant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidence_chart_fed_by_the_kserve_adapter_alarms_on_hesitant_answers() {
    let degraded = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let (d, s) = (degraded.clone(), served.clone());
    let up = Upstream::start(move |_req: Request<hyper::body::Incoming>| {
        let n = s.fetch_add(1, Ordering::Relaxed);
        // Healthy: top-class probability 0.90..0.98; degraded: 0.55..0.63.
        let base = if d.load(Ordering::Relaxed) { 0.55 } else { 0.90 };
        let p = base + 0.02 * (n % 5) as f64;
        let body = format!(
            r#"{{"model_name":"m","outputs":[{{"name":"probs","shape":[1,2],"datatype":"FP32","data":[{p},{}]}}]}}"#,
            1.0 - p
        );
        async move { Response::new(full(body)) }
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.routes[0].protocol = inferwatch::routes::config::Protocol::KserveV2;
    cfg.quality.charts.push(ChartConfig {
        name: "infer_confidence".into(),
        signal: "confidence:infer".into(),
        kind: ChartKind::Shewhart,
        subgroup_size: 5,
        phase1_subgroups: 10,
        ..ChartConfig::default()
    });
    let sc = Sidecar::start(cfg).await;
    let labels: &[(&str, &str)] = &[
        ("chart", "infer_confidence"),
        ("signal", "confidence:infer"),
    ];
    let body = r#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1.0,2.0]}]}"#;
    let c = client();
    let send = |n: usize| {
        let c = c.clone();
        let url = sc.url("/v2/models/m/infer");
        async move {
            for _ in 0..n {
                let r = c
                    .request(Request::post(&url).body(full(body)).unwrap())
                    .await
                    .unwrap();
                r.into_body().collect().await.unwrap();
            }
        }
    };
    // Phase I (50 rows) and 50 more healthy rows: no alarm.
    send(100).await;
    assert_eventually!(sc.scrape().await.get("inferwatch_spc_phase1", labels) == Some(0.0));
    let s = sc.scrape().await;
    assert_eq!(s.get("inferwatch_spc_alarm", labels), Some(0.0));
    assert_eq!(s.sum("inferwatch_spc_alarms_total", labels), 0.0);
    // Hesitant answers: the subgroup means fall far below the lower control limit.
    degraded.store(true, Ordering::Relaxed);
    send(25).await;
    assert_eventually!(sc.scrape().await.get("inferwatch_spc_alarm", labels) == Some(1.0));
    let s = sc.scrape().await;
    assert!(s.sum("inferwatch_spc_alarms_total", labels) >= 1.0);
    assert_eq!(
        s.get(
            "inferwatch_predictions_total",
            &[("route", "infer"), ("class", "0")]
        ),
        Some(125.0),
        "every answer was inspected"
    );
    sc.shutdown().await;
}
