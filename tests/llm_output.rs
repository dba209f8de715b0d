//! LLM output-quality signals: a scripted OpenAI-compatible upstream answers with known shares
//! of truncated, empty, refusing, non-JSON and off-schema answers (plain and streamed); the
//! signals the inspector offers equal those shares exactly.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use inferwatch::app::App;
use inferwatch::protocol::SignalSink;
use inferwatch::routes::config::{OutputConfig, Protocol, RouteConfig};
use support::*;

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, f64)>>);

impl SignalSink for Recorder {
    fn observe(&self, signal: &str, value: f64) {
        self.0.lock().unwrap().push((signal.to_string(), value));
    }
}

/// The cycle of answers: (text, finish reason). Per 10: 2 truncated, 2 empty, 1 refusal, 5
/// valid JSON documents, 4 of them valid against [`SCHEMA`] (`[1,2]` is not an object).
const ANSWERS: [(&str, &str); 10] = [
    (r#"{"a":1}"#, "stop"),
    (r#"{"b":2}"#, "stop"),
    ("", "stop"),
    ("I'm sorry, but I can't help with that.", "stop"),
    (r#"{"c":"#, "length"),
    ("[1,2]", "stop"),
    (r#"{"d":4}"#, "stop"),
    ("", "stop"),
    ("plain words", "length"),
    (r#"{"e":5}"#, "stop"),
];

/// Objects of integers, at least one property.
const SCHEMA: &str =
    r#"{"type": "object", "minProperties": 1, "additionalProperties": {"type": "integer"}}"#;

fn plain(i: usize) -> String {
    let (text, finish) = ANSWERS[i % 10];
    serde_json::json!({
        "model": "m", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 3, "completion_tokens": i % 10 + 1}
    })
    .to_string()
}

/// The same answer streamed in two pieces (usage in the last chunk).
fn streamed(i: usize) -> String {
    let (text, finish) = ANSWERS[i % 10];
    let (a, b) = text.split_at(text.len() / 2);
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        format!(
            "data: {}\n\n",
            serde_json::json!({"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    chunk(serde_json::json!({"role": "assistant", "content": a}), None)
        + &chunk(serde_json::json!({"content": b}), None)
        + &chunk(serde_json::json!({}), Some(finish))
        + &format!(
            "data: {}\n\ndata: [DONE]\n\n",
            serde_json::json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": i % 10 + 1}})
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_signals_equal_the_upstreams_shares() {
    let served = Arc::new(AtomicUsize::new(0));
    let up = Upstream::start(move |req: Request<hyper::body::Incoming>| {
        let i = served.fetch_add(1, Ordering::SeqCst);
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            if String::from_utf8_lossy(&body).contains("\"stream\":true") {
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(full(streamed(i)))
                    .unwrap()
            } else {
                Response::builder()
                    .header("content-type", "application/json")
                    .body(full(plain(i)))
                    .unwrap()
            }
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, SCHEMA).unwrap();
    let mut cfg = test_config(&up.url());
    cfg.proxy.routes = vec![RouteConfig {
        name: "chat".into(),
        path_prefix: "/v1/".into(),
        protocol: Protocol::Openai,
        model: "m".into(),
        output: OutputConfig {
            refusal_regex: r"(?i)\b(sorry|can't help|cannot help)\b".into(),
            expect_json: true,
            json_schema_file: schema.display().to_string(),
        },
        ..RouteConfig::default()
    }];
    let recorder = Arc::new(Recorder::default());
    let mut app = App::build(cfg).unwrap();
    app.set_signal_sink(recorder.clone());
    let sc = Sidecar::start_app(app).await;
    const N: usize = 40;
    for i in 0..N {
        // Requests are sent one at a time, so the upstream's i is the request's.
        let stream = if i % 2 == 1 { ",\"stream\":true" } else { "" };
        let req = Request::post(sc.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(full(format!(r#"{{"model":"m","messages":[]{stream}}}"#)))
            .unwrap();
        let resp = client().request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
    }
    assert_eventually!(
        sc.scrape().await.sum(
            "inferwatch_inspection_total",
            &[("route", "chat"), ("result", "parsed")]
        ) == N as f64,
        Duration::from_secs(10)
    );
    let seen = recorder.0.lock().unwrap().clone();
    let mut by: HashMap<&str, Vec<f64>> = HashMap::new();
    for (signal, v) in &seen {
        by.entry(signal.as_str()).or_default().push(*v);
    }
    let share = |s: &str| {
        let v = &by[s];
        assert_eq!(v.len(), N, "{s}: one observation per answer");
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert_eq!(share("truncated:chat"), 0.2);
    assert_eq!(share("empty:chat"), 0.2);
    assert_eq!(share("refusal:chat"), 0.1);
    assert_eq!(share("valid_json:chat"), 0.5);
    assert_eq!(share("valid_schema:chat"), 0.4);
    // Tokens per completion: 1..=10 in turn, mean 5.5.
    assert_eq!(share("output_tokens:chat"), 5.5);
    sc.shutdown().await;
}

/// A p-chart on `truncated:<route>` learns the 20% share in Phase I (count subgroups of 10
/// answers, no clock involved) and alarms once every answer is cut at max_tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p_chart_on_the_truncated_share_alarms_when_it_shifts() {
    use inferwatch::quality::config::{ChartConfig, ChartKind};
    let served = Arc::new(AtomicUsize::new(0));
    let shifted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s, shift) = (served.clone(), shifted.clone());
    let up = Upstream::start(move |_req: Request<hyper::body::Incoming>| {
        let i = s.fetch_add(1, Ordering::SeqCst);
        let cut = shift.load(Ordering::SeqCst);
        async move {
            let body = if cut {
                plain(4) // a truncated answer
            } else {
                plain(i)
            };
            Response::builder()
                .header("content-type", "application/json")
                .body(full(body))
                .unwrap()
        }
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.routes = vec![RouteConfig {
        name: "chat".into(),
        path_prefix: "/v1/".into(),
        protocol: Protocol::Openai,
        model: "m".into(),
        ..RouteConfig::default()
    }];
    cfg.quality.charts.push(ChartConfig {
        name: "chat_truncated".into(),
        signal: "truncated:chat".into(),
        kind: ChartKind::P,
        subgroup_size: 10,
        subgroup_interval_secs: 60.0,
        phase1_subgroups: 5,
        ..ChartConfig::default()
    });
    let sc = Sidecar::start(cfg).await;
    let send = || async {
        let req = Request::post(sc.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(full(r#"{"model":"m","messages":[]}"#))
            .unwrap();
        let resp = client().request(req).await.unwrap();
        resp.into_body().collect().await.unwrap();
    };
    let labels: &[(&str, &str)] = &[("chart", "chat_truncated")];
    // Phase I and five more subgroups at the learned share: no alarm.
    for _ in 0..100 {
        send().await;
    }
    assert_eventually!(
        sc.scrape().await.get("inferwatch_spc_phase1", labels) == Some(0.0),
        Duration::from_secs(10)
    );
    assert_eq!(
        sc.scrape().await.sum("inferwatch_spc_alarms_total", labels),
        0.0
    );
    shifted.store(true, Ordering::SeqCst);
    for _ in 0..20 {
        send().await;
    }
    assert_eventually!(
        sc.scrape().await.get("inferwatch_spc_alarm", labels) == Some(1.0),
        Duration::from_secs(10)
    );
    sc.shutdown().await;
}
