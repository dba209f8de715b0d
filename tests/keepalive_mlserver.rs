//! Stale upstream connections against a real uvicorn server: MLServer closes idle keep-alive
//! connections after 5 s (uvicorn's default). Clients that pause about exactly that long between
//! requests must see no error through the sidecar — with the default pool idle timeout (4 s,
//! idle connections are dropped first) and with a pool that keeps connections past the server's
//! keep-alive (the one retry on a fresh connection absorbs the race).

mod support;

use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use support::*;

/// uvicorn's `timeout_keep_alive` default, which MLServer keeps.
const SERVER_KEEP_ALIVE_SECS: f64 = 5.0;
const LANES: usize = 30;
const ROUNDS: usize = 8;
const INFER: &str =
    r#"{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[5.1,3.5,1.4,0.2]}]}"#;

/// `LANES` clients, each with its own sidecar (so each lane's upstream connection is its own
/// and its idle time is the lane's pause), each sending `ROUNDS` requests with a pause of about
/// the server's keep-alive between them: lane i waits 4.99 s + i·0.7 ms, so the pauses straddle
/// the moment the server closes. Returns the statuses seen and the lanes' retry count.
async fn lanes(direct: &str, pool_idle_secs: f64) -> (Vec<u16>, f64) {
    let mut tasks = Vec::new();
    for lane in 0..LANES {
        let mut cfg = test_config(direct);
        cfg.proxy.pool_idle_timeout_secs = pool_idle_secs;
        cfg.proxy.worker_threads = 1;
        let sidecar = Sidecar::start(cfg).await;
        tasks.push(tokio::spawn(async move {
            let url = sidecar.url("/v2/models/iris/infer");
            let client = client();
            let pause =
                Duration::from_secs_f64(SERVER_KEEP_ALIVE_SECS - 0.01 + lane as f64 * 0.0007);
            let mut statuses = Vec::new();
            for _ in 0..ROUNDS {
                let req = Request::post(&url)
                    .header("content-type", "application/json")
                    .body(full(INFER))
                    .unwrap();
                let status = match client.request(req).await {
                    Ok(resp) => {
                        let s = resp.status().as_u16();
                        let _ = resp.into_body().collect().await;
                        s
                    }
                    Err(_) => 0,
                };
                statuses.push(status);
                tokio::time::sleep(pause).await;
            }
            let scrape = sidecar.scrape().await;
            let ok = scrape.sum("inferwatch_requests_total", &[("outcome", "ok")]);
            let retries = scrape.sum("inferwatch_upstream_retries_total", &[]);
            sidecar.shutdown().await;
            (statuses, ok, retries)
        }));
    }
    let mut all = Vec::new();
    let mut retries = 0.0;
    for t in tasks {
        let (statuses, ok, r) = t.await.unwrap();
        let answered = statuses.iter().filter(|&&s| s == 200).count();
        assert_eq!(ok, answered as f64, "every 200 is counted ok");
        all.extend(statuses);
        retries += r;
    }
    (all, retries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_pausing_for_the_servers_keep_alive_see_no_errors() {
    let python = peers_python(&["mlserver", "mlserver_sklearn", "sklearn"]);
    let dir = tempfile::tempdir().unwrap();
    let mlserver = start_mlserver_iris(&python, dir.path()).await;
    let direct = mlserver.url();

    // The default (4 s): idle connections are dropped before the server's 5 s. And a pool that
    // outlives the server's keep-alive, so requests meet connections the server is closing.
    let default_idle = test_config(&direct).proxy.pool_idle_timeout_secs;
    assert!(default_idle < SERVER_KEEP_ALIVE_SECS);
    let (a, b) = tokio::join!(lanes(&direct, default_idle), lanes(&direct, 60.0));
    for (name, (statuses, retries)) in [("default pool", a), ("long pool", b)] {
        let failed = statuses.iter().filter(|&&s| s != 200).count();
        eprintln!(
            "{name}: {} requests, {failed} not 200, {retries} retries",
            statuses.len()
        );
        assert_eq!(statuses.len(), LANES * ROUNDS);
        assert_eq!(failed, 0, "{name}: statuses {statuses:?}");
    }
    drop(mlserver);
}
