//! Log floods stay out: when every request fails the same way — upstream bodies breaking off
//! after headers, or going idle — the sidecar logs one WARN per kind per interval (saying how
//! many it held back), not one per request, while the counters carry every request. Its own test
//! binary, because it installs a process-wide log subscriber to count the lines.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// WARN lines containing `what`.
    fn warnings(&self, what: &str) -> usize {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter(|l| l.contains(" WARN ") && l.contains(what))
            .count()
    }
}

const REQUESTS: usize = 30;

/// Send `REQUESTS` GETs one after another, each on its own connection; every body must fail.
async fn failing_bodies(url: &str) {
    for _ in 0..REQUESTS {
        let resp = send_get(url).await;
        assert_eq!(resp.status(), 200, "headers arrive before the body fails");
        assert!(resp.into_body().collect().await.is_err(), "a broken body");
    }
}

#[tokio::test]
async fn failing_response_bodies_log_one_warning_per_interval_and_count_every_request() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    // Headers and half the promised body, then the connection closes: `response_reset`.
    let breaking = RawUpstream::start(|mut s: TcpStream| async move {
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
            .await;
        let _ = s.shutdown().await;
    })
    .await;
    let sidecar = Sidecar::start(test_config(&breaking.url())).await;
    failing_bodies(&sidecar.url("/v2/models/m/infer")).await;
    let scrape = sidecar.scrape().await;
    assert_eq!(
        scrape.sum(
            "inferwatch_requests_total",
            &[("outcome", "response_reset")]
        ),
        REQUESTS as f64
    );
    sidecar.shutdown().await;
    // One line per 10 s interval: one here, two if a loaded machine stretched the run past an
    // interval; 30 before the limit.
    let lines = logs.warnings("broke off after headers");
    assert!((1..=2).contains(&lines), "{lines} warnings for {REQUESTS}");

    // Headers and half the body, then silence past the body idle timeout:
    // `response_body_timeout`.
    let stalling = RawUpstream::start(|mut s: TcpStream| async move {
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let mut cfg = test_config(&stalling.url());
    cfg.proxy.body_idle_timeout_secs = 0.05;
    let sidecar = Sidecar::start(cfg).await;
    failing_bodies(&sidecar.url("/v2/models/m/infer")).await;
    let scrape = sidecar.scrape().await;
    assert_eq!(
        scrape.sum(
            "inferwatch_requests_total",
            &[("outcome", "response_body_timeout")]
        ),
        REQUESTS as f64
    );
    sidecar.shutdown().await;
    let lines = logs.warnings("idle too long");
    assert!((1..=2).contains(&lines), "{lines} warnings for {REQUESTS}");
    // The next line logged for a kind says how many were held back.
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(text.contains("suppressed=0"), "{text}");
}
