//! systemd: the unit passes `systemd-analyze verify`, its exposure score is under 2.0, and the
//! real binary speaks sd_notify: READY=1 once the port accepts, WATCHDOG=1 while alive,
//! STOPPING=1 on SIGTERM.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Upstream;

/// The unit with ExecStart pointing at the binary under test (verify checks it exists).
fn unit_for_test(dir: &std::path::Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/inferwatch.service"
    ))
    .unwrap();
    let unit = unit.replace(
        "/usr/local/bin/inferwatch",
        env!("CARGO_BIN_EXE_inferwatch"),
    );
    let path = dir.join("inferwatch.service");
    std::fs::write(&path, unit).unwrap();
    path
}

fn systemd_analyze() -> &'static str {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(o) if o.status.success() => "systemd-analyze",
        _ => panic!("systemd-analyze not found (Debian package systemd)"),
    }
}

#[test]
fn unit_verifies_and_exposure_is_under_2() {
    let sa = systemd_analyze();
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let out = Command::new(sa)
        .arg("verify")
        .arg(&unit)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(sa)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for inferwatch.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    assert!(score < 2.0, "exposure {score} >= 2.0:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_sends_ready_after_bind_watchdog_and_stopping() {
    let up = Upstream::start(|_req| async move { http::Response::new(support::full("ok")) }).await;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // A fixed free port, so the test can check it accepts when READY arrives.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .arg("run")
        .env("INFERWATCH__PROXY__LISTEN", format!("127.0.0.1:{port}"))
        .env("INFERWATCH__PROXY__UPSTREAM", up.url())
        .env("INFERWATCH__ADMIN__LISTEN", "127.0.0.1:0")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let messages = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        let mut ready_accepting = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let Ok(n) = sock.recv(&mut buf) else { break };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.contains("READY=1") && ready_accepting.is_none() {
                ready_accepting = Some(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
            }
            let stopping = msg.contains("STOPPING=1");
            got.push(msg);
            if stopping {
                break;
            }
            // After two watchdog pings, ask it to stop.
            if got.iter().filter(|m| m.contains("WATCHDOG=1")).count() == 2 {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
            }
        }
        let status = child.wait().unwrap();
        (got, ready_accepting, status)
    })
    .await
    .unwrap();
    let (got, ready_accepting, status) = messages;
    assert!(
        got.first().is_some_and(|m| m.contains("READY=1")),
        "first message READY: {got:?}"
    );
    assert_eq!(
        ready_accepting,
        Some(true),
        "the port accepts when READY=1 is sent"
    );
    assert!(
        got.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2,
        "{got:?}"
    );
    assert!(
        got.last().is_some_and(|m| m.contains("STOPPING=1")),
        "{got:?}"
    );
    assert_eq!(status.code(), Some(0));
}
