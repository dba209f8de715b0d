//! The live path against a real upstream over loopback: transparency, error mapping, limits and
//! the request accounting seen in a real scrape.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that echoes method, path, version and selected headers in response headers,
/// and streams the request body back.
async fn echo_upstream() -> Upstream {
    Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        let mut b = Response::builder()
            .header("x-method", req.method().as_str())
            .header(
                "x-path",
                req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""),
            )
            .header("x-version", format!("{:?}", req.version()))
            .header("x-custom-response", "kept");
        for name in [
            "host",
            "x-hop",
            "keep-alive",
            "x-forwarded-for",
            "x-client",
            "te",
        ] {
            if let Some(v) = req.headers().get(name) {
                b = b.header(format!("x-saw-{name}"), v.clone());
            }
        }
        let body = req.into_body().map_err(|e| e.into()).boxed();
        b.body(body).unwrap()
    })
    .await
}

/// Raw HTTP/1.x exchange on a fresh connection; returns everything the server sent until EOF.
async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("raw response in time")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn get_and_post_pass_through_unchanged() {
    let up = echo_upstream().await;
    let sc = Sidecar::start(test_config(&up.url())).await;
    let c = client();

    let resp = c
        .request(
            Request::get(sc.url("/v2/models/m/ready?x=1&y=%20"))
                .header("x-client", "abc")
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-path"], "/v2/models/m/ready?x=1&y=%20");
    assert_eq!(resp.headers()["x-method"], "GET");
    assert_eq!(resp.headers()["x-saw-x-client"], "abc");
    assert_eq!(resp.headers()["x-custom-response"], "kept");
    assert!(
        resp.headers().get("x-saw-x-forwarded-for").is_none(),
        "XFF is off by default"
    );

    let payload = br#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#;
    let resp = c
        .request(
            Request::post(sc.url("/v2/models/m/infer"))
                .header("content-type", "application/json")
                .body(full(&payload[..]))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-method"], "POST");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], &payload[..]);
    sc.shutdown().await;
}

#[tokio::test]
async fn large_streamed_body_both_ways_is_identical() {
    let up = echo_upstream().await;
    let sc = Sidecar::start(test_config(&up.url())).await;
    // 16 MiB in 1000 irregular chunks, sent as a stream (chunked), echoed back as a stream.
    let mut chunks = Vec::new();
    let mut expected = Vec::new();
    let mut x: u32 = 12345;
    for i in 0..1000 {
        let len = 8 * 1024 + (i * 37) % 16000;
        let chunk: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                (x >> 24) as u8
            })
            .collect();
        expected.extend_from_slice(&chunk);
        chunks.push(Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
            Frame::data(Bytes::from(chunk)),
        ));
    }
    let body = StreamBody::new(futures_stream(chunks)).boxed();
    let resp = client()
        .request(Request::post(sc.url("/upload")).body(body).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-length").is_none());
    let got = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(got.len(), expected.len());
    assert!(got[..] == expected[..], "echoed bytes differ");
    sc.shutdown().await;
}

fn futures_stream<T: Send + 'static>(items: Vec<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::iter(items)
}

#[tokio::test]
async fn head_204_content_length_and_chunked_responses() {
    let up = Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        match req.uri().path() {
            "/no-content" => Response::builder().status(204).body(full("")).unwrap(),
            "/not-modified" => Response::builder()
                .status(304)
                .header("etag", "\"v1\"")
                .body(full(""))
                .unwrap(),
            "/length" => Response::builder()
                .header("content-length", "5")
                .body(full("hello"))
                .unwrap(),
            _ => {
                // No length: hyper streams it chunked.
                let frames = vec![
                    Ok(Frame::data(Bytes::from_static(b"chu"))),
                    Ok(Frame::data(Bytes::from_static(b"nked"))),
                ];
                Response::new(StreamBody::new(futures_stream(frames)).boxed())
            }
        }
    })
    .await;
    let sc = Sidecar::start(test_config(&up.url())).await;

    let r = raw(
        sc.proxy_addr,
        "HEAD /length HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.to_ascii_lowercase().contains("content-length: 5"), "{r}");
    assert!(
        r.ends_with("\r\n\r\n"),
        "HEAD response must have no body: {r:?}"
    );

    let r = raw(
        sc.proxy_addr,
        "GET /no-content HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    assert!(r.ends_with("\r\n\r\n"), "{r:?}");

    let r = raw(
        sc.proxy_addr,
        "GET /not-modified HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 304"), "{r}");
    assert!(r.contains("etag: \"v1\""), "{r}");

    let r = raw(
        sc.proxy_addr,
        "GET /length HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.to_ascii_lowercase().contains("content-length: 5") && r.ends_with("hello"),
        "{r}"
    );

    let r = raw(
        sc.proxy_addr,
        "GET /chunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{r}"
    );
    assert!(r.contains("chunked") && r.ends_with("0\r\n\r\n"), "{r}");

    // HTTP/1.0 client without keep-alive: answered as 1.x, connection closed, body intact.
    let r = raw(sc.proxy_addr, "GET /length HTTP/1.0\r\nHost: a\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1."), "{r}");
    assert!(r.ends_with("hello"), "{r}");

    // Every one of those finished as ok, none as aborted.
    let s = sc.scrape().await;
    assert_eq!(
        s.sum("inferwatch_requests_total", &[("outcome", "ok")]),
        6.0
    );
    assert_eq!(s.sum("inferwatch_requests_total", &[]), 6.0);
    sc.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_stripped_host_preserved_or_rewritten_xff_appended() {
    let up = echo_upstream().await;
    let sc = Sidecar::start(test_config(&up.url())).await;
    let r = raw(
        sc.proxy_addr,
        "GET /h HTTP/1.1\r\nHost: model.example:9999\r\nConnection: close, x-hop\r\nx-hop: secret\r\nKeep-Alive: timeout=5\r\nx-client: 1\r\n\r\n",
    )
    .await;
    let lower = r.to_ascii_lowercase();
    assert!(lower.contains("x-saw-host: model.example:9999"), "{r}");
    assert!(!lower.contains("x-saw-x-hop"), "{r}");
    assert!(!lower.contains("x-saw-keep-alive"), "{r}");
    assert!(lower.contains("x-saw-x-client: 1"), "{r}");
    sc.shutdown().await;

    let mut cfg = test_config(&up.url());
    cfg.proxy.preserve_host = false;
    cfg.proxy.x_forwarded_for = true;
    let sc = Sidecar::start(cfg).await;
    let r = raw(
        sc.proxy_addr,
        "GET /h HTTP/1.1\r\nHost: model.example\r\nX-Forwarded-For: 10.1.2.3\r\nConnection: close\r\n\r\n",
    )
    .await
    .to_ascii_lowercase();
    assert!(r.contains(&format!("x-saw-host: {}", up.addr)), "{r}");
    assert!(
        r.contains("x-saw-x-forwarded-for: 10.1.2.3, 127.0.0.1"),
        "{r}"
    );
    sc.shutdown().await;
}

#[tokio::test]
async fn h1_client_to_h2c_upstream_and_h2c_client_to_h1_upstream() {
    let up = echo_upstream().await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.upstream_protocol = inferwatch::proxy::config::UpstreamProtocol::H2c;
    let sc = Sidecar::start(cfg).await;
    let resp = client()
        .request(
            Request::post(sc.url("/v2/models/m/infer"))
                .header("te", "trailers")
                .body(full("ping"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_11);
    assert_eq!(resp.headers()["x-version"], "HTTP/2.0");
    assert_eq!(
        resp.headers()["x-saw-te"],
        "trailers",
        "TE: trailers reaches an h2 upstream (gRPC)"
    );
    assert_eq!(
        &resp.into_body().collect().await.unwrap().to_bytes()[..],
        b"ping"
    );
    sc.shutdown().await;

    let sc = Sidecar::start(test_config(&up.url())).await;
    let resp = h2_client()
        .request(
            Request::post(sc.url("/v2/models/m/infer"))
                .body(full("pong"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.headers()["x-version"], "HTTP/1.1");
    assert_eq!(
        resp.headers()["x-saw-host"],
        sc.proxy_addr.to_string(),
        "h2 :authority becomes Host"
    );
    assert_eq!(
        &resp.into_body().collect().await.unwrap().to_bytes()[..],
        b"pong"
    );
    sc.shutdown().await;
}

fn error_header(resp: &Response<hyper::body::Incoming>) -> String {
    resp.headers()
        .get("x-inferwatch-error")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn closed_port_is_502_connect_error() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let sc = Sidecar::start(test_config(&format!("http://{addr}"))).await;
    let resp = send_get(&sc.url("/v2/models/m/infer")).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(error_header(&resp), "connect_error");
    let s = sc.scrape().await;
    assert_eq!(
        s.get(
            "inferwatch_requests_total",
            &[
                ("route", "infer"),
                ("code_class", "5xx"),
                ("outcome", "connect_error")
            ]
        ),
        Some(1.0)
    );
    // Not timed: a refused connect says nothing about the model's latency.
    assert_eq!(
        s.get(
            "inferwatch_request_duration_seconds_count",
            &[("route", "infer")]
        ),
        Some(0.0)
    );
    sc.shutdown().await;
}

#[tokio::test]
async fn accept_then_reset_is_502_upstream_reset() {
    let up = RawUpstream::start(|mut s| async move {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        // Abortive close: RST instead of FIN.
        let _ = s.set_zero_linger();
    })
    .await;
    let sc = Sidecar::start(test_config(&up.url())).await;
    let resp = send_get(&sc.url("/x")).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(error_header(&resp), "upstream_reset");
    sc.shutdown().await;
}

#[tokio::test]
async fn never_answers_is_504_first_byte_timeout() {
    let up = RawUpstream::start(|s| async move {
        // Keep the connection open, never answer.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(s);
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.first_byte_timeout_secs = 0.3;
    let sc = Sidecar::start(cfg).await;
    let t0 = std::time::Instant::now();
    let resp = send_get(&sc.url("/v2/models/m/infer")).await;
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(error_header(&resp), "first_byte_timeout");
    assert!(t0.elapsed() >= Duration::from_millis(290));
    let s = sc.scrape().await;
    assert_eq!(
        s.get(
            "inferwatch_requests_total",
            &[("outcome", "first_byte_timeout")]
        ),
        Some(1.0)
    );
    // A stall is tail latency: it is timed.
    assert_eq!(
        s.get(
            "inferwatch_request_duration_seconds_count",
            &[("route", "infer")]
        ),
        Some(1.0)
    );
    sc.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_are_413_declared_or_streamed() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let up = Upstream::start(move |req: Request<hyper::body::Incoming>| {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            let _ = req.into_body().collect().await;
            Response::new(full("read it"))
        }
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.max_request_body_bytes = 1000;
    let sc = Sidecar::start(cfg).await;

    let resp = client()
        .request(
            Request::post(sc.url("/v2/models/m/infer"))
                .body(full(vec![b'a'; 1001]))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_header(&resp), "body_too_large");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "declared oversize never reaches the upstream"
    );

    let frames: Vec<Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>> = (0..10)
        .map(|_| Ok(Frame::data(Bytes::from(vec![b'b'; 300]))))
        .collect();
    let resp = client()
        .request(
            Request::post(sc.url("/v2/models/m/infer"))
                .body(StreamBody::new(futures_stream(frames)).boxed())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_header(&resp), "body_too_large");

    // Exactly at the limit is fine.
    let resp = client()
        .request(
            Request::post(sc.url("/v2/models/m/infer"))
                .body(full(vec![b'a'; 1000]))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let s = sc.scrape().await;
    assert_eq!(
        s.get(
            "inferwatch_requests_total",
            &[("code_class", "4xx"), ("outcome", "body_too_large")]
        ),
        Some(2.0)
    );
    sc.shutdown().await;
}

#[tokio::test]
async fn over_max_in_flight_is_503_at_once_then_recovers() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let up = Upstream::start(move |_req| {
        let g = g.clone();
        async move {
            let _p = g.acquire().await.unwrap();
            Response::new(full("done"))
        }
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.max_in_flight = 2;
    let sc = Sidecar::start(cfg).await;
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = sc.url("/v2/models/m/infer");
            tokio::spawn(async move {
                client()
                    .request(Request::get(url).body(full("")).unwrap())
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let admin = sc.admin_url("/metrics");
    assert_eventually!(get(&admin)
        .await
        .1
        .contains("inferwatch_in_flight_requests{route=\"infer\"} 2"));
    let t0 = std::time::Instant::now();
    let resp = send_get(&sc.url("/v2/models/m/infer")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_header(&resp), "overloaded");
    assert!(t0.elapsed() < Duration::from_secs(1), "503 is immediate");
    gate.add_permits(100);
    for t in slow {
        assert_eq!(t.await.unwrap(), 200);
    }
    let resp = send_get(&sc.url("/v2/models/m/infer")).await;
    assert_eq!(resp.status(), 200, "recovers once load drops");
    let s = sc.scrape().await;
    assert_eq!(
        s.get("inferwatch_requests_total", &[("outcome", "overloaded")]),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "inferwatch_requests_total",
            &[("route", "infer"), ("outcome", "ok")]
        ),
        Some(3.0)
    );
    assert_eq!(
        s.get("inferwatch_in_flight_requests", &[("route", "infer")]),
        Some(0.0)
    );
    sc.shutdown().await;
}

#[tokio::test]
async fn failure_after_headers_is_passed_on_as_a_reset() {
    let up = RawUpstream::start(|mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            .await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = s.set_zero_linger();
    })
    .await;
    let sc = Sidecar::start(test_config(&up.url())).await;
    let resp = send_get(&sc.url("/v2/models/m/infer")).await;
    assert_eq!(
        resp.status(),
        200,
        "the client sees the upstream's real status"
    );
    assert!(
        resp.into_body().collect().await.is_err(),
        "and then a broken body, not a made-up ending"
    );
    let s = sc.scrape().await;
    assert_eq!(
        s.get(
            "inferwatch_requests_total",
            &[("code_class", "2xx"), ("outcome", "response_reset")]
        ),
        Some(1.0)
    );
    sc.shutdown().await;
}

#[tokio::test]
async fn response_body_idle_timeout_resets() {
    let up = Upstream::start(|_req| async move {
        let (tx, rx) = tokio::sync::mpsc::channel::<
            Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>,
        >(1);
        tokio::spawn(async move {
            let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"first")))).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(tx);
        });
        let stream = futures_core_shim_rx(rx);
        Response::new(StreamBody::new(stream).boxed())
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.body_idle_timeout_secs = 0.3;
    let sc = Sidecar::start(cfg).await;
    let resp = send_get(&sc.url("/v2/models/m/infer")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.into_body().collect().await.is_err());
    let s = sc.scrape().await;
    assert_eq!(
        s.get(
            "inferwatch_requests_total",
            &[("outcome", "response_body_timeout")]
        ),
        Some(1.0)
    );
    sc.shutdown().await;
}

fn futures_core_shim_rx<T>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

#[tokio::test]
async fn counts_and_histograms_equal_requests_sent_per_route() {
    let up = echo_upstream().await;
    let sc = Sidecar::start(test_config(&up.url())).await;
    let c = client();
    for _ in 0..37 {
        let r = c
            .request(
                Request::post(sc.url("/v2/models/m/infer"))
                    .body(full("x"))
                    .unwrap(),
            )
            .await
            .unwrap();
        r.into_body().collect().await.unwrap();
    }
    for _ in 0..5 {
        let r = c
            .request(Request::get(sc.url("/elsewhere")).body(full("")).unwrap())
            .await
            .unwrap();
        r.into_body().collect().await.unwrap();
    }
    let s = sc.scrape().await;
    let infer = [("route", "infer"), ("model", "m")];
    assert_eq!(
        s.get(
            "inferwatch_requests_total",
            &[
                ("route", "infer"),
                ("model", "m"),
                ("code_class", "2xx"),
                ("outcome", "ok")
            ]
        ),
        Some(37.0)
    );
    assert_eq!(
        s.get("inferwatch_request_duration_seconds_count", &infer),
        Some(37.0)
    );
    assert_eq!(
        s.get("inferwatch_time_to_first_byte_seconds_count", &infer),
        Some(37.0)
    );
    assert_eq!(
        s.get(
            "inferwatch_requests_total",
            &[("route", "other"), ("model", "unknown"), ("outcome", "ok")]
        ),
        Some(5.0)
    );
    assert_eq!(
        s.get(
            "inferwatch_latency_window_samples",
            &[("route", "infer"), ("window", "1m")]
        ),
        Some(37.0)
    );
    assert_eq!(
        s.get(
            "inferwatch_latency_window_samples",
            &[("route", "infer"), ("window", "10m")]
        ),
        Some(37.0)
    );
    let p50 = s
        .get(
            "inferwatch_latency_quantile_seconds",
            &[("route", "infer"), ("window", "1m"), ("q", "0.5")],
        )
        .unwrap();
    assert!(p50 > 0.0 && p50 < 1.0, "{p50}");
    // 37 samples cannot bound p99 at 99% confidence: the bound is absent, not made up.
    assert_eq!(
        s.get(
            "inferwatch_latency_quantile_upper_bound_seconds",
            &[("route", "infer"), ("window", "1m"), ("q", "0.99")]
        ),
        None
    );
    // ...but they can bound the median.
    let ub50 = s
        .get(
            "inferwatch_latency_quantile_upper_bound_seconds",
            &[("route", "infer"), ("window", "1m"), ("q", "0.5")],
        )
        .unwrap();
    assert!(ub50 >= p50);
    assert_eq!(
        s.get(
            "inferwatch_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(s.has("process_resident_memory_bytes"));
    sc.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints() {
    let up = echo_upstream().await;
    let sc = Sidecar::start(test_config(&up.url())).await;
    assert_eq!(get(&sc.admin_url("/healthz")).await.0, 200);
    assert_eq!(get(&sc.admin_url("/readyz")).await.0, 200);
    let (st, body) = get(&sc.admin_url("/status")).await;
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], true);
    assert_eq!(v["upstream"], up.url());
    assert_eq!(v["latency"]["routes"][0]["route"], "infer");
    assert_eq!(v["latency"]["routes"][1]["route"], "other");
    assert_eq!(get(&sc.admin_url("/nope")).await.0, 404);
    sc.shutdown().await;
}

#[tokio::test]
async fn tap_captures_streamed_exchanges_and_counts_skips() {
    // The tap's receiving side is exercised through the App; here the proxy's own counting:
    // an over-size body is forwarded untouched and counted as skipped_too_large.
    let up = echo_upstream().await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.routes[0].protocol = inferwatch::routes::config::Protocol::KserveV2;
    cfg.inspection.max_body_bytes = 100;
    let sc = Sidecar::start(cfg).await;
    let big = vec![b'z'; 5000];
    let resp = client()
        .request(
            Request::post(sc.url("/v2/models/m/infer"))
                .body(full(big.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    let got = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &got[..],
        &big[..],
        "bytes pass through unchanged when not inspected"
    );
    let s = sc.scrape().await;
    assert_eq!(
        s.get(
            "inferwatch_inspection_total",
            &[("route", "infer"), ("result", "skipped_too_large")]
        ),
        Some(1.0)
    );
    sc.shutdown().await;
}

/// The sidecar's windowed quantiles sit between what the upstream spent (its sleep) and what
/// the client saw, for a latency mix with a known tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_quantiles_are_sandwiched_between_upstream_and_client_latency() {
    // 1000 requests: service time 2 ms for 90%, 20 ms for 9%, 60 ms for 1%.
    let up = Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        let ms: u64 = req
            .uri()
            .path()
            .trim_start_matches("/v2/models/m/sleep/")
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Response::new(full("ok"))
    })
    .await;
    let sc = Arc::new(Sidecar::start(test_config(&up.url())).await);
    let mut service = Vec::new();
    for i in 0..1000u64 {
        service.push(match i % 100 {
            0 => 60,
            1..=9 => 20,
            _ => 2,
        });
    }
    let client_lat = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for chunk in service.chunks(50) {
        let chunk = chunk.to_vec();
        let sc = sc.clone();
        let lat = client_lat.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            for ms in chunk {
                let t0 = std::time::Instant::now();
                let r = c
                    .request(
                        Request::get(sc.url(&format!("/v2/models/m/sleep/{ms}")))
                            .body(full(""))
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                r.into_body().collect().await.unwrap();
                lat.lock().unwrap().push(t0.elapsed().as_secs_f64());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut client_lat = client_lat.lock().unwrap().clone();
    client_lat.sort_by(f64::total_cmp);
    let mut service: Vec<f64> = service.iter().map(|&ms| ms as f64 / 1000.0).collect();
    service.sort_by(f64::total_cmp);
    let s = sc.scrape().await;
    assert_eq!(
        s.get(
            "inferwatch_latency_window_samples",
            &[("route", "infer"), ("window", "1m")]
        ),
        Some(1000.0)
    );
    for (q, ql) in [(0.5, "0.5"), (0.9, "0.9"), (0.95, "0.95"), (0.99, "0.99")] {
        let idx = ((q * 999.0) as usize).min(999);
        let got = s
            .get(
                "inferwatch_latency_quantile_seconds",
                &[("route", "infer"), ("window", "1m"), ("q", ql)],
            )
            .unwrap();
        assert!(
            got >= service[idx] * 0.99,
            "q{q}: sidecar {got} below the upstream's own {}",
            service[idx]
        );
        assert!(
            got <= client_lat[idx] * 1.01,
            "q{q}: sidecar {got} above what the client saw {}",
            client_lat[idx]
        );
        if q <= 0.95 {
            // With 1000 samples the bound exists and is not below the estimate.
            let ub = s
                .get(
                    "inferwatch_latency_quantile_upper_bound_seconds",
                    &[("route", "infer"), ("window", "1m"), ("q", ql)],
                )
                .unwrap();
            assert!(ub >= got, "q{q}: bound {ub} < estimate {got}");
        }
    }
    let p99_ub = s.get(
        "inferwatch_latency_quantile_upper_bound_seconds",
        &[("route", "infer"), ("window", "1m"), ("q", "0.99")],
    );
    assert!(
        p99_ub.is_some_and(|v| v >= 0.06 * 0.99),
        "p99 bound {p99_ub:?} must cover the 60 ms tail"
    );
    Arc::try_unwrap(sc)
        .ok()
        .expect("sole owner")
        .shutdown()
        .await;
}

#[tokio::test]
async fn connect_that_never_completes_is_504_connect_timeout() {
    // A listener that never accepts, with its accept queue filled: Linux then drops new SYNs,
    // so the proxy's connect hangs until connect_timeout_secs.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = sock.listen(0).unwrap();
    let addr = l.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    let mut cfg = test_config(&format!("http://{addr}"));
    cfg.proxy.connect_timeout_secs = 0.3;
    let sc = Sidecar::start(cfg).await;
    let t0 = std::time::Instant::now();
    let resp = send_get(&sc.url("/v2/models/m/infer")).await;
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(error_header(&resp), "connect_timeout");
    assert!(t0.elapsed() >= Duration::from_millis(290));
    drop(l);
    sc.shutdown().await;
}

/// Keep-alive to the upstream: sequential requests share one pooled connection.
#[tokio::test]
async fn upstream_connections_are_pooled_and_reused() {
    let accepts = Arc::new(AtomicUsize::new(0));
    let a = accepts.clone();
    let up = RawUpstream::start(move |s| {
        a.fetch_add(1, Ordering::SeqCst);
        async move {
            let svc = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(Response::new(full("pooled")))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                .await;
        }
    })
    .await;
    let sc = Sidecar::start(test_config(&up.url())).await;
    for _ in 0..30 {
        let r = send_get(&sc.url("/v2/models/m/infer")).await;
        assert_eq!(r.status(), 200);
        r.into_body().collect().await.unwrap();
    }
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        1,
        "one upstream connection for 30 sequential requests"
    );
    sc.shutdown().await;
}

/// An upstream that silently closes each connection after one response (as a keep-alive
/// timeout does): every later request still succeeds on a fresh connection.
#[tokio::test]
async fn upstream_closing_idle_connections_is_not_an_error() {
    let accepts = Arc::new(AtomicUsize::new(0));
    let a = accepts.clone();
    let up = RawUpstream::start(move |mut s| {
        a.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let sc = Sidecar::start(test_config(&up.url())).await;
    for _ in 0..5 {
        let r = send_get(&sc.url("/v2/models/m/infer")).await;
        assert_eq!(
            r.status(),
            200,
            "{:?}",
            r.headers().get("x-inferwatch-error")
        );
        r.into_body().collect().await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 5);
    let s = sc.scrape().await;
    assert_eq!(
        s.get("inferwatch_requests_total", &[("outcome", "ok")]),
        Some(5.0)
    );
    sc.shutdown().await;
}
