//! The real `openai` Python client streaming a chat completion through the sidecar from a test
//! upstream that emits OpenAI-format SSE on a known schedule: the client gets every chunk
//! unchanged and as it was sent (not batched), and the sidecar's time to first token,
//! inter-token latency and token counts match the schedule.

mod support;

use std::convert::Infallible;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use inferwatch::routes::config::{Protocol, RouteConfig};
use support::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/openai_stream.py");

/// The schedule: the first content chunk this long after the request, then one per gap.
const FIRST_TOKEN: Duration = Duration::from_millis(150);
const GAP: Duration = Duration::from_millis(40);
const TOKENS: [&str; 8] = ["Hello", ",", " wor", "ld", "!", " How", " are", " you?"];
const PROMPT_TOKENS: u64 = 9;
/// What the usage chunk reports: deliberately not the chunk count, to tell the two apart.
const USAGE_COMPLETION_TOKENS: u64 = 11;
/// Prompt tokens the usage chunk says came from the prefix cache.
const CACHED_TOKENS: u64 = 6;

/// Scheduling on a shared 2-core machine; loopback itself adds well under a millisecond.
const SLACK: Duration = Duration::from_millis(60);

fn chunk(delta: &str, finish: Option<&str>) -> String {
    let finish = finish.map_or("null".to_string(), |f| format!("\"{f}\""));
    format!(
        "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"tiny-llm-2024\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
    )
}

/// Every event the upstream sends, and the delay before each.
fn schedule(with_usage: bool) -> Vec<(Duration, String)> {
    let mut events = vec![(
        Duration::ZERO,
        chunk("{\"role\":\"assistant\",\"content\":\"\"}", None),
    )];
    for (i, t) in TOKENS.iter().enumerate() {
        let wait = if i == 0 { FIRST_TOKEN } else { GAP };
        events.push((wait, chunk(&format!("{{\"content\":{t:?}}}"), None)));
    }
    events.push((GAP, chunk("{}", Some("stop"))));
    if with_usage {
        events.push((
            Duration::ZERO,
            format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"tiny-llm-2024\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{PROMPT_TOKENS},\"completion_tokens\":{USAGE_COMPLETION_TOKENS},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":{CACHED_TOKENS}}}}}}}\n\n",
                PROMPT_TOKENS + USAGE_COMPLETION_TOKENS
            ),
        ));
    }
    events.push((Duration::ZERO, "data: [DONE]\n\n".to_string()));
    events
}

async fn sse_upstream() -> Upstream {
    Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let with_usage = String::from_utf8_lossy(&body).contains("include_usage");
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        tokio::spawn(async move {
            for (wait, event) in schedule(with_usage) {
                tokio::time::sleep(wait).await;
                if tx.send(Ok(Frame::data(Bytes::from(event)))).await.is_err() {
                    return;
                }
            }
        });
        let stream = tokio_stream_from(rx);
        Response::builder()
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(StreamBody::new(stream).map_err(|e| match e {}).boxed())
            .unwrap()
    })
    .await
}

/// An mpsc receiver as a `Stream`, without pulling in tokio-stream for one adapter.
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_client_streams_through_the_sidecar_unchanged_and_timed() {
    let python = peers_python(&["openai"]);
    let up = sse_upstream().await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.routes = vec![RouteConfig {
        name: "chat".into(),
        path_prefix: "/v1/".into(),
        protocol: Protocol::Openai,
        model: "m".into(),
        ..RouteConfig::default()
    }];
    let sc = Sidecar::start(cfg).await;
    let base = sc.url("/v1");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python).args([SCRIPT, &base]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "openai client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // 1. Parsed by the client: every token, in order, each on its own schedule.
    let parsed = got["parsed"].as_array().unwrap();
    let contents: Vec<&str> = parsed
        .iter()
        .filter_map(|c| c["content"].as_str())
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(contents, TOKENS);
    let times: Vec<f64> = parsed
        .iter()
        .filter(|c| c["content"].as_str().is_some_and(|s| !s.is_empty()))
        .map(|c| c["t"].as_f64().unwrap())
        .collect();
    assert!(times[0] >= secs(FIRST_TOKEN), "first token at {}", times[0]);
    for w in times.windows(2) {
        // Unbatched: a proxy that buffered would deliver several chunks at once (gap ~0).
        let gap = w[1] - w[0];
        assert!(
            gap >= secs(GAP) - 0.015 && gap <= secs(GAP + SLACK),
            "client saw a gap of {gap:.4}s, sent {GAP:?} apart: {times:?}"
        );
    }
    assert_eq!(
        got["usage"]["completion_tokens"].as_u64(),
        Some(USAGE_COMPLETION_TOKENS)
    );
    assert_eq!(
        got["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64(),
        Some(CACHED_TOKENS)
    );
    assert_eq!(
        parsed.last().unwrap()["finish_reason"].as_str(),
        Some("stop")
    );

    // 2. Raw lines: byte for byte what the upstream sent.
    let raw: Vec<&str> = got["raw"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    let sent: String = schedule(false).into_iter().map(|(_, e)| e).collect();
    let sent_lines: Vec<&str> = sent.lines().collect();
    assert_eq!(raw, sent_lines);

    // 3. The sidecar's view.
    // The model label is the request's (`tiny-llm`), not the response's dated name.
    let rm = [("route", "chat"), ("model", "tiny-llm")];
    assert_eventually!(
        sc.scrape().await.sum(
            "inferwatch_inspection_total",
            &[("route", "chat"), ("result", "parsed")]
        ) == 2.0
    );
    let s = sc.scrape().await;
    let ttft_count = s.get("inferwatch_time_to_first_token_seconds_count", &rm);
    let ttft_sum = s
        .get("inferwatch_time_to_first_token_seconds_sum", &rm)
        .unwrap();
    assert_eq!(ttft_count, Some(2.0));
    let mean_ttft = ttft_sum / 2.0;
    assert!(
        mean_ttft >= secs(FIRST_TOKEN) && mean_ttft <= secs(FIRST_TOKEN + SLACK),
        "mean time to first token {mean_ttft}"
    );
    let gaps = (TOKENS.len() - 1) as f64;
    assert_eq!(
        s.get("inferwatch_inter_token_latency_seconds_count", &rm),
        Some(2.0 * gaps)
    );
    let mean_itl = s
        .get("inferwatch_inter_token_latency_seconds_sum", &rm)
        .unwrap()
        / (2.0 * gaps);
    // Never shorter than the schedule (less the 1 ms timer grain); a little longer under load.
    assert!(
        mean_itl >= secs(GAP) - 0.002 && mean_itl <= secs(GAP) + 0.015,
        "mean inter-token latency {mean_itl}, sent {GAP:?} apart"
    );
    // Usage when reported (run 1), counted content chunks otherwise (run 2), each by source.
    let by = |source| {
        s.get(
            "inferwatch_output_tokens_total",
            &[("route", "chat"), ("model", "tiny-llm"), ("source", source)],
        )
    };
    assert_eq!(by("usage"), Some(USAGE_COMPLETION_TOKENS as f64));
    assert_eq!(by("counted"), Some(TOKENS.len() as f64));
    assert_eq!(
        s.get("inferwatch_input_tokens_total", &rm),
        Some(PROMPT_TOKENS as f64)
    );
    // Cached prompt tokens as usage said (only run 1 reports usage).
    assert_eq!(
        s.get("inferwatch_cached_input_tokens_total", &rm),
        Some(CACHED_TOKENS as f64)
    );
    assert_eq!(
        s.get("inferwatch_time_to_second_token_seconds_count", &rm),
        Some(2.0)
    );
    assert_eq!(
        s.get("inferwatch_output_tokens_per_second_count", &rm),
        Some(2.0)
    );
    assert_eq!(
        s.get(
            "inferwatch_completions_total",
            &[("route", "chat"), ("finish_reason", "stop")]
        ),
        Some(2.0)
    );
    assert_eq!(
        s.get("inferwatch_time_per_output_token_seconds_count", &rm),
        Some(2.0)
    );
    if let Err(report) = promtool_check(&sc.scrape_text().await) {
        panic!("promtool check metrics:\n{report}");
    }
    sc.shutdown().await;
}

/// An upstream that sends a whole stream up to `data: [DONE]` at once, then holds the body open
/// (its final empty chunk comes much later): the window in which OpenAI clients close. A
/// request naming `"max_tokens":3` gets only the first three tokens before the hold.
async fn held_open_upstream() -> Upstream {
    Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let events = if String::from_utf8_lossy(&body).contains("\"max_tokens\":3") {
            4
        } else {
            usize::MAX
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
        tokio::spawn(async move {
            for (_, event) in schedule(false).into_iter().take(events) {
                if tx.send(Ok(Frame::data(Bytes::from(event)))).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(
                StreamBody::new(tokio_stream_from(rx))
                    .map_err(|e| match e {})
                    .boxed(),
            )
            .unwrap()
    })
    .await
}

/// Send `request`, read the response until `until` has arrived, then drop the connection.
async fn read_then_close(url: &str, request: &'static str, until: &str) -> String {
    let req = Request::post(url)
        .header("content-type", "application/json")
        .body(full(request))
        .unwrap();
    let mut body = client().request(req).await.unwrap().into_body();
    let mut got = String::new();
    while !got.contains(until) {
        let frame = body.frame().await.unwrap().unwrap();
        if let Some(d) = frame.data_ref() {
            got.push_str(std::str::from_utf8(d).unwrap());
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_closing_after_done_is_complete_and_one_closing_before_is_aborted_but_read() {
    let up = held_open_upstream().await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.routes = vec![RouteConfig {
        name: "chat".into(),
        path_prefix: "/v1/".into(),
        protocol: Protocol::Openai,
        model: "m".into(),
        ..RouteConfig::default()
    }];
    let sc = Sidecar::start(cfg).await;
    let url = sc.url("/v1/chat/completions");
    let got = read_then_close(
        &url,
        r#"{"model":"m","stream":true,"messages":[]}"#,
        "data: [DONE]\n\n",
    )
    .await;
    assert!(got.ends_with("data: [DONE]\n\n"));
    let counted = |s: &Scrape, result: &str| {
        s.sum(
            "inferwatch_inspection_total",
            &[("route", "chat"), ("result", result)],
        )
    };
    assert_eventually!(counted(&sc.scrape().await, "parsed") == 1.0);
    let s = sc.scrape().await;
    assert_eq!(
        s.sum(
            "inferwatch_requests_total",
            &[("route", "chat"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "inferwatch_completions_total",
            &[("route", "chat"), ("finish_reason", "stop")]
        ),
        1.0
    );

    // Closing after the third token: aborted, and the three tokens and TTFT it got are read.
    read_then_close(
        &url,
        r#"{"model":"m","stream":true,"max_tokens":3,"messages":[]}"#,
        TOKENS[2],
    )
    .await;
    assert_eventually!(counted(&sc.scrape().await, "client_aborted") == 1.0);
    let s = sc.scrape().await;
    assert_eq!(
        s.sum(
            "inferwatch_requests_total",
            &[("route", "chat"), ("outcome", "client_aborted")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "inferwatch_time_to_first_token_seconds_count",
            &[("route", "chat")]
        ),
        2.0
    );
    assert_eq!(
        s.sum(
            "inferwatch_output_tokens_total",
            &[("route", "chat"), ("source", "counted")]
        ),
        (TOKENS.len() + 3) as f64
    );
    // It did not finish: no second finish reason.
    assert_eq!(
        s.sum("inferwatch_completions_total", &[("route", "chat")]),
        1.0
    );
    sc.shutdown().await;
}
