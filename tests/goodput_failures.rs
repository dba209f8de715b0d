//! Goodput counts every finished request: a scripted OpenAI-compatible upstream answers, fails
//! with a 500, hangs past `first_byte_timeout_secs` (the sidecar answers 504) or keeps a client
//! waiting until it leaves. Each request is classified exactly once, and the failures reach
//! `goodput:<route>` as zeros, so the signal an SPC chart watches falls when the server fails.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use inferwatch::app::App;
use inferwatch::protocol::SignalSink;
use inferwatch::routes::config::{Protocol, RouteConfig, SloConfig};
use support::*;

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, f64)>>);

impl SignalSink for Recorder {
    fn observe(&self, signal: &str, value: f64) {
        self.0.lock().unwrap().push((signal.to_string(), value));
    }
}

impl Recorder {
    fn values(&self, signal: &str) -> Vec<f64> {
        let seen = self.0.lock().unwrap();
        seen.iter()
            .filter(|(s, _)| s == signal)
            .map(|(_, v)| *v)
            .collect()
    }
}

const ANSWER: &str = r#"{"model":"m","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;

/// What the upstream does, by the word in the request: `ok` answers at once, `fail` with a 500,
/// `hang` never (the sidecar's first-byte timeout ends it), `slow` after [`SLOW`].
async fn upstream_for(word: &str) -> Response<Body> {
    let json = |status: u16, body: &'static str| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(full(body))
            .unwrap()
    };
    match word {
        "fail" => json(500, r#"{"error":"overloaded"}"#),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            json(200, ANSWER)
        }
        "slow" => {
            tokio::time::sleep(SLOW).await;
            json(200, ANSWER)
        }
        _ => json(200, ANSWER),
    }
}

const OK: usize = 10;
const FAIL: usize = 5;
/// Two of each, sent side by side below.
const HANG: usize = 2;
const LEAVE: usize = 2;
/// Far above an immediate answer's time even on a loaded 2-core machine, well below the
/// leaving client's wait.
const TTFT_SECS: f64 = 2.0;
const LEAVES_AFTER: Duration = Duration::from_secs(3);
/// The slow answer comes after the client left and before the sidecar's first-byte timeout:
/// however late the sidecar notices the client leave, it waited past the TTFT bound.
const SLOW: Duration = Duration::from_secs(4);
const FIRST_BYTE_TIMEOUT_SECS: f64 = 5.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_clients_that_gave_up_are_classified_and_lower_the_goodput_signal() {
    let up = Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body).to_string();
        let word = ["fail", "hang", "slow"]
            .into_iter()
            .find(|w| text.contains(w))
            .unwrap_or("ok");
        upstream_for(word).await
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.first_byte_timeout_secs = FIRST_BYTE_TIMEOUT_SECS;
    cfg.proxy.routes = vec![RouteConfig {
        name: "chat".into(),
        path_prefix: "/v1/".into(),
        protocol: Protocol::Openai,
        model: "m".into(),
        slo: SloConfig {
            ttft_secs: TTFT_SECS,
            ..SloConfig::default()
        },
        ..RouteConfig::default()
    }];
    let recorder = Arc::new(Recorder::default());
    let mut app = App::build(cfg).unwrap();
    app.set_signal_sink(recorder.clone());
    let sc = Sidecar::start_app(app).await;
    let request = |word: &str| {
        Request::post(sc.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(full(format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"{word}"}}]}}"#
            )))
            .unwrap()
    };
    let send = |word: &'static str| {
        let req = request(word);
        async move {
            let resp = client().request(req).await.unwrap();
            let status = resp.status().as_u16();
            resp.into_body().collect().await.unwrap();
            status
        }
    };
    for word in std::iter::repeat_n("ok", OK).chain(std::iter::repeat_n("fail", FAIL)) {
        send(word).await;
    }
    // Hung upstream requests, and clients that stop waiting for the headers (past the TTFT
    // bound), side by side so the test waits one timeout, not four.
    let leave = || tokio::time::timeout(LEAVES_AFTER, client().request(request("slow")));
    let (h1, h2, l1, l2) = tokio::join!(send("hang"), send("hang"), leave(), leave());
    let (hung, left) = (vec![h1, h2], [l1, l2]);
    assert_eq!(hung, vec![504; HANG]);
    assert!(
        left.iter().all(Result::is_err),
        "a slow answer came before its client left"
    );

    let rc = [("route", "chat")];
    let total = OK + FAIL + HANG + LEAVE;
    assert_eventually!(
        sc.scrape().await.sum("inferwatch_slo_requests_total", &rc) == total as f64
            && recorder.values("goodput:chat").len() == total,
        Duration::from_secs(15)
    );
    let s = sc.scrape().await;
    let count = |result: &str| {
        s.sum(
            "inferwatch_slo_requests_total",
            &[("route", "chat"), ("result", result)],
        )
    };
    assert_eq!(count("met"), OK as f64);
    assert_eq!(count("failed"), (FAIL + HANG) as f64);
    assert_eq!(count("missed_ttft"), LEAVE as f64);
    assert_eq!(count("aborted"), 0.0);
    // Every request is one observation of the signal: 1 only for those that met the SLO.
    let goodput = recorder.values("goodput:chat");
    assert_eq!(goodput.iter().sum::<f64>(), OK as f64, "{goodput:?}");
    sc.shutdown().await;
}
