//! Issues 13 and 16: `inferwatch report --prometheus` gives the goodput capacity of an LLM route
//! per replica and says *why* the first failing load band fails from the engine's own gauges.
//! Two replicas, each a sidecar in front of a scripted OpenAI streaming upstream whose engine
//! `/metrics` (vLLM's names; a test double whose values follow the load it serves) the sidecar
//! scrapes: one engine with two batch slots, whose requests queue beyond them (TTFT grows with
//! the queue), and one with room for any batch but a KV cache for four requests, preempting the
//! rest (TTFT grows with the recompute). A real Prometheus scrapes both sidecars during a load
//! ramp through each; the report names queueing for the first and KV-cache exhaustion for the
//! second.

mod bench_support;
mod support;

use std::convert::Infallible;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bench_support::{check_files, chromium, render, shots, Prometheus, SERIAL};
use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use inferwatch::bench::capacity::CapacityReport;
use inferwatch::bench::client::Target;
use inferwatch::bench::why::Cause;
use inferwatch::bench::{run_bench, BenchConfig, Scenario};
use inferwatch::engine::config::EngineKind;
use inferwatch::routes::config::{Protocol, RouteConfig, SloConfig};
use support::{full, test_config, Sidecar, Upstream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_inferwatch");
/// Time to the first token with the engine free, then three more tokens `GAP` apart: a request
/// holds its slot for 50 ms.
const FIRST: Duration = Duration::from_millis(20);
const GAP: Duration = Duration::from_millis(10);
/// The route's TTFT bound: ten times the free TTFT, so a loaded test machine's timer jitter
/// does not miss it, and only a real queue or a recompute does.
const SLO_TTFT: f64 = 0.2;
/// The queueing engine: two slots of 50 ms, saturated at 40 requests/s.
const SLOTS: usize = 2;
const SATURATION: f64 = 40.0;
/// The KV engine: a cache for six running requests; a request arriving when it is full is
/// preempted and recomputed, which costs more than the TTFT bound. (At 40 requests/s of 50 ms
/// about two run at once, and a burst fills the cache a few times in a hundred.)
const KV_REQUESTS: f64 = 6.0;
const RECOMPUTE: Duration = Duration::from_millis(300);
/// The ramp through each sidecar, as fractions of `SATURATION`, 5 s each.
const RAMP: [f64; 7] = [0.25, 0.5, 0.7, 0.85, 1.0, 1.15, 1.3];
const STAGE: Duration = Duration::from_secs(5);

/// What the scripted engine exposes, following the load it serves.
#[derive(Default)]
struct State {
    running: f64,
    waiting: f64,
    preemptions: f64,
    queue_secs: f64,
    compute_secs: f64,
}

#[derive(Clone)]
struct Engine {
    state: Arc<Mutex<State>>,
    /// `Some`: the queueing engine's slots; `None`: the KV engine.
    slots: Option<Arc<Semaphore>>,
}

impl Engine {
    fn new(slots: Option<usize>) -> Self {
        Self {
            state: Arc::default(),
            slots: slots.map(|n| Arc::new(Semaphore::new(n))),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// vLLM's metric names (docs.vllm.ai, "Production Metrics").
    fn exposition(&self) -> String {
        let capacity = if self.slots.is_some() {
            // Room for four times the slots: a queueing engine's cache is never the limit.
            SLOTS as f64 * 4.0
        } else {
            KV_REQUESTS
        };
        self.with(|s| {
            let m = "{model_name=\"m\"}";
            format!(
                "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{m} {}\n\
                 # TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{m} {}\n\
                 # TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{m} {}\n\
                 # TYPE vllm:num_preemptions_total counter\nvllm:num_preemptions_total{m} {}\n\
                 vllm:request_queue_time_seconds_sum{m} {}\n\
                 vllm:request_inference_time_seconds_sum{m} {}\n",
                s.running,
                s.waiting,
                (s.running / capacity).min(1.0),
                s.preemptions,
                s.queue_secs,
                s.compute_secs
            )
        })
    }

    /// One request: wait for a slot (queueing engine) or be preempted when the cache is full
    /// (KV engine), then stream four tokens.
    async fn serve(self, tx: tokio::sync::mpsc::Sender<Result<Frame<Bytes>, Infallible>>) {
        let arrived = Instant::now();
        let mut permit = None;
        if let Some(slots) = &self.slots {
            self.with(|s| s.waiting += 1.0);
            permit = Some(slots.clone().acquire_owned().await.unwrap());
            self.with(|s| {
                s.waiting -= 1.0;
                s.queue_secs += arrived.elapsed().as_secs_f64();
            });
        }
        if self.slots.is_none() && self.with(|s| s.running >= KV_REQUESTS) {
            // No room in the cache: preempted, back in the queue until recomputed, as vLLM
            // does (its blocks freed, so it is not running meanwhile).
            self.with(|s| {
                s.preemptions += 1.0;
                s.waiting += 1.0;
            });
            tokio::time::sleep(RECOMPUTE).await;
            self.with(|s| s.waiting -= 1.0);
        }
        let started = Instant::now();
        self.with(|s| s.running += 1.0);
        let chunk = |delta: &str, finish: &str| {
            format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n")
        };
        let mut events = vec![(FIRST, chunk("{\"content\":\"a\"}", "null"))];
        for t in ["b", "c", "d"] {
            events.push((GAP, chunk(&format!("{{\"content\":\"{t}\"}}"), "null")));
        }
        events.push((Duration::ZERO, chunk("{}", "\"stop\"")));
        events.push((Duration::ZERO, "data: [DONE]\n\n".to_string()));
        for (wait, e) in events {
            tokio::time::sleep(wait).await;
            if tx.send(Ok(Frame::data(Bytes::from(e)))).await.is_err() {
                break;
            }
        }
        self.with(|s| {
            s.running -= 1.0;
            s.compute_secs += started.elapsed().as_secs_f64();
        });
        drop(permit);
    }
}

/// The OpenAI upstream and the engine's `/metrics`, both over the same engine.
async fn upstreams(engine: &Engine) -> (Upstream, Upstream) {
    let e = engine.clone();
    let chat = Upstream::start(move |req: http::Request<hyper::body::Incoming>| {
        let e = e.clone();
        async move {
            let _ = req.into_body().collect().await;
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            tokio::spawn(e.serve(tx));
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|v| (v, rx))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(StreamBody::new(stream).map_err(|e| match e {}).boxed())
                .unwrap()
        }
    })
    .await;
    let e = engine.clone();
    let metrics = Upstream::start(move |_req| {
        let text = e.exposition();
        async move { Response::new(full(text)) }
    })
    .await;
    (chat, metrics)
}

fn sidecar_config(chat: &Upstream, metrics: &Upstream) -> inferwatch::config::Config {
    let mut cfg = test_config(&chat.url());
    cfg.proxy.routes = vec![RouteConfig {
        name: "chat".into(),
        path_prefix: "/v1/".into(),
        protocol: Protocol::Openai,
        model: "m".into(),
        slo: SloConfig {
            ttft_secs: SLO_TTFT,
            ..SloConfig::default()
        },
        ..RouteConfig::default()
    }];
    cfg.engine.metrics_url = format!("{}/metrics", metrics.url());
    cfg.engine.kind = EngineKind::Vllm;
    cfg.engine.interval_secs = 0.25;
    cfg.engine.timeout_secs = 0.2;
    cfg
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goodput_capacity_names_queueing_and_kv_cache_exhaustion() {
    let _serial = SERIAL.lock().await;
    chromium();
    let queueing = Engine::new(Some(SLOTS));
    let kv = Engine::new(None);
    let (q_chat, q_metrics) = upstreams(&queueing).await;
    let (k_chat, k_metrics) = upstreams(&kv).await;
    let q_side = Sidecar::start(sidecar_config(&q_chat, &q_metrics)).await;
    let k_side = Sidecar::start(sidecar_config(&k_chat, &k_metrics)).await;
    let prom =
        Prometheus::start(&[q_side.admin_addr.to_string(), k_side.admin_addr.to_string()]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let started = unix_now();
    let ramps: Vec<_> = [&q_side, &k_side]
        .into_iter()
        .map(|sc| {
            let url = sc.url("/v1/chat/completions");
            tokio::spawn(async move {
                for (i, f) in RAMP.iter().enumerate() {
                    let mut c = BenchConfig::new(
                        Target::parse(&url).unwrap(),
                        Protocol::Openai,
                        Scenario::Server,
                    );
                    c.progress = false;
                    c.qps = SATURATION * f;
                    c.duration = STAGE;
                    c.seed = i as u64 + 1;
                    c.timeout = Duration::from_secs(30);
                    run_bench(&c).await.unwrap();
                }
            })
        })
        .collect();
    for r in ramps {
        r.await.unwrap();
    }
    let ended = unix_now();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let out = tempfile::tempdir().unwrap();
    let args: Vec<String> = vec![
        "report".into(),
        "--prometheus".into(),
        prom.url.clone(),
        "--range".into(),
        format!("{:.3}", ended - started + 2.0),
        "--end".into(),
        format!("{:.3}", ended + 1.0),
        "--step".into(),
        "1s".into(),
        "--rate-window".into(),
        "3s".into(),
        "--bands".into(),
        "8".into(),
        "--goodput-target".into(),
        "0.99".into(),
        "--out".into(),
        out.path().display().to_string(),
        "--json".into(),
    ];
    let text_args: Vec<String> = args.iter().filter(|a| *a != "--json").cloned().collect();
    let o = tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().unwrap())
        .await
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: CapacityReport = serde_json::from_slice(&o.stdout).unwrap();
    let o =
        tokio::task::spawn_blocking(move || Command::new(BIN).args(&text_args).output().unwrap())
            .await
            .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!("{text}");
    for w in [
        "goodput capacity per replica",
        "why it fails beyond",
        "BELOW TARGET",
    ] {
        assert!(text.contains(w), "the text report lacks {w}");
    }
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    eprintln!("{md}");
    let g = r
        .goodput
        .iter()
        .find(|g| g.route == "chat")
        .unwrap_or_else(|| panic!("no goodput for the chat route in {r:#?}"));
    assert_eq!(g.replicas.len(), 2, "{g:#?}");
    // Every request was classified, and the counts over the range are whole.
    let sent: f64 = g.requests_by_result.values().sum();
    assert!(sent > 500.0, "{g:#?}");
    for (side, want) in [
        (&q_side, Cause::Queueing),
        (&k_side, Cause::KvCacheExhaustion),
    ] {
        let name = side.admin_addr.to_string();
        let rep = g
            .replicas
            .iter()
            .find(|x| x.replica == name)
            .unwrap_or_else(|| panic!("no replica {name} in {g:#?}"));
        let why = rep
            .why
            .as_ref()
            .unwrap_or_else(|| panic!("no failing band for {name}: {rep:#?}"));
        assert_eq!(why.cause, want, "{name}: {rep:#?}");
        // The capacity lies below the failing band and the engine's saturation.
        let cap = rep
            .capacity_qps
            .unwrap_or_else(|| panic!("no capacity for {name}: {rep:#?}"));
        assert!(cap <= why.qps_high && cap < SATURATION * 1.3, "{rep:#?}");
        // The gauges are in the bands the report shows.
        assert!(rep.bands.iter().any(|b| b.engine.steps > 0), "{rep:#?}");
    }
    for w in ["Goodput capacity", "queueing", "KV-cache exhaustion"] {
        assert!(md.contains(w), "report.md lacks {w}");
    }
    let json = check_files(out.path());
    assert_eq!(json["kind"], "capacity");
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("Goodput ratio by load band"));
    let png = shots().join("goodput.png");
    render(&out.path().join("report.html"), &png);
    eprintln!("screenshot: {}", png.display());
    drop(prom);
    q_side.shutdown().await;
    k_side.shutdown().await;
}
