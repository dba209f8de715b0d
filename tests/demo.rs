//! `inferwatch demo` end to end, the real binary as a user runs it (stdout a pipe, so plain
//! lines): no alarm before the drift once the charts monitor, at least one SPC alarm after it,
//! the chi-square drift alarm on predicted classes and NaN inputs (none before) after it, a
//! scrape `promtool check metrics` accepts, and exit 0 on SIGINT.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

const DRIFT_AFTER_SECS: u64 = 8;

/// The ONNX Runtime library of the peers' venv, as scripts/install-peers.sh recorded it.
fn ort_dylib_path() -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-peers/ORT_DYLIB_PATH");
    let path = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: the demo needs ONNX Runtime; run scripts/install-peers.sh (`make test` does)",
            file.display()
        )
    });
    let path = path.trim().to_string();
    assert!(
        Path::new(&path).exists(),
        "{path} (from {}) does not exist: rerun scripts/install-peers.sh",
        file.display()
    );
    path
}

/// Stdout lines as they come, each with when it was read.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

fn seen(lines: &Lines, needle: &str) -> Option<Instant> {
    lines
        .lock()
        .unwrap()
        .iter()
        .find(|(_, l)| l.contains(needle))
        .map(|(t, _)| *t)
}

fn output(lines: &Lines) -> String {
    let lines = lines.lock().unwrap();
    lines
        .iter()
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sample values of `name` in a scrape.
fn values(s: &Scrape, name: &str) -> Vec<f64> {
    s.samples
        .iter()
        .filter(|x| x.name == name)
        .map(|x| x.value)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_fire_after_the_drift_and_sigint_exits_zero() {
    let ort = ort_dylib_path();
    let (proxy, admin) = (free_port(), free_port());
    // Stderr (the sidecar's warnings) to a file: an unread pipe could fill and stall the demo.
    let dir = tempfile::tempdir().unwrap();
    let err_path = dir.path().join("stderr.log");
    let stderr = || std::fs::read_to_string(&err_path).unwrap_or_default();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_inferwatch"))
            .args([
                "demo",
                "--drift-after",
                &DRIFT_AFTER_SECS.to_string(),
                "--qps",
                "200",
                "--listen",
                &format!("127.0.0.1:{proxy}"),
                "--admin",
                &format!("127.0.0.1:{admin}"),
                // A backstop: the test stops it with SIGINT long before.
                "--duration",
                "90",
            ])
            .env("ORT_DYLIB_PATH", &ort)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let lines: Lines = Arc::default();
    let stdout = child.0.stdout.take().unwrap();
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push((Instant::now(), line));
            }
        })
    };
    let metrics = format!("http://127.0.0.1:{admin}/metrics");

    // The URLs are printed once everything listens; the drift clock starts right after.
    let deadline = Instant::now() + Duration::from_secs(20);
    let started = loop {
        if let Some(t) = seen(&lines, "inferwatch demo:") {
            break t;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "demo exited early ({status}):\n{}\n{}",
                output(&lines),
                stderr()
            );
        }
        assert!(
            Instant::now() < deadline,
            "demo did not start:\n{}",
            output(&lines)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(output(&lines).contains(&format!("http://127.0.0.1:{admin}/metrics")));
    assert!(output(&lines).contains(&format!("http://127.0.0.1:{admin}/status")));

    // Before the drift: every chart has learned its baseline (Phase I ends at 60% of the
    // delay) and none alarms.
    let before = loop {
        let s = Scrape::parse(&get(&metrics).await.1);
        let phase1 = values(&s, "inferwatch_spc_phase1");
        if phase1.len() == 3 && phase1.iter().all(|v| *v == 0.0) {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(DRIFT_AFTER_SECS - 1),
            "charts still learning just before the drift:\n{}",
            output(&lines)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let scraped_at = Instant::now();
    let alarms = values(&before, "inferwatch_spc_alarm");
    assert_eq!(alarms.len(), 3, "one alarm gauge per chart");
    assert!(
        alarms.iter().all(|v| *v == 0.0),
        "alarm before the drift: {:?}\n{}",
        before
            .samples
            .iter()
            .filter(|s| s.name == "inferwatch_spc_alarm")
            .collect::<Vec<_>>(),
        output(&lines)
    );
    assert!(before.sum("inferwatch_requests_total", &[("route", "infer")]) > 100.0);
    // Missing measurements only come with the drift.
    assert_eq!(
        before.sum("inferwatch_input_anomalies_total", &[]),
        0.0,
        "input anomalies before the drift"
    );
    assert!(before.sum("inferwatch_probes_total", &[("result", "correct")]) > 0.0);
    assert_eq!(
        before.sum("inferwatch_probes_total", &[("result", "incorrect")]),
        0.0
    );
    assert!(
        before.sum(
            "inferwatch_shadow_comparisons_total",
            &[("result", "agree")]
        ) > 0.0
    );
    assert_eq!(
        before.sum(
            "inferwatch_shadow_comparisons_total",
            &[("result", "disagree")]
        ),
        0.0
    );

    // After the drift: a chart alarms.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (after, text) = loop {
        let text = get(&metrics).await.1;
        let s = Scrape::parse(&text);
        if values(&s, "inferwatch_spc_alarm").contains(&1.0)
            && s.sum("inferwatch_spc_alarms_total", &[]) > 0.0
        {
            break (s, text);
        }
        assert!(
            Instant::now() < deadline,
            "no SPC alarm after the drift:\n{}",
            output(&lines)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // After the drift: the chi-square test on the predicted classes alarms, and the missing
    // measurements are counted as NaN inputs.
    let class = [("signal", "class:infer")];
    let deadline = Instant::now() + Duration::from_secs(20);
    let drift_scrape = loop {
        let s = Scrape::parse(&get(&metrics).await.1);
        if s.sum("inferwatch_drift_alarm", &class) == 1.0
            && s.sum("inferwatch_input_anomalies_total", &[("kind", "nan")]) > 0.0
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no chi-square drift alarm or NaN inputs after the drift: alarm {}, p {}, nan {}\n{}",
            s.sum("inferwatch_drift_alarm", &class),
            s.sum("inferwatch_drift_chi_square_p_value", &class),
            s.sum("inferwatch_input_anomalies_total", &[("kind", "nan")]),
            output(&lines)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(drift_scrape.sum("inferwatch_drift_chi_square_p_value", &class) < 0.01);
    let drifted_at = seen(&lines, "drift injected").expect("the drift was announced");
    assert!(
        scraped_at <= drifted_at,
        "the 'before' scrape came after the drift"
    );
    assert!(
        after.sum(
            "inferwatch_shadow_comparisons_total",
            &[("result", "disagree")]
        ) > 0.0
    );
    if let Err(report) = promtool_check(&text) {
        panic!("promtool check metrics on the demo's scrape:\n{report}");
    }

    // The plain lines name the alarms too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !output(&lines)
        .lines()
        .any(|l| l.starts_with("t=") && !l.contains("spc_alarms=none"))
    {
        assert!(Instant::now() < deadline, "{}", output(&lines));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let kill = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "demo did not stop on SIGINT:\n{}",
            output(&lines)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    reader.join().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status on SIGINT\n{}\n{}",
        output(&lines),
        stderr()
    );
    let out = output(&lines);
    assert!(out.contains("stopping (signal)"), "{out}");
    assert!(out.contains("demo stopped"), "{out}");
}

#[test]
fn a_missing_onnx_library_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args([
            "demo",
            "--onnx-library",
            "/nonexistent/libonnxruntime.so.1.23.2",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--admin",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "--onnx-library: /nonexistent/libonnxruntime.so.1.23.2 does not exist",
        "ORT_DYLIB_PATH",
        "scripts/install-peers.sh",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
}
