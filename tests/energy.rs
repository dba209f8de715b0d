//! Energy: the RAPL reader on fixture trees this test writes (deltas, wrap-around, several
//! packages and sub-zones, unreadable files), and joules per inference on a real sidecar in front
//! of a real upstream whose every request advances the fixture by a known amount.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use inferwatch::energy::config::SourceMode;
use inferwatch::energy::rapl::RaplSource;
use inferwatch::energy::{EnergySource, SourceError};
use prometheus::Registry;
use support::*;

/// A powercap tree as the kernel lays it out: `intel-rapl:N` packages with `intel-rapl:N:M`
/// sub-zones nested inside, and (like /sys/class/powercap) flat symlinks to every zone.
struct Fixture {
    root: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    fn zone_dir(&self, id: &str) -> PathBuf {
        let parts: Vec<&str> = id.trim_start_matches("intel-rapl:").split(':').collect();
        if parts.len() == 1 {
            self.path().join(id)
        } else {
            self.path()
                .join(format!("intel-rapl:{}", parts[0]))
                .join(id)
        }
    }

    fn zone(&self, id: &str, name: &str, uj: u64, max_uj: u64) -> &Self {
        let dir = self.zone_dir(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(dir.join("max_energy_range_uj"), format!("{max_uj}\n")).unwrap();
        self.set(id, uj);
        if id.matches(':').count() == 2 {
            // The flat symlink the class directory has for sub-zones: must not count twice.
            let _ = std::os::unix::fs::symlink(&dir, self.path().join(id));
        }
        self
    }

    /// Atomically, as sysfs does: a reader never sees a half-written value.
    fn set(&self, id: &str, uj: u64) {
        let dir = self.zone_dir(id);
        let tmp = dir.join(".energy_uj.tmp");
        std::fs::write(&tmp, format!("{uj}\n")).unwrap();
        std::fs::rename(&tmp, dir.join("energy_uj")).unwrap();
    }

    fn get(&self, id: &str) -> u64 {
        std::fs::read_to_string(self.zone_dir(id).join("energy_uj"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn add(&self, id: &str, uj: u64) {
        self.set(id, self.get(id) + uj);
    }

    fn root_str(&self) -> String {
        self.path().display().to_string()
    }
}

fn zone_counter(registry: &Registry, zone: &str) -> Option<f64> {
    registry
        .gather()
        .into_iter()
        .find(|f| f.name() == "inferwatch_cpu_energy_joules_total")?
        .get_metric()
        .iter()
        .find(|m| m.get_label().iter().any(|l| l.value() == zone))
        .map(|m| m.get_counter().get_value())
}

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs()
}

#[test]
fn rapl_packages_sub_zones_and_deltas() {
    let fx = Fixture::new();
    fx.zone("intel-rapl:0", "package-0", 1_000_000, 262_143_328_850)
        .zone("intel-rapl:0:0", "core", 500_000, 262_143_328_850)
        .zone("intel-rapl:0:1", "dram", 100_000, 65_712_999_613)
        .zone("intel-rapl:1", "package-1", 7_000_000, 262_143_328_850)
        .zone("intel-rapl:1:0", "dram", 0, 65_712_999_613);
    // The control-type directory the kernel also has: not a zone.
    std::fs::create_dir_all(fx.path().join("intel-rapl")).unwrap();
    let registry = Registry::new();
    let mut rapl = RaplSource::new(&fx.root_str(), &registry).unwrap();
    let first = rapl.read().unwrap();
    assert!(first.fresh);
    fx.add("intel-rapl:0", 2_500_000);
    fx.add("intel-rapl:0:0", 1_000_000);
    fx.add("intel-rapl:0:1", 250_000);
    fx.add("intel-rapl:1", 1_500_000);
    fx.add("intel-rapl:1:0", 125_000);
    let second = rapl.read().unwrap();
    // Packages only: sub-zones are parts of their package.
    assert!(close(second.joules - first.joules, 4.0, 1e-9), "{second:?}");
    for (zone, joules) in [
        ("package-0", 2.5),
        ("package-0/core", 1.0),
        ("package-0/dram", 0.25),
        ("package-1", 1.5),
        ("package-1/dram", 0.125),
    ] {
        let got = zone_counter(&registry, zone).unwrap_or_else(|| panic!("no series {zone}"));
        assert!(close(got, joules, 1e-9), "{zone}: {got}");
    }
}

#[test]
fn rapl_wraps_around_at_max_energy_range() {
    let fx = Fixture::new();
    let max = 262_143_328_850u64;
    fx.zone("intel-rapl:0", "package-0", max - 1_000_000, max);
    let registry = Registry::new();
    let mut rapl = RaplSource::new(&fx.root_str(), &registry).unwrap();
    let a = rapl.read().unwrap().joules;
    // 1 J to the top of the range, then 2 J past zero.
    fx.set("intel-rapl:0", 2_000_000);
    let b = rapl.read().unwrap().joules;
    assert!(close(b - a, 3.0, 1e-9), "wrapped delta {}", b - a);
    assert!(close(
        zone_counter(&registry, "package-0").unwrap(),
        3.0,
        1e-9
    ));
}

#[test]
fn rapl_psys_is_not_added_to_the_packages_it_contains() {
    let fx = Fixture::new();
    fx.zone("intel-rapl:0", "package-0", 0, 1 << 40)
        .zone("intel-rapl:1", "psys", 0, 1 << 40);
    let registry = Registry::new();
    let mut rapl = RaplSource::new(&fx.root_str(), &registry).unwrap();
    let a = rapl.read().unwrap().joules;
    fx.add("intel-rapl:0", 1_000_000);
    fx.add("intel-rapl:1", 3_000_000);
    let b = rapl.read().unwrap().joules;
    assert!(close(b - a, 1.0, 1e-9));
    assert!(close(zone_counter(&registry, "psys").unwrap(), 3.0, 1e-9));
}

#[test]
fn rapl_absent_or_unreadable_is_down_without_a_crash() {
    let registry = Registry::new();
    let mut absent = RaplSource::new("/nonexistent/powercap", &registry).unwrap();
    assert!(matches!(absent.read(), Err(SourceError::NotAvailable(_))));

    let empty = Fixture::new();
    let registry = Registry::new();
    let mut none = RaplSource::new(&empty.root_str(), &registry).unwrap();
    assert!(matches!(none.read(), Err(SourceError::NotAvailable(_))));

    let fx = Fixture::new();
    fx.zone("intel-rapl:0", "package-0", 1_000, 1 << 40);
    let registry = Registry::new();
    let mut rapl = RaplSource::new(&fx.root_str(), &registry).unwrap();
    rapl.read().unwrap();
    let energy = fx.zone_dir("intel-rapl:0").join("energy_uj");

    // Garbage in the file.
    std::fs::write(&energy, "n/a\n").unwrap();
    assert!(matches!(rapl.read(), Err(SourceError::Failed(_))));

    // A file that cannot be read at all (a directory in its place fails even for root).
    std::fs::remove_file(&energy).unwrap();
    std::fs::create_dir(&energy).unwrap();
    let err = rapl.read().unwrap_err();
    assert!(err.to_string().contains("energy_uj"), "{err}");

    // Permission denied, as for an unprivileged process on Linux >= 5.10. Root reads anyway,
    // so this part only bites when the tests run unprivileged.
    std::fs::remove_dir(&energy).unwrap();
    std::fs::write(&energy, "2000\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&energy, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read_to_string(&energy).is_err() {
        let err = rapl.read().unwrap_err();
        assert!(matches!(err, SourceError::NotAvailable(_)), "{err}");
        assert!(err.to_string().contains("permission denied"), "{err}");
    }
    std::fs::set_permissions(&energy, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Readable again: back up, with a new baseline (nothing counted for the gap).
    let before = zone_counter(&registry, "package-0").unwrap();
    rapl.read().unwrap();
    fx.add("intel-rapl:0", 1_000_000);
    rapl.read().unwrap();
    let after = zone_counter(&registry, "package-0").unwrap();
    assert!(close(after - before, 1.0, 1e-9), "{before} -> {after}");
}

/// Each request to the upstream "spends" this much package energy while it is served.
const UJ_PER_REQUEST: u64 = 200_000;
const REQUESTS: u64 = 25;

#[tokio::test]
async fn joules_per_inference_on_a_real_sidecar_matches_the_energy_spent() {
    let fx = Arc::new(Fixture::new());
    fx.zone("intel-rapl:0", "package-0", 5_000_000, 262_143_328_850)
        .zone("intel-rapl:0:0", "core", 0, 262_143_328_850);
    let lock = Arc::new(Mutex::new(()));
    let (fx2, lock2) = (fx.clone(), lock.clone());
    let up = Upstream::start(move |_req: Request<hyper::body::Incoming>| {
        let (fx, lock) = (fx2.clone(), lock2.clone());
        async move {
            {
                let _g = lock.lock().unwrap();
                fx.add("intel-rapl:0", UJ_PER_REQUEST);
                fx.add("intel-rapl:0:0", UJ_PER_REQUEST / 2);
            }
            // Long enough that the sampler sees requests in flight now and then.
            tokio::time::sleep(Duration::from_millis(10)).await;
            Response::new(full("{\"outputs\":[]}"))
        }
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.energy.rapl_root = fx.root_str();
    cfg.energy.rapl = SourceMode::On;
    cfg.energy.interval_secs = 0.05;
    cfg.energy.window_secs = 60.0;
    let sc = Sidecar::start(cfg).await;
    let up_rapl = &[("source", "rapl")][..];
    assert_eventually!(
        sc.scrape()
            .await
            .get("inferwatch_energy_source_up", up_rapl)
            == Some(1.0)
    );
    // Quiet samples before traffic: idle power is measured (0 W: the fixture stands still).
    tokio::time::sleep(Duration::from_millis(200)).await;

    let c = client();
    for _ in 0..REQUESTS {
        let r = c
            .request(
                Request::post(sc.url("/v2/models/m/infer"))
                    .body(full("{}"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.into_body().collect().await.unwrap();
    }
    let expected = UJ_PER_REQUEST as f64 / 1e6;
    let labels = |kind: &'static str| {
        vec![
            ("route", "infer"),
            ("model", "m"),
            ("source", "rapl"),
            ("kind", kind),
        ]
    };
    let spent = expected * REQUESTS as f64;
    // Wait for a sample taken after the last request completed: the attributed counter moves
    // only at completions. (A sample taken while the last request is in flight already has its
    // energy but not yet its completion: a boundary effect of at most one request's energy
    // over the window, negligible over a real minute, visible in a test of 25 requests.)
    assert_eventually!(
        sc.scrape()
            .await
            .get(
                "inferwatch_energy_attributed_joules_total",
                &[("route", "infer"), ("source", "rapl")]
            )
            .is_some_and(|v| v >= spent * 0.98),
        Duration::from_secs(10)
    );
    // No energy is spent after the last request, so a few more samples settle every figure.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = sc.scrape().await;
    let total = s
        .get("inferwatch_energy_per_inference_joules", &labels("total"))
        .unwrap();
    let dynamic = s
        .get("inferwatch_energy_per_inference_joules", &labels("dynamic"))
        .expect("idle power was measured before traffic");
    assert!(
        close(total, expected, 0.02),
        "total {total} J, want {expected}"
    );
    assert!(close(dynamic, expected, 0.02), "dynamic {dynamic} J");
    assert_eq!(
        s.get("inferwatch_energy_idle_power_watts", up_rapl),
        Some(0.0)
    );
    // The counters PromQL divides fleet-wide agree with the gauge.
    let energy = s.get("inferwatch_energy_joules_total", up_rapl).unwrap();
    let attributed = s
        .get(
            "inferwatch_energy_attributed_joules_total",
            &[("route", "infer"), ("source", "rapl")],
        )
        .unwrap();
    let count = s
        .get(
            "inferwatch_request_duration_seconds_count",
            &[("route", "infer")],
        )
        .unwrap();
    assert_eq!(count, REQUESTS as f64);
    assert!(
        close(energy, spent, 0.02),
        "energy {energy} J, spent {spent}"
    );
    assert!(close(attributed, spent, 0.02), "attributed {attributed} J");
    assert!(close(attributed / count, expected, 0.02));
    assert_eq!(
        s.get(
            "inferwatch_cpu_energy_joules_total",
            &[("zone", "package-0/core")]
        )
        .map(|v| close(v, spent / 2.0, 1e-6)),
        Some(true)
    );
    // NVML is absent on this machine: down, and everything above worked regardless.
    assert_eq!(
        s.get("inferwatch_energy_source_up", &[("source", "nvml")]),
        Some(0.0)
    );
    if let Err(report) = support::promtool_check(&sc.scrape_text().await) {
        panic!("promtool check metrics:\n{report}");
    }
    sc.shutdown().await;
}

#[tokio::test]
async fn the_estimate_is_labelled_as_such_in_every_metric_it_feeds() {
    let up = Upstream::start(|_req: Request<hyper::body::Incoming>| async move {
        // Real CPU work in this process, which is the "model server" below.
        let t = std::time::Instant::now();
        let mut x = 1u64;
        while t.elapsed() < Duration::from_millis(20) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        Response::new(full(x.to_string()))
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.energy.nvml = SourceMode::Off;
    cfg.energy.rapl = SourceMode::Off;
    cfg.energy.estimate = SourceMode::On;
    cfg.energy.interval_secs = 0.05;
    cfg.energy.window_secs = 60.0;
    cfg.system.pid = std::process::id();
    cfg.system.interval_secs = 0.05;
    let sc = Sidecar::start(cfg).await;
    let c = client();
    assert_eventually!(
        sc.scrape()
            .await
            .get("inferwatch_energy_source_up", &[("source", "estimate")])
            == Some(1.0)
    );
    for _ in 0..10 {
        let r = c
            .request(
                Request::get(sc.url("/v2/models/m/infer"))
                    .body(full(""))
                    .unwrap(),
            )
            .await
            .unwrap();
        r.into_body().collect().await.unwrap();
    }
    assert_eventually!(
        sc.scrape()
            .await
            .get(
                "inferwatch_energy_per_inference_joules",
                &[
                    ("route", "infer"),
                    ("source", "estimate"),
                    ("kind", "total")
                ]
            )
            .is_some_and(|v| v > 0.0),
        Duration::from_secs(10)
    );
    let s = sc.scrape().await;
    let energy: Vec<&Sample> = s
        .samples
        .iter()
        .filter(|x| x.name.starts_with("inferwatch_energy_"))
        .collect();
    assert!(energy.len() >= 4, "{energy:?}");
    for x in &energy {
        assert_eq!(
            x.labels.get("source").map(String::as_str),
            Some("estimate"),
            "{x:?}"
        );
    }
    // Nothing measured appears: no GPU or CPU meter series exist.
    assert!(!s
        .samples
        .iter()
        .any(|x| x.name.starts_with("inferwatch_gpu_") || x.name.starts_with("inferwatch_cpu_")));
    assert_eq!(s.get("inferwatch_model_server_up", &[]), Some(1.0));
    assert!(
        s.get("inferwatch_model_server_cpu_seconds_total", &[])
            .unwrap()
            > 0.0
    );
    if let Err(report) = support::promtool_check(&sc.scrape_text().await) {
        panic!("promtool check metrics:\n{report}");
    }
    sc.shutdown().await;
}

/// OpenAI routes: joules per output token is the route's energy over the tokens the adapter
/// counted (usage.completion_tokens), alongside joules per inference.
#[tokio::test]
async fn joules_per_output_token_on_an_openai_route() {
    const TOKENS: u64 = 10;
    let fx = Arc::new(Fixture::new());
    fx.zone("intel-rapl:0", "package-0", 0, 262_143_328_850);
    let fx2 = fx.clone();
    let up = Upstream::start(move |_req: Request<hyper::body::Incoming>| {
        let fx = fx2.clone();
        async move {
            fx.add("intel-rapl:0", UJ_PER_REQUEST);
            tokio::time::sleep(Duration::from_millis(5)).await;
            let body = format!(
                r#"{{"id":"c1","object":"chat.completion","model":"llm","choices":[{{"index":0,"message":{{"role":"assistant","content":"hello"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":3,"completion_tokens":{TOKENS},"total_tokens":{}}}}}"#,
                TOKENS + 3
            );
            Response::new(full(body))
        }
    })
    .await;
    let mut cfg = test_config(&up.url());
    cfg.proxy.routes = vec![inferwatch::routes::config::RouteConfig {
        name: "chat".into(),
        path_prefix: "/v1/".into(),
        protocol: inferwatch::routes::config::Protocol::Openai,
        model: "llm".into(),
        ..Default::default()
    }];
    cfg.energy.rapl_root = fx.root_str();
    cfg.energy.rapl = SourceMode::On;
    cfg.energy.interval_secs = 0.05;
    let sc = Sidecar::start(cfg).await;
    assert_eventually!(
        sc.scrape()
            .await
            .get("inferwatch_energy_source_up", &[("source", "rapl")])
            == Some(1.0)
    );
    let c = client();
    let chat = r#"{"model":"llm","messages":[{"role":"user","content":"hi"}]}"#;
    for _ in 0..REQUESTS {
        let r = c
            .request(
                Request::post(sc.url("/v1/chat/completions"))
                    .header("content-type", "application/json")
                    .body(full(chat))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.into_body().collect().await.unwrap();
    }
    let expected = UJ_PER_REQUEST as f64 / 1e6 / TOKENS as f64;
    let labels = [("route", "chat"), ("source", "rapl"), ("kind", "total")];
    // The adapter counts tokens just after each exchange; wait until every token and every
    // joule is inside the window.
    assert_eventually!(
        sc.scrape()
            .await
            .get("inferwatch_output_tokens_total", &[("route", "chat")])
            == Some((TOKENS * REQUESTS) as f64),
        Duration::from_secs(10)
    );
    assert_eventually!(
        sc.scrape()
            .await
            .get("inferwatch_energy_per_output_token_joules", &labels)
            .is_some_and(|v| close(v, expected, 0.02)),
        Duration::from_secs(10)
    );
    if let Err(report) = support::promtool_check(&sc.scrape_text().await) {
        panic!("promtool check metrics:\n{report}");
    }
    sc.shutdown().await;
}
