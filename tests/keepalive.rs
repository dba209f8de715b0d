//! Client keep-alive: an idle HTTP/1.1 client connection is kept for
//! `proxy.client_idle_timeout_secs` (default longer than client pools keep idle connections, so
//! the client closes first), and closed by the sidecar after it.

mod support;

use std::time::Duration;

use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn ok_upstream() -> Upstream {
    Upstream::start(|_req: Request<hyper::body::Incoming>| async move { Response::new(full("ok")) })
        .await
}

/// One POST on an open client connection; the status.
async fn post(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>,
    sidecar: &Sidecar,
) -> u16 {
    let req = Request::post(sidecar.url("/v2/models/m/infer"))
        .header("host", sidecar.proxy_addr.to_string())
        .body(Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    resp.into_body().collect().await.expect("body");
    status
}

#[tokio::test]
async fn a_connection_idle_for_the_default_minus_a_second_still_works() {
    let up = ok_upstream().await;
    let cfg = test_config(&up.url());
    let idle = cfg.proxy.client_idle_timeout_secs;
    assert!(
        idle > 90.0,
        "the default must outlast Go's 90 s idle pool, got {idle}"
    );
    let sidecar = Sidecar::start(cfg).await;
    let stream = TcpStream::connect(sidecar.proxy_addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    assert_eq!(post(&mut sender, &sidecar).await, 200);
    tokio::time::sleep(Duration::from_secs_f64(idle - 1.0)).await;
    assert!(
        !conn.is_finished(),
        "the sidecar closed an idle connection early"
    );
    assert_eq!(post(&mut sender, &sidecar).await, 200);
    sidecar.shutdown().await;
}

#[tokio::test]
async fn a_connection_idle_past_client_idle_timeout_is_closed() {
    let up = ok_upstream().await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.client_idle_timeout_secs = 1.0;
    let sidecar = Sidecar::start(cfg).await;
    let mut s = TcpStream::connect(sidecar.proxy_addr).await.unwrap();
    s.write_all(b"POST /v2/models/m/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"ok") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("response in time")
            .unwrap();
        assert!(n > 0, "closed before the response");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
    // Idle now: the sidecar closes the connection after about a second.
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("the sidecar closes an idle connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "expected EOF, got {n} bytes");
    assert!(started.elapsed() >= Duration::from_millis(900));
    sidecar.shutdown().await;
}
