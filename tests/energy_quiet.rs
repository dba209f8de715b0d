//! A host without a GPU driver or RAPL (this one): every energy source is down, shown as 0, and
//! logged once at debug, not once per tick; the proxy and the scrape work as ever. Its own test
//! binary, because it installs a process-wide log subscriber to count the lines.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use support::*;

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

#[tokio::test]
async fn absent_sources_are_down_quietly_and_nothing_else_changes() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let up =
        Upstream::start(
            |_req: Request<hyper::body::Incoming>| async move { Response::new(full("ok")) },
        )
        .await;
    let mut cfg = test_config(&up.url());
    // Defaults (every source auto), sampled 50 times a second to give spam every chance.
    cfg.energy.interval_secs = 0.02;
    cfg.energy.window_secs = 1.0;
    cfg.energy.rapl_root = "/nonexistent/powercap".into();
    let sc = Sidecar::start(cfg).await;
    let c = client();
    for _ in 0..20 {
        let r = c
            .request(
                Request::get(sc.url("/v2/models/m/infer"))
                    .body(full(""))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.into_body().collect().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let s = sc.scrape().await;
    for source in ["nvml", "rapl", "estimate"] {
        assert_eq!(
            s.get("inferwatch_energy_source_up", &[("source", source)]),
            Some(0.0),
            "{source}"
        );
        assert_eq!(
            s.get("inferwatch_energy_joules_total", &[("source", source)]),
            Some(0.0),
            "{source}"
        );
    }
    assert!(!s.has("inferwatch_energy_per_inference_joules"));
    assert_eq!(
        s.get(
            "inferwatch_requests_total",
            &[("route", "infer"), ("outcome", "ok")]
        ),
        Some(20.0)
    );
    sc.shutdown().await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for source in ["nvml", "rapl", "estimate"] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains("energy source down") && l.contains(&format!("source=\"{source}\""))
            })
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{source} logged {} times:\n{text}",
            lines.len()
        );
        assert!(lines[0].contains("DEBUG"), "{}", lines[0]);
    }
    assert!(!text.contains("WARN") && !text.contains("ERROR"), "{text}");
}
