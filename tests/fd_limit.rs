//! Client connections piling up against the real binary under a small open-file limit: the
//! proxy stops accepting at `max_connections` (sized from the limit), so the process keeps
//! descriptors for the admin listener, `/healthz` and `/metrics` keep answering, and traffic
//! flows again once clients leave. Before the cap, the proxy accepted until EMFILE and the
//! admin listener could not accept for as long as the clients stayed.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use http::{Request, Response};
use support::*;
use tokio::net::TcpStream;

/// The open-file limit the sidecar runs under (soft and hard), and what it makes of it.
const NOFILE: u64 = 256;
const EXPECTED_MAX: u64 = (NOFILE - 128) / 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_keeps_answering_when_clients_exhaust_the_fd_limit() {
    let up = Upstream::start(|_req| async move { Response::new(full("ok")) }).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("inferwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\nworker_threads = 2\nshutdown_grace_secs = 0\n[admin]\nlisten = \"127.0.0.1:0\"\n[log]\nformat = \"json\"\n",
            up.url()
        ),
    )
    .unwrap();
    // `ulimit -n` sets the soft and the hard limit, so the sidecar cannot raise it.
    let mut child = KillOnDrop(
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "ulimit -n {NOFILE} && exec \"$0\" run --config \"$1\""
            ))
            .arg(env!("CARGO_BIN_EXE_inferwatch"))
            .arg(&cfg)
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["message"] == "inferwatch serving" {
                    let _ = addr_tx.send((
                        v["proxy"].as_str().unwrap().to_string(),
                        v["admin"].as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    });
    let (proxy, admin) = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("sidecar started");

    // Twice as many idle client connections as descriptors: all connect (the listen backlog
    // takes those over the cap), none sends anything.
    let mut held = Vec::new();
    for _ in 0..(2 * NOFILE) {
        held.push(TcpStream::connect(&proxy).await.unwrap());
    }
    let metric =
        |text: &str, name: &str| -> f64 { Scrape::parse(text).get(name, &[]).unwrap_or(-1.0) };
    let admin_url = |p: &str| format!("http://{admin}{p}");
    assert_eventually!(
        // Before the cap, the admin listener could not accept here: the scrape never came back.
        tokio::time::timeout(Duration::from_secs(2), get(&admin_url("/metrics")))
            .await
            .is_ok_and(|(_, text)| {
                metric(&text, "inferwatch_client_connections") == EXPECTED_MAX as f64
            }),
        Duration::from_secs(30)
    );
    for _ in 0..20 {
        let (status, _) = tokio::time::timeout(Duration::from_secs(5), get(&admin_url("/healthz")))
            .await
            .expect("/healthz answers while clients hold every proxy slot");
        assert_eq!(status, 200);
        let (status, text) = get(&admin_url("/metrics")).await;
        assert_eq!(status, 200);
        assert_eq!(
            metric(&text, "inferwatch_client_connections_max"),
            EXPECTED_MAX as f64
        );
    }

    // Clients leave: the proxy accepts again and serves.
    drop(held);
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        client().request(
            Request::get(format!("http://{proxy}/v2/models/m/ready"))
                .body(full(""))
                .unwrap(),
        ),
    )
    .await
    .expect("served after the clients left")
    .unwrap();
    assert_eq!(resp.status(), 200);
}
