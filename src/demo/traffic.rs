//! The demo's clients: open-loop Poisson arrivals (as `inferwatch bench`'s server scenario, and
//! as independent users are) of single-row iris requests through the sidecar's proxy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::iris::{self, Row};
use crate::client;

/// Requests in flight at once; an arrival beyond it is skipped (the loopback model answers in
/// microseconds, so only a stalled sidecar would get there, and then piling up helps no one).
const MAX_IN_FLIGHT: usize = 256;

/// Send requests to `url` at `qps` on average until `stop` turns true, then wait (briefly) for
/// those in flight.
pub async fn run(
    url: Uri,
    qps: f64,
    rows: Arc<Vec<Row>>,
    drifted: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let client = client::traffic();
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut rng = StdRng::from_entropy();
    let mut next = Instant::now();
    loop {
        // Exponential gaps make a Poisson process; 1 - u keeps ln away from 0.
        let u: f64 = rng.gen();
        next += Duration::from_secs_f64(-(1.0 - u).ln() / qps);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let drifted = drifted.load(Ordering::Relaxed);
        let mut x = iris::sample(&rows, drifted, &mut rng);
        iris::maybe_missing(&mut x, drifted, &mut rng);
        let body = iris::request_body(&[x]).to_string();
        let req = Request::post(url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)));
        let Ok(req) = req else { continue };
        let client = client.clone();
        tokio::spawn(async move {
            if let Ok(resp) = client.request(req).await {
                let _ = resp.into_body().collect().await;
            }
            drop(permit);
        });
    }
    let all = u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(2), slots.acquire_many(all)).await;
}
