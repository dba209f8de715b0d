//! Upstreams with a controlled service time for the bench tests, on top of `tests/support`.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use inferwatch::bench::client::Target;
use inferwatch::bench::{BenchConfig, Scenario};
use inferwatch::routes::config::Protocol;
use tokio::time::Instant;

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
