//! `inferwatch bench --protocol openai` token workloads: against the real llama.cpp server
//! (synthetic lengths honoured as the server counts them, goodput equal to a client-side
//! classification of the same requests, a ShareGPT file replayed, a concurrency sweep's
//! answer), bad datasets refused with the line named; with scripted upstreams (properties of
//! the client): coordinated omission for streams (an upstream that stalls), and the engine's
//! saturation sampled while a run goes.

mod bench_support;
mod support;

use std::path::Path;
use std::time::Duration;

use bench_support::SERIAL;
use http_body_util::BodyExt;
use inferwatch::bench::client::Target;
use inferwatch::bench::{run_bench, BenchConfig, Scenario};
use inferwatch::routes::config::Protocol;
use serde_json::Value;
use support::llamacpp::LlamaCpp;
use support::{client, full};

const BIN: &str = env!("CARGO_BIN_EXE_inferwatch");
const SHAREGPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/llm/sharegpt_small.json"
);

/// Run `inferwatch ARGS`: exit code, stdout, stderr.
async fn inferwatch(args: Vec<String>) -> (Option<i32>, String, String) {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN).args(args).output().unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// POST a JSON body, return the JSON answer.
async fn post(url: &str, body: Value) -> Value {
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

/// The prompt tokens the server counts for one user message (non-streamed: its usage).
async fn prompt_tokens(llm: &LlamaCpp, content: &str) -> u64 {
    let v = post(
        &format!("{}/v1/chat/completions", llm.url()),
        serde_json::json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": content}]}),
    )
    .await;
    v["usage"]["prompt_tokens"].as_u64().unwrap()
}

/// Tokens of `text` by the server's own tokenizer.
async fn tokens(llm: &LlamaCpp, text: &str) -> u64 {
    let v = post(
        &format!("{}/extras/tokenize", llm.url()),
        serde_json::json!({ "input": text }),
    )
    .await;
    v["tokens"].as_array().unwrap().len() as u64
}

/// The sidecar's goodput rule, written again here from its documentation: failed without an
/// answer; else the first bound missed in the order a request lives them (TTFT, TPOT, e2e).
fn classify(r: &Value, ttft: f64, tpot: f64, e2e: f64) -> &'static str {
    if !r["error"].is_null() {
        return "failed";
    }
    if r["ttft_s"].as_f64().unwrap() > ttft {
        return "missed_ttft";
    }
    if r["tpot_s"].as_f64().is_some_and(|t| t > tpot) {
        return "missed_tpot";
    }
    if r["e2e_s"].as_f64().unwrap() > e2e {
        return "missed_e2e";
    }
    "met"
}

/// Requests of a synthetic run.
const SYNTHETIC: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_lengths_are_what_the_server_counts_and_goodput_is_the_clients_count() {
    let _serial = SERIAL.lock().await;
    let llm = LlamaCpp::start_with(&["--interrupt_requests", "False"]).await;
    let dir = tempfile::tempdir().unwrap();
    // Loose enough for some requests to meet them on a quiet machine, tight enough for a loaded
    // one to miss some: the test holds either way (it compares classifications).
    let (ttft, tpot, e2e) = (2.0, 0.08, 4.0);
    let (_code, stdout, stderr) = inferwatch(
        [
            "bench",
            &format!("{}/v1/chat/completions", llm.url()),
            "--protocol=openai",
            "--input-tokens=16,6,8,28",
            "--output-tokens=8,3,4,14",
            "--seed=7",
            "--qps=2",
            "--duration=0",
            &format!("--min-queries={SYNTHETIC}"),
            &format!("--slo-ttft={ttft}"),
            &format!("--slo-tpot={tpot}"),
            &format!("--slo-e2e={e2e}"),
            "--json",
            "--quiet",
            &format!("--out={}", dir.path().display()),
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {stdout}\nstderr {stderr}"));
    let l = &v["llm"];
    eprintln!("{}", serde_json::to_string_pretty(l).unwrap());
    let records = jsonl(&dir.path().join("requests.jsonl"));
    let items = jsonl(&dir.path().join("workload.jsonl"));
    assert_eq!(records.len(), SYNTHETIC);
    assert!(records.iter().all(|r| r["error"].is_null()), "{records:?}");

    // Output: llama.cpp honours min_tokens, so every answer is as long as asked. Its streams
    // carry no usage (it ignores include_usage), so the bench counted content chunks: one per
    // token for this model's English output (bound: exact).
    assert_eq!(l["token_source"], "chunks");
    for r in &records {
        assert_eq!(r["output_tokens"], r["output_tokens_requested"], "{r}");
    }
    // The lengths vary as drawn (not all the mean).
    let outs: std::collections::BTreeSet<u64> = records
        .iter()
        .map(|r| r["output_tokens"].as_u64().unwrap())
        .collect();
    assert!(outs.len() > 1, "{outs:?}");

    // Input: each prompt, sent again without streaming, is counted by the server as asked plus
    // the chat template's own tokens (those of an empty message). Bound: exact, as the prompt
    // is made of words the server's tokenizer keeps whole.
    let template = prompt_tokens(&llm, "").await;
    for r in &records {
        let item = &items[r["item"].as_u64().unwrap() as usize];
        let asked = r["input_tokens_requested"].as_u64().unwrap();
        assert_eq!(item["input_tokens"].as_u64(), Some(asked));
        let counted = prompt_tokens(&llm, item["prompt"].as_str().unwrap()).await;
        assert_eq!(counted - template, asked, "{r}");
    }

    // Goodput: the records classified here by the same bounds give the same results and rate.
    let mut met = 0u64;
    for r in &records {
        let mine = classify(r, ttft, tpot, e2e);
        assert_eq!(r["slo_result"], mine, "{r}");
        met += u64::from(mine == "met");
    }
    assert_eq!(l["slo_results"]["met"].as_u64().unwrap_or(0), met);
    let duration = v["duration_secs"].as_f64().unwrap();
    let goodput = l["goodput_rps"].as_f64().unwrap();
    assert!((goodput - met as f64 / duration).abs() < 1e-9, "{goodput}");
    // Throughput figures agree with the records.
    let out_total: u64 = records
        .iter()
        .map(|r| r["output_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(l["output_tokens"]["total"].as_u64(), Some(out_total));
    let ots = l["output_tokens_per_s"].as_f64().unwrap();
    assert!((ots - out_total as f64 / duration).abs() < 1e-9);
    for k in [
        "ttft_s",
        "ttst_s",
        "itl_s",
        "tpot_s",
        "e2e_s",
        "tokens_per_s_per_user",
    ] {
        for q in ["p50", "p90", "p99", "mean"] {
            assert!(l[k][q].as_f64().is_some_and(|x| x > 0.0), "{k}.{q}: {l}");
        }
    }
    assert!(l["ttft_s"]["p50"].as_f64() <= l["e2e_s"]["p50"].as_f64());
    // The reports hold the token figures.
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains("### LLM figures") && md.contains("goodput"),
        "{md}"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("Token latencies by percentile"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharegpt_file_is_replayed_with_its_answers_lengths() {
    let _serial = SERIAL.lock().await;
    let llm = LlamaCpp::start_with(&["--interrupt_requests", "False"]).await;
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 4;
    let (_code, stdout, stderr) = inferwatch(
        [
            "bench",
            &llm.url(),
            "--protocol=openai",
            &format!("--dataset={SHAREGPT}"),
            "--concurrency=1",
            "--duration=0",
            &format!("--min-queries={N}"),
            "--json",
            "--quiet",
            &format!("--out={}", dir.path().display()),
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {stdout}\nstderr {stderr}"));
    let records = jsonl(&dir.path().join("requests.jsonl"));
    let items = jsonl(&dir.path().join("workload.jsonl"));
    // The file's usable conversations, in order (the one that starts with the model is skipped).
    let file: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(SHAREGPT).unwrap()).unwrap();
    let usable: Vec<&Value> = file
        .iter()
        .filter(|c| c["conversations"][0]["from"] == "human")
        .collect();
    assert_eq!(items.len(), usable.len());
    assert_eq!(records.len(), N);
    assert!(v["llm"]["workload"]
        .as_str()
        .unwrap()
        .contains("sharegpt_small.json"));
    for r in &records {
        assert!(r["error"].is_null(), "{r}");
        let i = r["item"].as_u64().unwrap() as usize;
        let conv = &usable[i]["conversations"];
        // The prompt is the human turn; the wanted length is the gpt answer's, in the server's
        // tokens; the answer is that long.
        assert_eq!(items[i]["prompt"], conv[0]["value"]);
        let answer = tokens(&llm, conv[1]["value"].as_str().unwrap()).await;
        assert_eq!(r["output_tokens_requested"].as_u64(), Some(answer), "{r}");
        assert_eq!(r["output_tokens"].as_u64(), Some(answer), "{r}");
        let prompt = tokens(&llm, conv[0]["value"].as_str().unwrap()).await;
        assert_eq!(r["input_tokens_requested"].as_u64(), Some(prompt), "{r}");
    }
    // A closed loop of one user: requests in the file's order, one after another.
    let idx: Vec<u64> = records
        .iter()
        .map(|r| r["item"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, (0..N as u64).collect::<Vec<_>>());
    for w in records.windows(2) {
        assert!(w[1]["sent_s"].as_f64() >= w[0]["done_s"].as_f64(), "{w:?}");
    }
}

#[tokio::test]
async fn a_malformed_dataset_is_refused_naming_its_line_or_record() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "bad.jsonl",
            "{\"prompt\": \"hi\", \"output_tokens\": 4}\n{\"prompt\": \"no length\"}\n",
            "bad.jsonl:2: needs \"output_tokens\"",
        ),
        (
            "bad.json",
            "[{\"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}]}, {\"turns\": []}]",
            "bad.json: record [1]: needs a \"conversations\" array",
        ),
    ];
    for (name, text, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        // Nothing listens there: the dataset is read before anything is sent.
        let (code, _out, err) = inferwatch(
            [
                "bench",
                "http://127.0.0.1:9/v1/chat/completions",
                "--protocol=openai",
                &format!("--dataset={}", path.display()),
                "--quiet",
            ]
            .map(String::from)
            .to_vec(),
        )
        .await;
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(want), "{name}: {err}");
    }
    // LLM flags on another protocol are a usage error.
    let (code, _out, err) = inferwatch(
        ["bench", "http://127.0.0.1:9/", "--concurrency=2"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--concurrency needs --protocol openai"),
        "{err}"
    );
}

/// A streaming OpenAI upstream: three content chunks 2 ms apart, then `[DONE]`; nothing is
/// answered from `stall.0` to `stall.0 + stall.1` after it starts (a request arriving then
/// waits for the end).
async fn stalling_stream(stall: (Duration, Duration)) -> support::Upstream {
    use futures_util::stream;
    use http_body_util::StreamBody;
    let origin = tokio::time::Instant::now();
    support::Upstream::start(move |_req| async move {
        let (a, b) = (origin + stall.0, origin + stall.0 + stall.1);
        let now = tokio::time::Instant::now();
        if now >= a && now < b {
            tokio::time::sleep_until(b).await;
        }
        let events = stream::unfold(0u32, |i| async move {
            if i > 3 {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let data = if i == 3 {
                "data: [DONE]\n\n".to_string()
            } else {
                format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i}\"}}}}]}}\n\n")
            };
            let frame = http_body::Frame::data(bytes::Bytes::from(data));
            Some((Ok::<_, std::convert::Infallible>(frame), i + 1))
        });
        let body = StreamBody::new(events).map_err(|e| match e {}).boxed();
        http::Response::builder()
            .header("content-type", "text/event-stream")
            .body(body)
            .unwrap()
    })
    .await
}

fn openai_config(url: &str, scenario: Scenario) -> BenchConfig {
    let target = Target::parse(&format!("{url}/v1/chat/completions")).unwrap();
    let mut c = BenchConfig::new(target, Protocol::Openai, scenario);
    c.progress = false;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_shows_in_the_open_loop_ttft_p99_and_hides_from_a_closed_loop() {
    let _serial = SERIAL.lock().await;
    const STALL: f64 = 2.0;
    let stall = (Duration::from_millis(500), Duration::from_secs_f64(STALL));

    // Open loop at 20/s for 4 s: the ~40 requests scheduled in the stall all wait for its end,
    // and their TTFT runs from when they should have been sent.
    let up = stalling_stream(stall).await;
    let mut open = openai_config(&up.url(), Scenario::Server);
    open.qps = 20.0;
    open.duration = Duration::from_secs(4);
    let r = run_bench(&open).await.unwrap();
    let l = r.llm.unwrap();
    let p99 = l.ttft_s.unwrap().p99;
    eprintln!("open loop: {} requests, TTFT p99 {p99:.3}s", l.requests);
    assert!(p99 >= STALL / 2.0, "open-loop TTFT p99 {p99}");

    // A closed loop sends one request into the stall and waits with it: one slow sample among
    // 400 (each takes at least 4 ms, so the run reaches the stall), so its TTFT p99 looks healthy: the stall is hidden (coordinated omission).
    let up = stalling_stream(stall).await;
    let mut closed = openai_config(&up.url(), Scenario::Offline);
    closed.concurrency_limit = Some(1);
    closed.duration = Duration::ZERO;
    closed.min_queries = 400;
    let r = run_bench(&closed).await.unwrap();
    let l = r.llm.unwrap();
    let ttft = l.ttft_s.unwrap();
    eprintln!(
        "closed loop: {} requests, TTFT p99 {:.3}s, max e2e {:.3}s",
        l.requests,
        ttft.p99,
        r.latency.as_ref().unwrap().max
    );
    assert_eq!(l.requests, 400);
    // It did meet the stall (one request waited for it) ...
    assert!(r.latency.unwrap().max >= STALL / 2.0);
    // ... and its p99 does not show it.
    assert!(ttft.p99 < STALL / 2.0, "closed-loop TTFT p99 {}", ttft.p99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_sweep_answers_with_its_highest_goodput_step() {
    let _serial = SERIAL.lock().await;
    let llm = LlamaCpp::start_with(&["--interrupt_requests", "False"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = inferwatch(
        [
            "bench",
            &llm.url(),
            "--protocol=openai",
            "--input-tokens=8",
            "--output-tokens=4",
            "--sweep-concurrency=1,2",
            "--duration=0",
            "--min-queries=3",
            // Generous: every step passes, so the answer is the higher goodput of the two.
            "--slo-e2e=120s",
            "--json",
            "--quiet",
            &format!("--out={}", dir.path().display()),
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["over"], "concurrency");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    let goodput: Vec<f64> = steps
        .iter()
        .map(|s| s["summary"]["llm"]["goodput_rps"].as_f64().unwrap())
        .collect();
    for (s, users) in steps.iter().zip([1, 2]) {
        assert_eq!(s["concurrency"], users);
        assert_eq!(s["passed"], true, "{s}");
        assert_eq!(s["summary"]["llm"]["slo_results"]["met"], 3);
    }
    let best = &v["best_goodput"];
    let want = if goodput[1] > goodput[0] { 1 } else { 0 };
    assert_eq!(best["step"], want, "{best} vs {goodput:?}");
    assert_eq!(best["goodput_rps"].as_f64(), Some(goodput[want]));
    for f in ["requests-step0.jsonl", "requests-step1.jsonl"] {
        assert_eq!(jsonl(&dir.path().join(f)).len(), 3, "{f}");
    }
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("Goodput vs load") && html.contains("concurrent users"));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("Highest goodput within the SLO"), "{md}");
}

/// A `/metrics` endpoint serving fixed text (the exposition a sidecar or an engine writes).
async fn metrics_endpoint(text: String) -> support::Upstream {
    support::Upstream::start(move |_req| {
        let text = text.clone();
        async move { http::Response::new(full(text)) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturation_is_sampled_during_the_run_and_energy_per_token_read_after_it() {
    let _serial = SERIAL.lock().await;
    let up = stalling_stream((Duration::from_secs(3600), Duration::ZERO)).await;
    // The engine's own metrics (vLLM's names, the fixture the engine tests use).
    let vllm = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/engine/vllm.prom"
    ))
    .unwrap();
    let engine = metrics_endpoint(vllm).await;
    let mut c = openai_config(&up.url(), Scenario::Offline);
    c.concurrency_limit = Some(2);
    c.duration = Duration::from_millis(1500);
    c.engine_metrics = Some(format!("{}/metrics", engine.url()));
    let r = run_bench(&c).await.unwrap();
    let s = r.llm.unwrap().saturation.unwrap();
    // Sampled each second while the run went: at its start and at least once more.
    assert!(s.samples >= 2 && s.failed_samples == 0, "{s:?}");
    assert_eq!(
        (s.waiting_max, s.running_max, s.kv_cache_usage_max),
        (Some(7.0), Some(15.0), Some(0.93))
    );
    assert!(s.source.starts_with("engine "));

    // A sidecar's scrape: its normalised engine gauges, and J per output token.
    let sidecar = metrics_endpoint(
        "inferwatch_engine_requests_waiting{engine=\"llamacpp\"} 2\n\
         inferwatch_engine_requests_running{engine=\"llamacpp\"} 1\n\
         inferwatch_engine_kv_cache_usage_ratio{engine=\"llamacpp\"} 0.5\n\
         inferwatch_energy_source_up{source=\"estimate\"} 1\n\
         inferwatch_energy_per_output_token_joules{kind=\"total\",model=\"m\",route=\"chat\",source=\"estimate\"} 0.125\n"
            .to_string(),
    )
    .await;
    c.engine_metrics = None;
    c.sidecar_metrics = Some(format!("{}/metrics", sidecar.url()));
    c.duration = Duration::from_millis(300);
    let l = run_bench(&c).await.unwrap().llm.unwrap();
    let s = l.saturation.unwrap();
    assert!(s.source.starts_with("sidecar "));
    assert_eq!(
        (s.waiting_mean, s.running_mean, s.kv_cache_usage_mean),
        (Some(2.0), Some(1.0), Some(0.5))
    );
    assert_eq!(l.joules_per_output_token, Some(0.125));
}

/// A streaming upstream that serves one request at a time (FIFO, `service` each, kept in
/// virtual time like `bench_support::fifo_upstream`): its first token comes when its turn does.
async fn fifo_stream(service: Duration) -> support::Upstream {
    use futures_util::stream;
    use http_body_util::StreamBody;
    let next_free = std::sync::Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
    support::Upstream::start(move |_req| {
        let next_free = next_free.clone();
        async move {
            let finish = {
                let mut free = next_free.lock().unwrap();
                *free = (*free).max(tokio::time::Instant::now()) + service;
                *free
            };
            tokio::time::sleep_until(finish).await;
            let events = stream::iter(["t0", "t1", "[DONE]"].map(|t| {
                let data = if t == "[DONE]" {
                    "data: [DONE]\n\n".to_string()
                } else {
                    format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{t}\"}}}}]}}\n\n")
                };
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes::Bytes::from(data)))
            }));
            let body = StreamBody::new(events).map_err(|e| match e {}).boxed();
            http::Response::builder()
                .header("content-type", "text/event-stream")
                .body(body)
                .unwrap()
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_sweep_is_judged_by_the_token_slo_and_answers_with_goodput() {
    use inferwatch::bench::{run_sweep, SweepConfig};
    let _serial = SERIAL.lock().await;
    // One request at a time, 10 ms each: 100 requests/s at most; a 100 ms TTFT bound for 90%
    // of requests holds below that rate and fails well past it.
    let up = fifo_stream(Duration::from_millis(10)).await;
    let mut base = openai_config(&up.url(), Scenario::Server);
    base.duration = Duration::from_secs(1);
    base.slo.ttft_secs = 0.1;
    base.slo_attainment = 0.9;
    base.max_error_ratio = 0.0;
    let sc = SweepConfig {
        base,
        start_qps: 20.0,
        min_qps: 2.0,
        max_qps: 1000.0,
        tolerance: 0.25,
        max_steps: 10,
    };
    let r = run_sweep(&sc).await.unwrap();
    assert_eq!(r.over, "rate");
    assert!(r.slo_p99_secs.is_none());
    for s in &r.steps {
        let l = s.summary.llm.as_ref().unwrap();
        eprintln!(
            "step {} {:.1} qps: goodput {:.1}/s, {:.0}% met -> {}",
            s.index,
            s.qps,
            l.goodput_rps,
            l.slo_attainment * 100.0,
            s.passed
        );
        // A step passes exactly when 90% of its requests met the bound (no errors here).
        assert_eq!(s.passed, l.slo_attainment >= 0.9 && s.summary.errors == 0);
    }
    let cap = r.capacity_qps.expect("a rate within the SLO");
    assert!(r.failing_qps.is_some_and(|f| f > cap));
    // Short steps let a server at full load (100/s) keep its queue short for a second; well
    // past it the queue grows and the bound fails.
    assert!((20.0..200.0).contains(&cap), "capacity {cap}");
    // The answer: the passing step with the highest goodput.
    let best = r.best_goodput.clone().unwrap();
    let top = r
        .steps
        .iter()
        .filter(|s| s.passed)
        .map(|s| s.summary.llm.as_ref().unwrap().goodput_rps)
        .fold(0.0, f64::max);
    assert_eq!(best.goodput_rps, top);
    assert!(r.steps[best.step].passed && best.qps == Some(r.steps[best.step].qps));
}
