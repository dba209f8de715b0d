//! `inferwatch bench --protocol openai`: properties of the client, against scripted OpenAI
//! streaming upstreams (test doubles; the real server is in `bench_llm.rs`): coordinated
//! omission (an upstream that stalls shows in the open-loop TTFT p99, not in a closed loop's),
//! the engine's saturation sampled while a run goes and J per output token read after it, and a
//! rate sweep judged by a per-request token SLO.

mod bench_support;
mod support;

use std::time::Duration;

use bench_support::SERIAL;
use http_body_util::BodyExt;
use inferwatch::bench::client::Target;
use inferwatch::bench::{run_bench, BenchConfig, Scenario};
use inferwatch::routes::config::Protocol;
use support::full;

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
