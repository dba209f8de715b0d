//! `promtool check metrics` (Prometheus' own linter, Debian package `prometheus`) is clean on a
//! real scrape taken after mixed traffic, errors included.

mod support;

use std::process::Command;

use http::{Request, Response};
use http_body_util::BodyExt;
use support::*;

pub fn promtool() -> String {
    let p = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    match Command::new(&p).arg("--version").output() {
        Ok(o) if o.status.success() => p,
        _ => panic!("promtool not found (set PROMTOOL or run scripts/install-peers.sh, which installs Debian's prometheus package)"),
    }
}

#[tokio::test]
async fn promtool_check_metrics_is_clean_on_a_real_scrape() {
    let _ = promtool(); // fails with the install hint when promtool is missing
    let up = Upstream::start(|req: Request<hyper::body::Incoming>| async move {
        let status = if req.uri().path().ends_with("/bad") {
            500
        } else {
            200
        };
        Response::builder().status(status).body(full("ok")).unwrap()
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.max_request_body_bytes = 10;
    let sc = Sidecar::start(cfg).await;
    let c = client();
    for path in ["/v2/models/m/infer", "/v2/models/m/bad", "/other"] {
        for _ in 0..3 {
            let r = c
                .request(Request::get(sc.url(path)).body(full("")).unwrap())
                .await
                .unwrap();
            r.into_body().collect().await.unwrap();
        }
    }
    let r = c
        .request(
            Request::post(sc.url("/v2/models/m/infer"))
                .body(full("more than ten bytes"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let text = sc.scrape_text().await;
    assert!(
        text.contains("inferwatch_latency_quantile_seconds"),
        "{text}"
    );

    if let Err(report) = promtool_check(&text) {
        panic!("promtool check metrics:\n{report}");
    }
    sc.shutdown().await;
}
