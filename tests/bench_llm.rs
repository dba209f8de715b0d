//! `inferwatch bench --protocol openai` token workloads against the real llama.cpp server:
//! synthetic lengths honoured as the server counts them, goodput equal to a client-side
//! classification of the same requests, a ShareGPT file replayed, a concurrency sweep's answer;
//! and bad datasets refused with the line named. Properties of the client itself (coordinated
//! omission, saturation sampling, rate sweeps) are in `bench_llm_client.rs`.

mod bench_support;
mod support;

use std::path::Path;

use bench_support::SERIAL;
use http_body_util::BodyExt;
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
    // Each step sends new prompts (a prefix cache would answer repeats faster): step 1 goes
    // on where step 0 stopped.
    for (f, first) in [("requests-step0.jsonl", 0), ("requests-step1.jsonl", 3)] {
        let items: Vec<u64> = jsonl(&dir.path().join(f))
            .iter()
            .map(|r| r["item"].as_u64().unwrap())
            .collect();
        assert_eq!(items, (first..first + 3).collect::<Vec<_>>(), "{f}");
    }
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("Goodput vs load") && html.contains("concurrent users"));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("Highest goodput within the SLO"), "{md}");
}
