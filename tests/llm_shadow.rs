//! A live LLM shadow: every chat completion the official `openai` client sends through the
//! sidecar to one real llama.cpp server (SmolLM2-135M) is replayed to a second one serving the
//! same model with another prompt template (`--chat_format alpaca`), so their answers differ
//! as a changed system prompt's would. The sidecar compares them by ROUGE-L F1 against a
//! threshold; the test records what the shadow server answered (a recording relay in front of
//! it) and computes ROUGE-L itself, with its own code, over the same pairs: the agreement
//! counts are equal. Streams and plain answers both. A third target on a dead port errors on
//! every replay and never touches the live path.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use inferwatch::client::compare::TextMatch;
use inferwatch::routes::config::{Protocol, RouteConfig};
use inferwatch::shadow::config::ShadowTargetConfig;
use serde_json::Value;
use support::llamacpp::{openai_llm, LlamaCpp};
use support::*;

/// Low enough that some of the twin's answers agree (another prompt template moves a small
/// model's answers far: on this machine 2 of 8 pairs score 0.22 and 0.5, the rest under 0.12),
/// and not a fraction with a small denominator: no pair of short answers lands exactly on it,
/// so float rounding in two formulas of the same F1 cannot split a verdict.
const TEXT_MIN: f64 = 0.190_983;

/// ROUGE-L F1 over lower-cased white-space tokens, as `2·LCS / (m + n)` (the harmonic mean of
/// LCS/m and LCS/n) from a full LCS table: written for this test, apart from the sidecar's.
fn rouge_l(a: &str, b: &str) -> f64 {
    let (a, b) = (a.to_lowercase(), b.to_lowercase());
    let x: Vec<&str> = a.split_whitespace().collect();
    let y: Vec<&str> = b.split_whitespace().collect();
    match (x.len(), y.len()) {
        (0, 0) => return 1.0,
        (0, _) | (_, 0) => return 0.0,
        _ => {}
    }
    let mut t = vec![vec![0usize; y.len() + 1]; x.len() + 1];
    for i in 1..=x.len() {
        for j in 1..=y.len() {
            t[i][j] = if x[i - 1] == y[j - 1] {
                t[i - 1][j - 1] + 1
            } else {
                t[i - 1][j].max(t[i][j - 1])
            };
        }
    }
    2.0 * t[x.len()][y.len()] as f64 / (x.len() + y.len()) as f64
}

/// The answer's text in a recorded response: the `delta.content`s of an event stream, or a
/// whole completion's `message.content`.
fn answer_text(body: &str) -> String {
    if body.trim_start().starts_with("data:") {
        body.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| *d != "[DONE]")
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect()
    } else {
        let doc: Value = serde_json::from_str(body).unwrap();
        doc["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// (prompt, shadow answer text) per replay the shadow server answered.
type Replays = Arc<Mutex<Vec<(String, String)>>>;

/// A relay in front of the shadow server that records each request's prompt and the answer.
async fn recording_relay(shadow: String, replays: Replays) -> Upstream {
    Upstream::start(move |req: Request<hyper::body::Incoming>| {
        let (shadow, replays) = (shadow.clone(), replays.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let prompt = serde_json::from_slice::<Value>(&body).unwrap()["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_string();
            let mut forward = Request::post(format!("{shadow}{}", parts.uri.path()));
            for (k, v) in &parts.headers {
                if k != "host" && k != "content-length" {
                    forward = forward.header(k, v);
                }
            }
            let resp = client()
                .request(forward.body(full(body)).unwrap())
                .await
                .unwrap();
            let (parts, body) = resp.into_parts();
            // A broken answer is passed on as a failure (the shadow counts an error), not
            // recorded.
            let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
                eprintln!("the shadow server broke its answer to {prompt:?}");
                return Response::builder().status(502).body(full("")).unwrap();
            };
            let text = answer_text(&String::from_utf8_lossy(&body));
            replays.lock().unwrap().push((prompt, text));
            let mut out = Response::builder().status(parts.status);
            if let Some(ct) = parts.headers.get("content-type") {
                out = out.header("content-type", ct);
            }
            out.body(full(body)).unwrap()
        }
    })
    .await
}

fn spec() -> Vec<Value> {
    let prompts = [
        "Name three colours.",
        "Count from one to five.",
        "What is the capital of France?",
        "Say hello in Spanish.",
        "Describe a cat in one sentence.",
        "What is two plus two?",
        "Name a large animal.",
        "Give me a word that rhymes with light.",
    ];
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| serde_json::json!({"prompt": p, "max_tokens": 24, "stream": i % 2 == 0}))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_agreement_equals_the_clients_own_rouge_l_over_the_same_pairs() {
    let live = LlamaCpp::start().await;
    // Replays may overlap (the shadow runs up to max_in_flight at once); llama-cpp-python's
    // server would cut a running stream short for each new request unless told to queue them.
    let twin =
        LlamaCpp::start_with(&["--chat_format", "alpaca", "--interrupt_requests", "false"]).await;
    let replays: Replays = Arc::default();
    let relay = recording_relay(twin.url(), replays.clone()).await;
    let dead = format!("http://127.0.0.1:{}", free_port());

    let mut cfg = test_config(&live.url());
    cfg.proxy.routes = vec![RouteConfig {
        name: "chat".into(),
        path_prefix: "/v1/".into(),
        protocol: Protocol::Openai,
        model: "smollm2".into(),
        ..RouteConfig::default()
    }];
    let target = |name: &str, url: &str| ShadowTargetConfig {
        name: name.into(),
        route: "chat".into(),
        url: url.into(),
        sample_ratio: 1.0,
        // A CPU model answering two servers' requests on a loaded machine.
        timeout_secs: 120.0,
        text_match: TextMatch::RougeL,
        text_similarity_min: TEXT_MIN,
        ..ShadowTargetConfig::default()
    };
    cfg.shadow.targets = vec![target("twin", &relay.url()), target("dead", &dead)];
    let sc = Sidecar::start(cfg).await;

    let spec = spec();
    let n = spec.len();
    let got = openai_llm(vec![
        "requests".into(),
        sc.url("/v1"),
        serde_json::to_string(&spec).unwrap(),
    ])
    .await;
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), n);

    assert_eventually!(
        sc.scrape().await.get(
            "inferwatch_shadow_requests_total",
            &[("target", "twin"), ("outcome", "ok")]
        ) == Some(n as f64),
        Duration::from_secs(240)
    );
    // The live path never noticed the dead target: every request ok, each replay an error.
    let s = sc.scrape().await;
    assert_eq!(
        s.sum(
            "inferwatch_requests_total",
            &[("route", "chat"), ("outcome", "ok")]
        ),
        n as f64
    );
    assert_eq!(
        s.sum("inferwatch_requests_total", &[("route", "chat")]),
        n as f64
    );
    assert_eventually!(
        sc.scrape().await.get(
            "inferwatch_shadow_requests_total",
            &[("target", "dead"), ("outcome", "error")]
        ) == Some(n as f64),
        Duration::from_secs(30)
    );

    // The client's own verdicts: its text against what the shadow answered to the same prompt.
    let replays = replays.lock().unwrap().clone();
    assert_eq!(replays.len(), n);
    let (mut agree, mut scores) = (0, Vec::new());
    for (s, r) in spec.iter().zip(got) {
        let prompt = s["prompt"].as_str().unwrap();
        let theirs = &replays.iter().find(|(p, _)| p == prompt).unwrap().1;
        let f1 = rouge_l(r["text"].as_str().unwrap(), theirs);
        scores.push(f1);
        agree += usize::from(f1 >= TEXT_MIN);
    }
    let s = sc.scrape().await;
    let counted = |result: &str| {
        s.get(
            "inferwatch_shadow_comparisons_total",
            &[("target", "twin"), ("result", result)],
        )
        .unwrap_or(0.0)
    };
    let why = format!("ROUGE-L per pair {scores:?}");
    assert_eq!(counted("agree"), agree as f64, "{why}");
    assert_eq!(counted("disagree"), (n - agree) as f64, "{why}");
    assert_eq!(counted("incomparable"), 0.0, "{why}");
    eprintln!("{agree} of {n} answers agree; {why}");
    sc.shutdown().await;
}

#[test]
fn the_tests_rouge_l_is_the_textbook_one() {
    // LCS("the cat sat on the mat", "the cat was lying on the mat") = 5 (the cat on the mat).
    let f = rouge_l("The cat sat on the mat", "the cat was lying on the mat");
    assert!((f - 2.0 * 5.0 / 13.0).abs() < 1e-12, "{f}");
    assert_eq!(rouge_l("", ""), 1.0);
    assert_eq!(rouge_l("a", ""), 0.0);
    assert_eq!(rouge_l("A  b", "a b"), 1.0);
}
