//! Upstreams with a controlled service time for the bench tests, on top of `tests/support`, and
//! a real Prometheus (Debian `prometheus`) to scrape sidecars for the report tests.
#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inferwatch::bench::client::Target;
use inferwatch::bench::{BenchConfig, Scenario};
use inferwatch::routes::config::Protocol;
use tokio::time::Instant;

use crate::assert_eventually;
use crate::support::{full, Upstream};

/// Serializes the timing-sensitive tests of one test binary: parallel runs on two cores would
/// measure each other.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every request takes `service`, all in parallel: no queueing at the server.
pub async fn parallel_upstream(service: Duration) -> Upstream {
    Upstream::start(move |_req| async move {
        tokio::time::sleep(service).await;
        http::Response::new(full("ok"))
    })
    .await
}

/// Every request served in parallel, the `i`-th one (counted from 0 as they arrive) taking
/// `low + (high - low) * ((i * 173) % n) / n`: any `n` consecutive requests take each of `n`
/// evenly spaced service times exactly once, in a scrambled order. Two runs of `n` queries
/// therefore see the same latency distribution, spread wide enough that a percentile is the
/// distribution's and not the scheduling noise of a loaded machine.
pub async fn spread_upstream(low: Duration, high: Duration, n: u64) -> Upstream {
    assert!(!n.is_multiple_of(173), "n must be coprime to 173");
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    Upstream::start(move |_req| {
        let i = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let k = ((i % n) * 173) % n;
        let service = low + (high - low).mul_f64(k as f64 / n as f64);
        async move {
            tokio::time::sleep(service).await;
            http::Response::new(full("ok"))
        }
    })
    .await
}

/// A single FIFO server: requests are served one after another, each taking `service`. The
/// schedule is kept in virtual time (each request's finish is the previous finish plus
/// `service`), so timer wake-up jitter never accumulates. If `stall` is `(after, length)`,
/// nothing is served from `after` to `after + length` (measured from this call).
pub async fn fifo_upstream(service: Duration, stall: Option<(Duration, Duration)>) -> Upstream {
    let origin = Instant::now();
    let next_free = Arc::new(Mutex::new(origin));
    Upstream::start(move |_req| {
        let next_free = next_free.clone();
        async move {
            let finish = {
                let mut free = next_free.lock().unwrap();
                let mut start = (*free).max(Instant::now());
                if let Some((after, len)) = stall {
                    let (a, b) = (origin + after, origin + after + len);
                    if start >= a && start < b {
                        start = b;
                    }
                }
                *free = start + service;
                *free
            };
            tokio::time::sleep_until(finish).await;
            http::Response::new(full("ok"))
        }
    })
    .await
}

/// A bench config against `url` with quiet output.
pub fn config(url: &str, scenario: Scenario) -> BenchConfig {
    let mut c = BenchConfig::new(Target::parse(url).unwrap(), Protocol::Opaque, scenario);
    c.progress = false;
    c
}

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Fail clearly when a peer binary is missing.
pub fn need(path: &str, what: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing ({what}): run scripts/install-peers.sh"
    );
}

/// A Prometheus server on loopback scraping `targets` every second; killed on drop.
pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub async fn start(targets: &[String]) -> Self {
        need(PROMETHEUS, "Debian prometheus");
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sidecar\n    static_configs:\n      - targets: [{}]\n",
                targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
            ),
        )
        .unwrap();
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/-/ready");
        let client = inferwatch::bench::client::http_client();
        assert_eventually!(
            inferwatch::bench::scrape::get_text(&client, &ready)
                .await
                .is_ok(),
            Duration::from_secs(30)
        );
        Self {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium (Debian `chromium`) for the report tests: the HTML reports must render
/// with no console errors and fetch nothing.
pub fn chromium() -> &'static str {
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(c).exists() {
            return c;
        }
    }
    panic!("chromium is missing (Debian chromium): run scripts/install-peers.sh");
}

/// Render `html` headless; return the screenshot path. Fails on console messages or network
/// errors in Chromium's log, which a self-contained report must never produce.
pub fn render(html: &Path, png: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1100,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    for bad in ["CONSOLE(", "Uncaught", "net::ERR"] {
        assert!(!log.contains(bad), "chromium logged {bad}: {log}");
    }
    let bytes = std::fs::read(png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        bytes.len() > 20_000,
        "screenshot suspiciously small: {}",
        bytes.len()
    );
}

/// The screenshot goes where a human can look at it after the run.
pub fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-report-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn check_files(dir: &Path) -> serde_json::Value {
    for f in ["report.json", "report.md", "report.html"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<svg"), "no chart");
    // Self-contained: nothing fetched from anywhere.
    for bad in ["<script", "src=\"http", "href=\"http", "@import"] {
        assert!(!html.contains(bad), "report.html has {bad}");
    }
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}
