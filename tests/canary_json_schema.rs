//! Canaries that expect structured output: golden rows whose `expect` is a JSON Schema (inline,
//! or a file beside the golden set) against a scripted OpenAI-compatible upstream that answers
//! some rows with a document of the right shape, some with the wrong shape or no JSON at all,
//! plain and streamed. Each round's correct and incorrect counts are exactly those rows.

mod support;

use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use inferwatch::canary::config::ProbeConfig;
use inferwatch::routes::config::{Protocol, RouteConfig};
use support::*;

/// The upstream's answer to each prompt.
fn answer_for(prompt: &str) -> &'static str {
    match prompt {
        "capital of France" => r#"{"city": "Paris"}"#,
        "capital of Italy" => r#"{"city": "Rome"}"#,
        "wrong shape" => r#"{"town": "Paris"}"#,
        _ => "Paris, of course.",
    }
}

fn respond(prompt: &str, stream: bool) -> Response<Body> {
    let text = answer_for(prompt);
    if stream {
        let (a, b) = text.split_at(text.len() / 2);
        let chunk = |t: &str| {
            format!(
                "data: {}\n\n",
                serde_json::json!({"choices": [{"index": 0, "delta": {"content": t}}]})
            )
        };
        let body = chunk(a) + &chunk(b) + "data: [DONE]\n\n";
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(full(body))
            .unwrap();
    }
    let body = serde_json::json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_rows_count_structured_answers_of_the_right_shape_as_correct() {
    let up = Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let prompt = doc["messages"][0]["content"].as_str().unwrap().to_string();
        respond(&prompt, doc["stream"] == true)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("city.schema.json"),
        r#"{"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}"#,
    )
    .unwrap();
    let row = |prompt: &str, stream: bool, schema: &str| {
        format!(
            "{{\"request\": {{\"model\": \"m\", \"stream\": {stream}, \"messages\": [{{\"role\": \"user\", \"content\": \"{prompt}\"}}]}}, \"expect\": {{\"json_schema\": {schema}}}}}\n"
        )
    };
    let inline = r#"{"type": "object", "required": ["city"]}"#;
    let file = "\"city.schema.json\"";
    // Right: 2 (one plain, one streamed). Wrong: the wrong shape, and no JSON (streamed).
    let golden = row("capital of France", false, file)
        + &row("capital of Italy", true, inline)
        + &row("wrong shape", false, file)
        + &row("no json", true, inline);
    let golden_file = dir.path().join("structured.jsonl");
    std::fs::write(&golden_file, golden).unwrap();

    let mut cfg = test_config(&up.url());
    cfg.proxy.routes = vec![RouteConfig {
        name: "chat".into(),
        path_prefix: "/v1/".into(),
        protocol: Protocol::Openai,
        model: "m".into(),
        ..RouteConfig::default()
    }];
    cfg.canary = vec![ProbeConfig {
        name: "structured".into(),
        route: "chat".into(),
        path: "/v1/chat/completions".into(),
        golden_file: golden_file.display().to_string(),
        // One round, at start-up.
        interval_secs: 3600.0,
        jitter_secs: 0.0,
        ..ProbeConfig::default()
    }];
    let sc = Sidecar::start(cfg).await;
    let p = [("probe", "structured")];
    assert_eventually!(
        sc.scrape().await.sum("inferwatch_probes_total", &p) == 4.0,
        Duration::from_secs(20)
    );
    let s = sc.scrape().await;
    let count = |result: &str| {
        s.sum(
            "inferwatch_probes_total",
            &[("probe", "structured"), ("result", result)],
        )
    };
    assert_eq!(count("correct"), 2.0);
    assert_eq!(count("incorrect"), 2.0);
    assert_eq!(count("error"), 0.0);
    sc.shutdown().await;
}
