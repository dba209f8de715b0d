//! gRPC status on the live path without a model server: a dead upstream answered the gRPC way
//! (real `grpcio` and `tritonclient.grpc` clients read UNAVAILABLE), the client's `grpc-timeout`
//! bounding the first-byte wait, the status read from a trailers frame, and a stream that ends
//! without one counted as a reset.

mod grpc_support;
mod support;

use std::time::Duration;

use grpc_support::*;
use http::Request;
use http_body_util::BodyExt;
use inferwatch::proxy::config::UpstreamProtocol;
use inferwatch::routes::config::Protocol;
use support::*;

/// A dead upstream: the sidecar answers HTTP 200 trailers-only with UNAVAILABLE, which both
/// client libraries raise as UNAVAILABLE (not as a protocol error), and counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_upstream_is_unavailable_to_grpc_clients() {
    let python = peers_python(&["tritonclient.grpc", "grpc"]);
    let mut cfg = test_config(&format!("http://127.0.0.1:{}", free_port()));
    cfg.proxy.upstream_protocol = UpstreamProtocol::H2c;
    cfg.proxy.routes = vec![grpc_route(Protocol::Opaque)];
    let sc = Sidecar::start(cfg).await;
    let seen = run_client(&python, vec!["dead".into(), sc.proxy_addr.to_string()]).await;
    assert_eq!(seen.codes.get("UNAVAILABLE"), Some(&2), "{seen:?}");
    assert!(
        seen.message.contains("inferwatch: connect_error"),
        "grpc-message reaches the client: {}",
        seen.message
    );
    let s = sc.scrape().await;
    assert_eq!(
        s.get(
            "inferwatch_requests_total",
            &[
                ("route", "grpc"),
                ("model", "iris"),
                ("code_class", "2xx"),
                ("outcome", "connect_error")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        s.get(
            "inferwatch_grpc_calls_total",
            &[
                ("route", "grpc"),
                ("model", "iris"),
                ("grpc_code", "UNAVAILABLE")
            ]
        ),
        Some(2.0)
    );
    sc.shutdown().await;
}

/// The client's `grpc-timeout` bounds the wait for response headers when shorter than the
/// configured first-byte timeout: an upstream that accepts and never answers costs the client
/// its own deadline, not five minutes, and it gets DEADLINE_EXCEEDED the gRPC way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_bounds_the_first_byte_wait() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let mut cfg = test_config(&format!("http://{addr}"));
    cfg.proxy.upstream_protocol = UpstreamProtocol::H2c;
    cfg.proxy.first_byte_timeout_secs = 300.0;
    cfg.proxy.routes = vec![grpc_route(Protocol::Opaque)];
    let sc = Sidecar::start(cfg).await;
    let req = Request::post(sc.url("/inference.GRPCInferenceService/ServerLive"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "300m")
        .body(full(&b"\0\0\0\0\0"[..]))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(60), h2_client().request(req))
        .await
        .expect("the sidecar answered within the client's deadline, not first_byte_timeout")
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "4");
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    assert_eq!(resp.headers()["x-inferwatch-error"], "first_byte_timeout");
    let body = resp.into_body().collect().await.unwrap();
    assert!(body.to_bytes().is_empty(), "trailers-only: no body");
    let s = sc.scrape().await;
    assert_eq!(
        s.get(
            "inferwatch_grpc_calls_total",
            &[
                ("route", "grpc"),
                ("model", "iris"),
                ("grpc_code", "DEADLINE_EXCEEDED")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.sum(
            "inferwatch_requests_total",
            &[("outcome", "first_byte_timeout")]
        ),
        1.0
    );
    sc.shutdown().await;
    holder.abort();
}

/// Where the status comes in a trailers frame after DATA (as every real gRPC server sends a
/// non-empty answer), and a stream that ends without any `grpc-status`: a stand-in h2c server
/// (the real-server path is the MLServer test above), because no real server ends a call
/// without a status on purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_from_trailers_frame_and_missing_status_is_a_reset() {
    let upstream = Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        let with_status = req.uri().path().ends_with("/ModelInfer");
        let mut frames = vec![Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
            hyper::body::Frame::data(bytes::Bytes::from_static(b"\0\0\0\0\x02\x08\x01")),
        )];
        if with_status {
            let mut t = http::HeaderMap::new();
            t.insert("grpc-status", "3".parse().unwrap());
            t.insert("grpc-message", "bad%20input".parse().unwrap());
            frames.push(Ok(hyper::body::Frame::trailers(t)));
        }
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        http::Response::builder()
            .header("content-type", "application/grpc")
            .body(body.boxed())
            .unwrap()
    })
    .await;
    let mut cfg = test_config(&upstream.url());
    cfg.proxy.upstream_protocol = UpstreamProtocol::H2c;
    cfg.proxy.routes = vec![grpc_route(Protocol::Opaque)];
    let sc = Sidecar::start(cfg).await;
    for method in ["ModelInfer", "ModelReady"] {
        let req = Request::post(sc.url(&format!("{SERVICE}{method}")))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(full(&b"\0\0\0\0\0"[..]))
            .unwrap();
        let resp = h2_client().request(req).await.unwrap();
        let got = resp.into_body().collect().await;
        if method == "ModelInfer" {
            let got = got.unwrap();
            assert_eq!(
                got.trailers().unwrap()["grpc-status"],
                "3",
                "trailers pass intact"
            );
        }
    }
    let s = sc.scrape().await;
    let count = |outcome| {
        s.get(
            "inferwatch_requests_total",
            &[
                ("route", "grpc"),
                ("model", "iris"),
                ("code_class", "2xx"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(count("grpc_error"), Some(1.0));
    assert_eq!(count("response_reset"), Some(1.0));
    assert_eq!(count("ok"), None);
    assert_eq!(
        s.get(
            "inferwatch_grpc_calls_total",
            &[
                ("route", "grpc"),
                ("model", "iris"),
                ("grpc_code", "INVALID_ARGUMENT")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.sum("inferwatch_grpc_calls_total", &[]),
        1.0,
        "no status, no code"
    );
    sc.shutdown().await;
}
