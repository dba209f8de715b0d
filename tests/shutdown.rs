//! SIGTERM against the real binary: `/readyz` fails, the listener closes, a slow streaming
//! response in flight completes, and the process exits 0.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_stream_completes_it_and_exits_zero() {
    // Upstream: 10 chunks, 150 ms apart (1.5 s in all).
    let up =
        Upstream::start(|_req| async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<
                Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>,
            >(1);
            tokio::spawn(async move {
                for i in 0..10 {
                    let _ = tx
                        .send(Ok(Frame::data(Bytes::from(format!("chunk{i};")))))
                        .await;
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            });
            let s = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|x| (x, rx))
            });
            Response::new(StreamBody::new(s).boxed())
        })
        .await;

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("inferwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\nshutdown_grace_secs = 10\n[admin]\nlisten = \"127.0.0.1:0\"\n[log]\nformat = \"json\"\n",
            up.url()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let log_thread = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["message"] == "inferwatch serving" {
                    let _ = addr_tx.send((
                        v["proxy"].as_str().unwrap().to_string(),
                        v["admin"].as_str().unwrap().to_string(),
                    ));
                }
            }
            lines.push(line);
        }
        lines
    });
    let (proxy, admin) = addr_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("sidecar started");

    let resp = client()
        .request(
            Request::get(format!("http://{proxy}/v2/models/m/generate"))
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(get(&format!("http://{admin}/readyz")).await.0, 200);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    // Readiness fails while the stream is still being served.
    let readyz = format!("http://{admin}/readyz");
    assert_eventually!(get(&readyz).await.0 == 503, Duration::from_secs(5));
    // The listener is closed: new connections are refused.
    assert_eventually!(
        tokio::net::TcpStream::connect(&proxy).await.is_err(),
        Duration::from_secs(5)
    );

    let body = resp
        .into_body()
        .collect()
        .await
        .expect("in-flight stream completes")
        .to_bytes();
    let expected: String = (0..10).map(|i| format!("chunk{i};")).collect();
    assert_eq!(String::from_utf8_lossy(&body), expected);

    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let logs = log_thread.join().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "exit code; logs:\n{}",
        logs.join("\n")
    );
    assert!(
        logs.iter().any(|l| l.contains("proxy drained")),
        "{}",
        logs.join("\n")
    );
}

#[test]
fn run_with_bad_config_exits_2_listing_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[proxy]\nmax_in_flight = 0\nbogus = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("proxy.bogus"), "{err}");
    assert!(err.contains("proxy.max_in_flight"), "{err}");
}
