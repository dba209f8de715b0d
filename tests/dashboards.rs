//! Grafana dashboards (`dashboards/*.json`) against real data: the real binary serves mixed
//! KServe V2, OpenAI streaming and gRPC (trailers-only answers) traffic with a quality chart, a drift test, RAPL (a fixture
//! tree) and the CPU estimate; a real Prometheus (`/usr/bin/prometheus` on loopback, 1 s scrape
//! and rule interval, the recording rules of `dashboards/rules/` loaded) scrapes it; every
//! panel's, annotation's and variable's PromQL is evaluated through the HTTP API over the run
//! and must be valid and return data. The test names every panel that fails.
//!
//! Allowed empty, each with its reason (see [`ALLOWED_EMPTY`]): GPU series (no GPU here) and
//! the chi-square drift statistic (no categorical signal). The canary and shadow panels are fed
//! by a golden set and an HTTP shadow of the same upstream.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use support::*;

/// Metric names (substrings of a query) whose panels may be empty here, and why.
const ALLOWED_EMPTY: &[(&str, &str)] = &[
    ("inferwatch_gpu_", "no GPU (NVML) on the test machine"),
    (
        "inferwatch_drift_chi_square_p_value",
        "needs a categorical drift signal; no adapter pushes one yet",
    ),
];

fn prometheus_bin() -> String {
    let p = std::env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    assert!(
        Path::new(&p).is_file(),
        "{p} not found: run scripts/install-peers.sh (Debian package prometheus)"
    );
    p
}

/// RAPL powercap fixture with one package zone whose counter the test advances.
fn rapl_fixture(root: &Path) -> std::path::PathBuf {
    let dir = root.join("intel-rapl:0");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("name"), "package-0\n").unwrap();
    std::fs::write(dir.join("max_energy_range_uj"), "262143328850\n").unwrap();
    std::fs::write(dir.join("energy_uj"), "1000000\n").unwrap();
    dir
}

fn kserve_body(n: u64) -> String {
    // Confident answers over three classes; class and confidence vary with n.
    let p = 0.80 + 0.03 * (n % 5) as f64;
    let rest = (1.0 - p) / 2.0;
    let mut probs = [rest, rest, rest];
    probs[(n % 3) as usize] = p;
    format!(
        r#"{{"model_name":"iris","outputs":[{{"name":"probs","shape":[1,3],"datatype":"FP32","data":[{},{},{}]}}]}}"#,
        probs[0], probs[1], probs[2]
    )
}

fn sse_event(content: &str) -> String {
    format!(
        "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"tiny-llm\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
    )
}

async fn start_upstream() -> Upstream {
    let served = Arc::new(AtomicU64::new(0));
    Upstream::start(move |req: Request<hyper::body::Incoming>| {
        let n = served.fetch_add(1, Ordering::Relaxed);
        let path = req.uri().path().to_string();
        async move {
            // 1-12 ms of "inference", so the histograms have a spread.
            tokio::time::sleep(Duration::from_millis(1 + n % 12)).await;
            if path.starts_with("/inference.GRPCInferenceService/") {
                // A gRPC server's trailers-only answer: OK, or NOT_FOUND for one call in four,
                // so the gRPC code panels have more than one code.
                let code = if n % 4 == 1 { "5" } else { "0" };
                return Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", code)
                    .body(full(""))
                    .unwrap();
            }
            if path == "/metrics" {
                // The model server's own metrics, for the engine saturation panels: vLLM's
                // documented names, growing with every scrape so rates have data.
                let text = include_str!("fixtures/engine/vllm.prom").replace(
                    "vllm:request_queue_time_seconds_sum{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 12.5",
                    &format!("vllm:request_queue_time_seconds_sum{{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}} {}", 12.5 + n as f64),
                ).replace(
                    "vllm:request_inference_time_seconds_sum{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 80.25",
                    &format!("vllm:request_inference_time_seconds_sum{{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}} {}", 80.25 + n as f64),
                ).replace(
                    "vllm:num_preemptions_total{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 5.0",
                    &format!("vllm:num_preemptions_total{{engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}} {}", 5 + n),
                );
                return Response::new(full(text));
            }
            if path.starts_with("/v1/") {
                let mut events: Vec<String> = ["Hello", " from", " a", " tiny", " model"]
                    .iter()
                    .map(|w| sse_event(w))
                    .collect();
                events.push(
                    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"tiny-llm\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5,\"total_tokens\":12,\"prompt_tokens_details\":{\"cached_tokens\":4},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n".into(),
                );
                events.push("data: [DONE]\n\n".into());
                let stream = futures_util::stream::unfold(events.into_iter(), |mut it| async move {
                    let e = it.next()?;
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    Some((
                        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper::body::Frame::data(
                            Bytes::from(e),
                        )),
                        it,
                    ))
                });
                return Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(StreamBody::new(stream).boxed())
                    .unwrap();
            }
            if n % 25 == 7 {
                return Response::builder()
                    .status(500)
                    .body(full("model failed"))
                    .unwrap();
            }
            Response::builder()
                .header("content-type", "application/json")
                .body(full(kserve_body(n)))
                .unwrap()
        }
    })
    .await
}

/// A golden set for the canary panels: the test upstream answers in rotation, so some rows are
/// right and some wrong, and the accuracy panels have a value that is not trivially 1.
fn golden_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("golden.jsonl");
    let row = |class: &str| {
        format!(
            r#"{{"request":{{"inputs":[{{"name":"x","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}}]}},"expect":{{"class":"{class}"}}}}"#
        )
    };
    let rows = [row("setosa"), row("versicolor"), row("virginica")].join("\n");
    std::fs::write(&path, rows + "\n").unwrap();
    path
}

fn sidecar_config(upstream: &str, proxy: u16, admin: u16, rapl_root: &Path) -> String {
    format!(
        r#"
[proxy]
listen = "127.0.0.1:{proxy}"
upstream = "{upstream}"
worker_threads = 1

[[proxy.routes]]
name = "infer"
path_prefix = "/v2/models/"
protocol = "kserve_v2"
model = "iris"
[proxy.routes.prediction]
class_labels = ["setosa", "versicolor", "virginica"]
feature_bounds = [{{ feature = 0, max = 8.0 }}]

[[proxy.routes]]
name = "chat"
path_prefix = "/v1/"
protocol = "openai"
model = "tiny-llm"
[proxy.routes.slo]
ttft_secs = 5.0
e2e_secs = 10.0

[[proxy.routes]]
name = "grpc"
path_prefix = "/inference.GRPCInferenceService/"
model = "iris"

[admin]
listen = "127.0.0.1:{admin}"

[engine]
metrics_url = "{upstream}/metrics"
interval_secs = 0.5
timeout_secs = 0.4

[[canary]]
name = "iris_golden"
route = "infer"
path = "/v2/models/iris/infer"
golden_file = "{golden}"
interval_secs = 0.5
jitter_secs = 0.0

[[shadow.targets]]
name = "mirror"
route = "infer"
kind = "http"
url = "{upstream}"
sample_ratio = 0.5

[latency]
windows_secs = [60]
slot_secs = 1

[energy]
nvml = "off"
rapl = "on"
rapl_root = "{rapl}"
# Traffic never pauses here, so idle power cannot be measured: configure it (kind="dynamic").
rapl_idle_watts = 10.0
estimate = "on"
estimate_idle_watts = 0.5
interval_secs = 0.5
window_secs = 10.0

[system]
pid = {pid}
interval_secs = 0.5

[quality]
# Latency p99 held against a fixed, impossible baseline: every subgroup signals, so the alarm
# panels and annotations have data.
[[quality.charts]]
name = "infer_latency"
signal = "latency_p99:infer"
kind = "shewhart"
subgroup_interval_secs = 1.0
center = 0.00001
sigma = 0.000001
# The error fraction, learned in a short Phase I.
[[quality.charts]]
name = "infer_errors"
signal = "request_error:infer"
kind = "p"
subgroup_interval_secs = 1.0
phase1_subgroups = 3
# Prediction confidence from the KServe adapter.
[[quality.charts]]
name = "infer_confidence"
signal = "confidence:infer"
kind = "ewma"
subgroup_size = 10
phase1_subgroups = 3

[[quality.drift]]
signal = "confidence:infer"
reference_size = 50
window_size = 50
bins = 5
"#,
        rapl = rapl_root.display(),
        golden = golden_file(rapl_root).display(),
        pid = std::process::id(),
    )
}

fn prometheus_config(admin: SocketAddr) -> String {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/rules");
    format!(
        r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}/*.yaml
scrape_configs:
  - job_name: inferwatch
    static_configs:
      - targets: ["{admin}"]
        labels:
          pod: inferwatch-test-0
          namespace: test
"#,
        rules = rules.display()
    )
}

/// Percent-encoding for a query-string value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Grafana's variables, as "All" selected and a dashboard showing the last few minutes.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "20s")
        .replace("$__interval", "1s")
        .replace("$__range", "1m")
        .replace("$pod", ".*")
        .replace("$route", ".*")
        .replace("$model", ".*")
        .replace("$chart", ".*")
        .replace("$signal", ".*")
}

/// Every query of a dashboard: (what it is, expression).
fn queries(d: &serde_json::Value) -> Vec<(String, String)> {
    let title = d["title"].as_str().unwrap_or("?").to_string();
    let mut out = Vec::new();
    fn panels(title: &str, ps: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in ps.as_array().into_iter().flatten() {
            let pt = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                let e = t["expr"].as_str().unwrap_or_default();
                out.push((
                    format!(
                        "{title} / panel \"{pt}\" / {}",
                        t["refId"].as_str().unwrap_or("?")
                    ),
                    e.to_string(),
                ));
            }
            panels(title, &p["panels"], out);
        }
    }
    panels(&title, &d["panels"], &mut out);
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(e) = a["expr"].as_str() {
            out.push((
                format!(
                    "{title} / annotation \"{}\"",
                    a["name"].as_str().unwrap_or("?")
                ),
                e.to_string(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["definition"].as_str() {
            // label_values(SELECTOR, label) → the selector must have series.
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map(|(s, _)| s.trim().to_string())
                .unwrap_or_else(|| panic!("{title}: variable query {q} is not label_values(...)"));
            out.push((
                format!("{title} / variable ${}", v["name"].as_str().unwrap_or("?")),
                inner,
            ));
        }
    }
    out
}

async fn api(prom: &str, path_and_query: &str) -> serde_json::Value {
    let (status, body) = get(&format!("{prom}{path_and_query}")).await;
    let v: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{path_and_query}: {status} {e}: {body}"));
    v
}

/// Evaluate over [start, now]: Ok(series count) or Err(error text).
async fn eval(prom: &str, expr: &str, start: f64) -> Result<usize, String> {
    let end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let v = api(
        prom,
        &format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step=1",
            enc(expr)
        ),
    )
    .await;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].as_array().map_or(0, Vec::len))
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let d = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), d)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn dashboards_are_importable_with_the_variables() {
    let all = dashboards();
    assert_eq!(all.len(), 4, "overview, quality, energy, capacity");
    let mut uids = std::collections::HashSet::new();
    for (file, d) in &all {
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_string()),
            "{file}: uid reused"
        );
        assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "{file}");
        let vars: Vec<&str> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        for want in ["datasource", "pod", "route", "model"] {
            assert!(vars.contains(&want), "{file}: no ${want} variable");
        }
        let ds = &d["templating"]["list"][0];
        assert_eq!(ds["type"], "datasource", "{file}");
        assert_eq!(ds["query"], "prometheus", "{file}");
        for (what, expr) in queries(d) {
            assert!(!expr.trim().is_empty(), "{what}: empty expression");
        }
        fn check_ds(file: &str, ps: &serde_json::Value) {
            for p in ps.as_array().into_iter().flatten() {
                if p["type"] != "row" {
                    assert_eq!(
                        p["datasource"]["uid"], "${datasource}",
                        "{file}: {}",
                        p["title"]
                    );
                }
                check_ds(file, &p["panels"]);
            }
        }
        check_ds(file, &d["panels"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_data_from_a_real_prometheus() {
    let prom_bin = prometheus_bin();
    let dir = tempfile::tempdir().unwrap();
    let rapl_zone = rapl_fixture(dir.path());
    let up = start_upstream().await;

    // The real binary, config checked first as systemd's ExecStartPre would.
    let (proxy_port, admin_port) = (free_port(), free_port());
    let cfg_path = dir.path().join("inferwatch.toml");
    std::fs::write(
        &cfg_path,
        sidecar_config(&up.url(), proxy_port, admin_port, dir.path()),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_inferwatch");
    let check = Command::new(bin)
        .args(["check-config", "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "check-config:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let _sidecar = KillOnDrop(
        Command::new(bin)
            .args(["run", "--config"])
            .arg(&cfg_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let admin_url = format!("http://{admin}");
    assert_eventually!(
        client()
            .request(
                Request::get(format!("{admin_url}/readyz"))
                    .body(full(""))
                    .unwrap()
            )
            .await
            .is_ok_and(|r| r.status() == 200),
        Duration::from_secs(20)
    );

    // Prometheus on loopback with the recording rules.
    let prom_port = free_port();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(&prom_cfg, prometheus_config(admin)).unwrap();
    let prom_log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = KillOnDrop(
        Command::new(&prom_bin)
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(prom_log)
            .spawn()
            .unwrap(),
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    // Traffic: KServe V2 (some inputs out of the feature bounds), OpenAI streams, and the RAPL
    // counter advancing at 50 W.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..3u64 {
        let stop = stop.clone();
        let url = format!("http://127.0.0.1:{proxy_port}");
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let req = if worker == 1 && i.is_multiple_of(3) {
                    Request::post(format!("{url}/inference.GRPCInferenceService/ModelInfer"))
                        .header("content-type", "application/grpc")
                        .body(full(&b"\0\0\0\0\0"[..]))
                        .unwrap()
                } else if worker == 2 && i.is_multiple_of(2) {
                    Request::post(format!("{url}/v1/chat/completions"))
                        .header("content-type", "application/json")
                        .body(full(r#"{"model":"tiny-llm","stream":true,"messages":[{"role":"user","content":"hi"}]}"#))
                        .unwrap()
                } else {
                    let x0 = if i.is_multiple_of(10) { 9.5 } else { 5.0 + (i % 7) as f64 * 0.2 };
                    Request::post(format!("{url}/v2/models/iris/infer"))
                        .header("content-type", "application/json")
                        .body(full(format!(
                            r#"{{"inputs":[{{"name":"x","shape":[1,4],"datatype":"FP32","data":[{x0},3.0,1.4,0.2]}}]}}"#
                        )))
                        .unwrap()
                };
                if let Ok(r) = c.request(req).await {
                    let _ = r.into_body().collect().await;
                }
            }
        }));
    }
    {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut uj: u64 = 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                uj += 5_000_000; // 5 J per 100 ms
                let tmp = rapl_zone.join(".energy_uj.tmp");
                std::fs::write(&tmp, format!("{uj}\n")).unwrap();
                std::fs::rename(&tmp, rapl_zone.join("energy_uj")).unwrap();
            }
        }));
    }

    // Prometheus up, the target scraped, the recording rules producing.
    assert_eventually!(
        client()
            .request(
                Request::get(format!("{prom}/-/ready"))
                    .body(full(""))
                    .unwrap()
            )
            .await
            .is_ok_and(|r| r.status() == 200),
        Duration::from_secs(30)
    );
    assert_eventually!(
        eval(
            &prom,
            "route_model_source:inferwatch_energy_per_inference_joules:ratio_rate5m",
            start
        )
        .await
        .is_ok_and(|n| n > 0)
            && eval(&prom, "inferwatch_drift_psi", start)
                .await
                .is_ok_and(|n| n > 0)
            && eval(
                &prom,
                "increase(inferwatch_spc_alarms_total[1m]) > 0",
                start
            )
            .await
            .is_ok_and(|n| n > 0),
        Duration::from_secs(60)
    );
    // A few more seconds so every rate has several points.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let mut failures = Vec::new();
    let mut checked = 0;
    let mut allowed_empty = Vec::new();
    for (file, d) in dashboards() {
        for (what, expr) in queries(&d) {
            checked += 1;
            let q = substitute(&expr);
            match eval(&prom, &q, start).await {
                Err(e) => failures.push(format!("{file}: {what}: invalid: {e}\n    {q}")),
                Ok(0) => match ALLOWED_EMPTY.iter().find(|(m, _)| q.contains(m)) {
                    Some((_, why)) => allowed_empty.push(format!("{what} ({why})")),
                    None => failures.push(format!("{file}: {what}: no data\n    {q}")),
                },
                Ok(_) => {}
            }
        }
    }

    // Every rule loaded and healthy, and every recording rule with data.
    let rules = api(&prom, "/api/v1/rules").await;
    let mut recorded = 0;
    for g in rules["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let name = r["name"].as_str().unwrap();
            if r["health"] != "ok" {
                failures.push(format!(
                    "rule {name}: health {} {}",
                    r["health"], r["lastError"]
                ));
            }
            if r["type"] == "recording" {
                recorded += 1;
                match eval(&prom, name, start).await {
                    Ok(n) if n > 0 => {}
                    other => failures.push(format!("recording rule {name}: {other:?}")),
                }
            }
        }
    }
    assert!(
        recorded >= 10,
        "only {recorded} recording rules loaded: {rules}"
    );

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    if !allowed_empty.is_empty() {
        eprintln!("allowed empty:\n  {}", allowed_empty.join("\n  "));
    }
    assert!(checked > 60, "only {checked} queries found");
    if !failures.is_empty() {
        let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(10).collect();
        let _ = std::io::stderr()
            .write_all(format!("prometheus log tail:\n{}\n", tail.join("\n")).as_bytes());
        panic!(
            "{} of {checked} queries failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
