//! The holes a fault campaign found (issue 15), each closed and kept closed: oversized request
//! heads get 431 on HTTP/1.1 and HTTP/2; an upstream response framed both ways reaches the client
//! whole; a request that meets a pooled connection the upstream is closing is retried once on a
//! fresh one; requests a reverse proxy cannot carry (bad Host, CONNECT, Upgrade) get a clear
//! status and are counted.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn ok_upstream() -> Upstream {
    Upstream::start(|_req: Request<hyper::body::Incoming>| async move { Response::new(full("ok")) })
        .await
}

/// Write `req` on a new connection and read until the server closes or `timeout`.
async fn raw(addr: std::net::SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before all of an oversized head is written.
    let _ = s.write_all(req).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn rejected(scrape: &Scrape, reason: &str) -> f64 {
    scrape
        .get("inferwatch_requests_rejected_total", &[("reason", reason)])
        .unwrap_or(-1.0)
}

#[tokio::test]
async fn oversized_request_heads_get_431_on_http1_and_http2() {
    let up = ok_upstream().await;
    let cfg = test_config(&up.url());
    assert_eq!(cfg.proxy.max_request_header_bytes, 60 * 1024);
    let sidecar = Sidecar::start(cfg).await;
    let head = |value_len: usize, finished: bool| {
        let mut r = format!(
            "GET /v2/models/m/ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-big: {}\r\n",
            "a".repeat(value_len)
        );
        if finished {
            r.push_str("\r\n");
        }
        r.into_bytes()
    };
    // Under the limit: forwarded.
    let small = raw(sidecar.proxy_addr, &head(40 * 1024, true)).await;
    assert!(small.starts_with("HTTP/1.1 200"), "{small:.80}");
    // A 100 KB header (the campaign's case, forwarded before the fix): 431.
    let big = raw(sidecar.proxy_addr, &head(100 * 1024, true)).await;
    assert!(big.starts_with("HTTP/1.1 431"), "{big:.80}");
    // A slow client holding an unfinished 400 KB head is answered and dropped at the limit,
    // not buffered (the campaign's memory case).
    let unfinished = raw(sidecar.proxy_addr, &head(400 * 1024, false)).await;
    assert!(unfinished.starts_with("HTTP/1.1 431"), "{unfinished:.80}");

    // HTTP/2: the same limit, in SETTINGS_MAX_HEADER_LIST_SIZE's measure; answered 431 by the
    // proxy and counted like the HTTP/1.1 ones.
    let req = |n: usize| {
        Request::get(sidecar.url("/v2/models/m/ready"))
            .header("x-big", "a".repeat(n))
            .body(full(""))
            .unwrap()
    };
    let h2 = h2_client();
    assert_eq!(h2.request(req(40 * 1024)).await.unwrap().status(), 200);
    let resp = match h2.request(req(100 * 1024)).await {
        Ok(resp) => resp,
        Err(e) => panic!("expected a 431 answer, got {e:?}"),
    };
    assert_eq!(resp.status(), 431);
    assert_eq!(resp.headers()["x-inferwatch-error"], "header_too_large");

    // The connection is still good for requests under the limit.
    assert_eq!(h2.request(req(1024)).await.unwrap().status(), 200);

    let scrape = sidecar.scrape().await;
    // Refused before any route: two HTTP/1.1 heads (in hyper) and one HTTP/2 head.
    assert_eventually!(rejected(&sidecar.scrape().await, "header_too_large") == 3.0);
    assert_eq!(
        scrape.sum("inferwatch_requests_total", &[("outcome", "ok")]),
        3.0
    );
    sidecar.shutdown().await;
}

#[tokio::test]
async fn a_response_framed_by_both_length_and_chunks_arrives_whole() {
    // RFC 9112 §6.3: Transfer-Encoding wins; the Content-Length must not be forwarded.
    let up = RawUpstream::start(|mut s: TcpStream| async move {
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            )
            .await;
        let _ = s.shutdown().await;
    })
    .await;
    let sidecar = Sidecar::start(test_config(&up.url())).await;
    let resp = send_get(&sidecar.url("/v2/models/m/infer")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-length").is_none());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello");
    let scrape = sidecar.scrape().await;
    assert_eq!(
        scrape.get(
            "inferwatch_requests_total",
            &[("route", "infer"), ("code_class", "2xx"), ("outcome", "ok")]
        ),
        Some(1.0)
    );
    sidecar.shutdown().await;
}

/// An upstream whose connections answer `serve` requests with keep-alive, then read the next
/// request and close without a byte of answer: a server closing an idle connection just as a
/// request arrives, made deterministic. Counts the connections it accepted.
async fn closing_upstream(serve: usize) -> (RawUpstream, Arc<AtomicUsize>) {
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    let up = RawUpstream::start(move |mut s: TcpStream| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            for _ in 0..serve {
                if !read_request(&mut s).await {
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            }
            read_request(&mut s).await;
            // Dropped: the client sees EOF (or a reset) with nothing received.
        }
    })
    .await;
    (up, conns)
}

/// Read one request (head and a content-length body); false on EOF.
async fn read_request(s: &mut TcpStream) -> bool {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return true;
            }
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn post(sidecar: &Sidecar, body: Vec<u8>) -> (u16, String) {
    let resp = client()
        .request(
            Request::post(sidecar.url("/v2/models/m/infer"))
                .body(full(Bytes::from(body)))
                .unwrap(),
        )
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn retries(scrape: &Scrape) -> f64 {
    scrape.sum("inferwatch_upstream_retries_total", &[])
}

#[tokio::test]
async fn a_reused_connection_closing_under_a_small_request_is_retried_once_on_a_fresh_one() {
    let (up, conns) = closing_upstream(1).await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.worker_threads = 1;
    let sidecar = Sidecar::start(cfg).await;
    for i in 0..5 {
        // Each request after the first goes out on the pooled connection, which the upstream
        // then closes unanswered; the sidecar sends it again on a fresh one.
        let (status, body) = post(&sidecar, b"{\"inputs\":[]}".to_vec()).await;
        assert_eq!((status, body.as_str()), (200, "ok"), "request {i}");
    }
    let scrape = sidecar.scrape().await;
    assert_eq!(
        scrape.get(
            "inferwatch_upstream_retries_total",
            &[("reason", "reset_before_response")]
        ),
        Some(4.0)
    );
    assert_eq!(
        scrape.sum("inferwatch_requests_total", &[("outcome", "ok")]),
        5.0
    );
    assert_eq!(conns.load(Ordering::SeqCst), 5);
    sidecar.shutdown().await;
}

#[tokio::test]
async fn large_bodies_and_fresh_connections_are_never_sent_twice() {
    let (up, conns) = closing_upstream(1).await;
    let sidecar = Sidecar::start(test_config(&up.url())).await;
    assert_eq!(post(&sidecar, b"{}".to_vec()).await.0, 200);
    // Over 64 KiB: streamed, not kept, so the failure on the reused connection is the client's.
    let (status, _) = post(&sidecar, vec![b'x'; 100 * 1024]).await;
    assert_eq!(status, 502);
    assert_eq!(conns.load(Ordering::SeqCst), 1);

    // A fresh connection that fails means the server is failing: no retry.
    let (up, conns) = closing_upstream(0).await;
    let sidecar2 = Sidecar::start(test_config(&up.url())).await;
    assert_eq!(post(&sidecar2, b"{}".to_vec()).await.0, 502);
    assert_eq!(conns.load(Ordering::SeqCst), 1);
    assert_eq!(retries(&sidecar.scrape().await), 0.0);
    assert_eq!(retries(&sidecar2.scrape().await), 0.0);
    sidecar.shutdown().await;
    sidecar2.shutdown().await;
}

#[tokio::test]
async fn requests_a_reverse_proxy_cannot_carry_get_a_clear_status_and_are_counted() {
    let up = ok_upstream().await;
    let sidecar = Sidecar::start(test_config(&up.url())).await;
    let cases: [(&[u8], &str, &str); 5] = [
        (b"GET /v2/models/m/ready HTTP/1.1\r\nconnection: close\r\n\r\n", "HTTP/1.1 400", "bad_host"),
        (b"GET /v2/models/m/ready HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n", "HTTP/1.1 400", "bad_host"),
        (b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\nconnection: close\r\n\r\n", "HTTP/1.1 405", "connect"),
        (b"GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade, close\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", "HTTP/1.1 501", "upgrade"),
        // HTTP/1.0 may omit Host; an h2c upgrade offer is ignored and served over HTTP/1.1.
        (b"GET /v2/models/m/ready HTTP/1.0\r\n\r\n", "HTTP/1.0 200", ""),
    ];
    for (req, status, reason) in cases {
        let got = raw(sidecar.proxy_addr, req).await;
        assert!(got.starts_with(status), "{reason}: {got:.120}");
        if !reason.is_empty() {
            assert!(
                got.contains(&format!("x-inferwatch-error: {reason}")),
                "{got}"
            );
        }
    }
    let h2c = raw(
        sidecar.proxy_addr,
        b"GET /v2/models/m/ready HTTP/1.1\r\nhost: a\r\nconnection: upgrade, http2-settings, close\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert!(h2c.starts_with("HTTP/1.1 200"), "{h2c:.120}");
    let scrape = sidecar.scrape().await;
    assert_eq!(rejected(&scrape, "bad_host"), 2.0);
    assert_eq!(rejected(&scrape, "connect"), 1.0);
    assert_eq!(rejected(&scrape, "upgrade"), 1.0);
    assert_eq!(
        scrape.sum("inferwatch_requests_total", &[]),
        2.0,
        "refused requests have no route and are not in requests_total"
    );
    sidecar.shutdown().await;
}
