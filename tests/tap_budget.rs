//! The tap's byte budget holds: while an upstream returns 4 MiB bodies to 64 concurrent clients
//! and inspection is slowed, what the tap keeps alive stays within `inspection.max_queued_bytes`
//! (the process RSS grows by at most the budget plus the in-flight streams' own buffers), and the
//! exchanges it could not hold are counted as `dropped_budget` — every response still arrives whole.
//! And when the inspector lags behind a burst, the tap records one exchange in
//! `busy_sample_one_in` and counts the rest as `sampled_out`: every exchange is accounted for.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use inferwatch::app::App;
use inferwatch::protocol::{CaptureHook, Seen};
use inferwatch::routes::config::Protocol;
use support::*;

const BODY: usize = 4 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
const CLIENTS: usize = 64;
const PER_CLIENT: usize = 6;
const MIB: u64 = 1024 * 1024;

/// Resident set size of this process, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A slow consumer of captures: the inspector falls behind, so captures pile up in the tap.
struct Slow;

impl CaptureHook for Slow {
    fn seen(&self, _: &Seen<'_>) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tap_holds_no_more_than_its_byte_budget() {
    // One static 4 MiB body, sent in 64 KiB slices: the upstream allocates nothing per request.
    let body: &'static [u8] = Box::leak(vec![b' '; BODY].into_boxed_slice());
    let up = Upstream::start(move |_req: Request<hyper::body::Incoming>| async move {
        let chunks = body
            .chunks(CHUNK)
            .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(c))));
        let stream = futures_util::stream::iter(chunks);
        Response::builder()
            .header("content-type", "application/json")
            .body(StreamBody::new(stream).map_err(|e| match e {}).boxed())
            .unwrap()
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.routes[0].protocol = Protocol::KserveV2;
    cfg.inspection.max_body_bytes = 8 * MIB;
    let budget = cfg.inspection.max_queued_bytes;
    assert_eq!(budget, 32 * MIB, "the documented default");
    let mut app = App::build(cfg).unwrap();
    app.add_capture_hook(Arc::new(Slow));
    let sidecar = Sidecar::start_app(app).await;
    let url = sidecar.url("/v2/models/m/infer");

    let client = client();
    let send = |client: hyper_util::client::legacy::Client<_, Body>, url: String| async move {
        let req = Request::post(url).body(full("{}")).unwrap();
        let resp = client.request(req).await.expect("response");
        let mut body = resp.into_body();
        let mut got = 0usize;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("body").into_data() {
                got += data.len();
            }
        }
        got
    };
    // Warm up: connections, buffers and allocator arenas as they will be under load.
    assert_eq!(send(client.clone(), url.clone()).await, BODY);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = rss_bytes();

    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_CLIENT {
                assert_eq!(
                    send(client.clone(), url.clone()).await,
                    BODY,
                    "a whole body"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    sampling.abort();
    let grew = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    let sent = (CLIENTS * PER_CLIENT) as u64 * BODY as u64;
    eprintln!(
        "RSS grew {} MiB at peak over {} MiB baseline; {} MiB of bodies proxied; budget {} MiB",
        grew / MIB,
        baseline / MIB,
        sent / MIB,
        budget / MIB
    );
    // Without the budget the queue (1024 captures) would hold every body the slow inspector has
    // not read yet: over a GiB here. With it, the tap holds at most 32 MiB; the rest of the growth
    // is 64 streams' buffers in the client, the proxy and the upstream of this one process.
    assert!(
        grew < budget + 160 * MIB,
        "RSS grew {} MiB, more than the budget ({} MiB) plus the streams' buffers",
        grew / MIB,
        budget / MIB
    );
    assert_eventually!(
        sidecar.scrape().await.sum(
            "inferwatch_inspection_total",
            &[("result", "dropped_budget")]
        ) > 0.0
    );
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_a_lagging_inspector_is_sampled_and_every_exchange_counted() {
    const ANSWER: &str = r#"{"model_name":"m","outputs":[{"name":"p","datatype":"FP32","shape":[1,3],"data":[0.1,0.7,0.2]}]}"#;
    const REQUEST: &str =
        r#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;
    let up = Upstream::start(|_req: Request<hyper::body::Incoming>| async move {
        Response::builder()
            .header("content-type", "application/json")
            .body(full(ANSWER))
            .unwrap()
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.routes[0].protocol = Protocol::KserveV2;
    cfg.inspection.queue_capacity = 16;
    assert_eq!(
        cfg.inspection.busy_sample_one_in, 10,
        "the documented default"
    );
    let mut app = App::build(cfg).unwrap();
    app.add_capture_hook(Arc::new(Slow));
    let sidecar = Sidecar::start_app(app).await;
    let url = sidecar.url("/v2/models/m/infer");

    // 32 clients × 10 requests: far more than the 20 ms-per-capture inspector reads meanwhile.
    const CLIENTS: usize = 32;
    const EACH: usize = 10;
    let client = client();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                let req = Request::post(url.clone())
                    .header("content-type", "application/json")
                    .body(full(REQUEST))
                    .unwrap();
                let resp = client.request(req).await.expect("response");
                assert_eq!(resp.status(), 200);
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(&body[..], ANSWER.as_bytes(), "every answer whole");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let sent = (CLIENTS * EACH) as f64;
    // Every exchange ends up in exactly one result once the inspector has caught up.
    assert_eventually!(
        sidecar
            .scrape()
            .await
            .sum("inferwatch_inspection_total", &[])
            == sent,
        Duration::from_secs(30)
    );
    let s = sidecar.scrape().await;
    let result = |r: &str| s.sum("inferwatch_inspection_total", &[("result", r)]);
    let (parsed, sampled) = (result("parsed"), result("sampled_out"));
    eprintln!(
        "{sent} sent: parsed {parsed}, sampled_out {sampled}, dropped_queue_full {}",
        result("dropped_queue_full")
    );
    assert!(sampled > 0.0, "the lagging inspector made the tap sample");
    assert!(parsed > 0.0, "one in ten is still inspected");
    assert_eq!(
        parsed + sampled + result("dropped_queue_full") + result("dropped_budget"),
        sent
    );
    assert_eq!(
        s.sum("inferwatch_requests_total", &[("outcome", "ok")]),
        sent,
        "the live path served every request"
    );
    sidecar.shutdown().await;
}
