//! Issue 15: `inferwatch report --prometheus` gives each replica's capacity as
//! `inferwatch bench --sweep` finds it. Three FIFO upstreams with known, different service
//! times, a sidecar in front of each, a real Prometheus scraping the three, a load ramp through
//! each sidecar across its own SLO crossing; the report's capacity per replica is within 15% of
//! the sweep's against the upstream directly (in one of [`ROUNDS`] rounds, each from scratch).

mod bench_support;
mod support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bench_support::{config, fifo_upstream, Prometheus, SERIAL};
use inferwatch::bench::capacity::CapacityReport;
use inferwatch::bench::{run_bench, run_sweep, Scenario, SweepConfig};
use support::{test_config, Sidecar};

const BIN: &str = env!("CARGO_BIN_EXE_inferwatch");
/// The SLO both tools judge against: 100 ms, 5 to 10 service times, so that each replica crosses
/// it well short of saturation (at 20 service times the crossing sat so close to saturation that
/// half-second sweep steps passed at 84% to 100% of it from run to run). The service times are
/// long beside a loaded 2-core machine's scheduling delays: at 4-8 ms and a 40 ms SLO, with
/// load average 7, the sweep against the 4 ms server measured a p99 of 45 ms at 15.6 qps (6% of
/// its saturation) and found no capacity at all.
const SLO_SECS: f64 = 0.100;
/// Service times of the three replicas (FIFO: saturation at 100, 67 and 50 qps).
const SERVICE_MS: [u64; 3] = [10, 15, 20];
/// The ramp through each sidecar, as fractions of that replica's swept capacity, 5 s each.
const RAMP: [f64; 8] = [0.4, 0.6, 0.75, 0.85, 0.95, 1.05, 1.15, 1.3];
const STAGE: Duration = Duration::from_secs(5);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Rounds tried before the test fails. The sweep measures client-side latency, the report the
/// sidecar's server-side histograms; on a loaded 2-core machine the client's scheduling delays
/// can push one of three sweeps >15% low in a round (seen once in three full-suite runs: the
/// 20 ms replica's sweep at 26.6 qps, its report at 38.5, M/D/1 crossing near 31), so a round
/// that disagrees is run again from scratch and every round's figures are printed.
const ROUNDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_capacity_per_replica_matches_the_sweep() {
    let _serial = SERIAL.lock().await;
    let mut failed = Vec::new();
    for round in 1..=ROUNDS {
        eprintln!("round {round} of {ROUNDS}");
        match one_round().await {
            Ok(()) => return,
            Err(f) => failed.push(f),
        }
    }
    panic!("no round agreed within 15%: {failed:#?}");
}

async fn one_round() -> Result<(), Vec<String>> {
    let mut ups = Vec::new();
    for ms in SERVICE_MS {
        ups.push(fifo_upstream(Duration::from_millis(ms), None).await);
    }

    // The sweep against each upstream directly, the three at once (independent servers).
    let sweeps: Vec<_> = SERVICE_MS
        .iter()
        .zip(&ups)
        .map(|(ms, up)| {
            let mut base = config(&up.url(), Scenario::Server);
            base.duration = Duration::from_millis(500);
            base.slo_p99 = Some(SLO_SECS);
            let sc = SweepConfig {
                base,
                start_qps: 500.0 / *ms as f64,
                min_qps: 10.0,
                max_qps: 2000.0,
                tolerance: 0.05,
                max_steps: 12,
            };
            tokio::spawn(async move { run_sweep(&sc).await.unwrap() })
        })
        .collect();
    let mut swept = Vec::new();
    for (s, ms) in sweeps.into_iter().zip(SERVICE_MS) {
        let r = s.await.unwrap();
        // Every step in the log: a sweep that goes wrong on a loaded machine shows how.
        for st in &r.steps {
            eprintln!(
                "{ms} ms sweep step {} {} {:.1} qps: p99 {:?} ms, {} queries, passed {}{}",
                st.index,
                st.phase,
                st.qps,
                st.summary
                    .latency
                    .as_ref()
                    .map(|l| (l.p99 * 1e4).round() / 10.0),
                st.summary.issued,
                st.passed,
                st.summary
                    .stopped_early
                    .as_ref()
                    .map_or(String::new(), |w| format!(" (stopped early: {w})"))
            );
        }
        swept.push(r.capacity_qps.expect("the sweep found a capacity"));
    }
    eprintln!("sweep capacities: {swept:?}");

    let mut sidecars = Vec::new();
    for up in &ups {
        sidecars.push(Sidecar::start(test_config(&up.url())).await);
    }
    let targets: Vec<String> = sidecars.iter().map(|s| s.admin_addr.to_string()).collect();
    let prom = Prometheus::start(&targets).await;
    // Two scrapes before the traffic: the counters' first samples are zero.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The ramp through each sidecar, the three at once.
    let started = unix_now();
    let ramps: Vec<_> = sidecars
        .iter()
        .zip(&swept)
        .map(|(sc, cap)| {
            let url = sc.url("/v2/models/m/infer");
            let cap = *cap;
            tokio::spawn(async move {
                for (i, f) in RAMP.iter().enumerate() {
                    let mut c = config(&url, Scenario::Server);
                    c.qps = cap * f;
                    c.duration = STAGE;
                    c.seed = i as u64 + 1;
                    run_bench(&c).await.unwrap();
                }
            })
        })
        .collect();
    for r in ramps {
        r.await.unwrap();
    }
    let ended = unix_now();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let args: Vec<String> = vec![
        "report".into(),
        "--prometheus".into(),
        prom.url.clone(),
        "--range".into(),
        format!("{:.3}", ended - started + 2.0),
        "--end".into(),
        format!("{:.3}", ended + 1.0),
        "--step".into(),
        "1s".into(),
        "--rate-window".into(),
        "3s".into(),
        "--slo-p99".into(),
        "100ms".into(),
        "--bands".into(),
        "20".into(),
        "--json".into(),
    ];
    let o = tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().unwrap())
        .await
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: CapacityReport = serde_json::from_slice(&o.stdout).unwrap();
    let rc = r
        .routes
        .iter()
        .find(|x| x.route == "infer")
        .unwrap_or_else(|| panic!("no infer route in {r:?}"));
    assert_eq!(rc.replicas_seen, 3);
    let mut failures = Vec::new();
    for ((sc, cap), ms) in sidecars.iter().zip(&swept).zip(SERVICE_MS) {
        let name = sc.admin_addr.to_string();
        let rep = rc
            .replicas
            .iter()
            .find(|x| x.replica == name)
            .unwrap_or_else(|| panic!("no replica {name} in {:?}", rc.replicas));
        eprintln!(
            "{ms} ms: sweep {cap:.1} qps, report {:?} qps (peak {:.1}, lower bound {}, {})",
            rep.capacity_qps, rep.peak_qps, rep.lower_bound, rep.confidence
        );
        match rep.capacity_qps {
            Some(c) if (c / cap - 1.0).abs() <= 0.15 => {}
            _ => failures.push(format!("{ms} ms: sweep {cap:.1}, report {rep:?}")),
        }
    }
    drop(prom);
    for sc in sidecars {
        sc.shutdown().await;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}
