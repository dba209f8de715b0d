//! `inferwatch report`: a capacity report from live data through the Prometheus HTTP API
//! (`/api/v1/query_range`; Thanos and Mimir answer the same API).
//!
//! Three range queries over the sidecars' own metrics, grouped per route, model and replica
//! (the `--replica-label`, `instance` by default — one sidecar per pod):
//! request rates by outcome, latency-histogram bucket rates, and joules per inference. The rest
//! is computed here: per-replica QPS at every step, its peak and typical (median) value, and the
//! p99 at each load band, from the bucket rates *pooled* over every step and replica whose load
//! fell in the band (a quantile of the pooled histogram, not an average of quantiles). The
//! capacity per replica is judged per replica (`replicas.rs`): each replica's highest load
//! before its own first band whose p99 breaks the SLO, warm-up and cool-down left out; the
//! route's figure is the lowest replica's, with how sure it is. If no band breaks the SLO, the
//! observed peak is only a lower bound, and the report says so.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::client::HttpClient;
use super::goodput::{self, RouteGoodput};
use super::histogram::{histogram_quantile, pool};
use super::prom::{counts_over, parse_value, query_range};
use super::replicas::{self, ReplicaCapacity};
use super::BenchError;
use crate::metrics::names;

/// What to report on.
#[derive(Debug, Clone)]
pub struct CapacityConfig {
    /// Base URL of the Prometheus (or Thanos/Mimir) HTTP API, e.g. `http://prometheus:9090`.
    pub prometheus: String,
    pub range: Duration,
    /// End of the range, unix seconds; `None` = now.
    pub end: Option<f64>,
    /// Resolution; `None` = range / 500, at least 1 s.
    pub step: Option<Duration>,
    /// `rate()` window; `None` = max(2 steps, 1 m).
    pub rate_window: Option<Duration>,
    pub slo_p99: Option<f64>,
    pub target_qps: Option<f64>,
    /// Extra label matchers, e.g. `namespace="prod",job="model"`.
    pub selector: String,
    pub replica_label: String,
    pub bands: usize,
    /// Share of requests that must meet every bound of the route's SLO for a load band to
    /// count as within the goodput capacity (`goodput.rs`).
    pub goodput_target: f64,
}

impl CapacityConfig {
    pub fn new(prometheus: &str, range: Duration) -> Self {
        Self {
            prometheus: prometheus.trim_end_matches('/').to_string(),
            range,
            end: None,
            step: None,
            rate_window: None,
            slo_p99: None,
            target_qps: None,
            selector: String::new(),
            replica_label: "instance".into(),
            // Five bands: enough to see the knee, few enough that each has data.
            bands: 5,
            // 99%: the share a p99 latency SLO allows over its bound, so the goodput and the
            // latency capacity answer the same question on a route with only an e2e bound.
            goodput_target: 0.99,
        }
    }

    pub fn step(&self) -> Duration {
        self.step.unwrap_or_else(|| {
            Duration::from_secs((self.range.as_secs_f64() / 500.0).ceil().max(1.0) as u64)
        })
    }

    pub fn rate_window(&self) -> Duration {
        self.rate_window
            .unwrap_or_else(|| (self.step() * 2).max(Duration::from_secs(60)))
    }

    fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Setting(m.into()));
        if self.range.is_zero() {
            return bad("--range must be above zero");
        }
        if self.step().is_zero() || self.rate_window().is_zero() {
            return bad("--step and --rate-window must be above zero");
        }
        if self.range.as_secs_f64() / self.step().as_secs_f64() > 11_000.0 {
            return bad("--range / --step gives more than 11000 points (Prometheus' limit)");
        }
        if self.bands == 0 || self.bands > 50 {
            return bad("--bands must be within 1..=50");
        }
        if self.slo_p99.is_some_and(|s| s.is_nan() || s <= 0.0)
            || self.target_qps.is_some_and(|q| q.is_nan() || q <= 0.0)
        {
            return bad("--slo-p99 and --target-qps must be positive");
        }
        if !(self.goodput_target > 0.0 && self.goodput_target < 1.0) {
            return bad("--goodput-target must be above 0 and below 1");
        }
        if !self
            .replica_label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return bad("--replica-label must be a label name");
        }
        Ok(())
    }

    /// `{a="b",extra}`: the selector with the user's matchers appended.
    fn matchers(&self, own: &str) -> String {
        let parts: Vec<&str> = [own, self.selector.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        format!("{{{}}}", parts.join(","))
    }
}

/// One load band of one route/model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Band {
    pub qps_low: f64,
    pub qps_high: f64,
    /// Replica-steps whose load fell in the band.
    pub samples: u64,
    pub mean_qps: f64,
    /// p99 of the pooled histogram of the band.
    pub p99_secs: Option<f64>,
    /// The worst single replica-step p99 in the band.
    pub worst_step_p99_secs: Option<f64>,
    pub meets_slo: Option<bool>,
}

/// The capacity figures of one route and model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteCapacity {
    pub route: String,
    pub model: String,
    pub replicas_seen: u64,
    pub peak_qps_per_replica: f64,
    pub typical_qps_per_replica: f64,
    pub peak_fleet_qps: f64,
    pub requests: f64,
    pub error_ratio: f64,
    /// p99 of all traffic in the range (pooled histogram).
    pub p99_secs: Option<f64>,
    pub p50_secs: Option<f64>,
    /// p99 in the highest band with data.
    pub p99_at_peak_secs: Option<f64>,
    pub joules_per_inference: Option<f64>,
    pub bands: Vec<Band>,
    /// Highest per-replica QPS observed within the SLO before the first band surely over it.
    pub capacity_qps_per_replica: Option<f64>,
    /// No band broke the SLO: the real capacity is at least this, possibly more.
    pub capacity_is_lower_bound: bool,
    /// `1 - p99_at_peak / slo`: how much latency budget is left at peak.
    pub latency_headroom_ratio: Option<f64>,
    /// `capacity / peak - 1`: how much more load a replica could take.
    pub qps_headroom_ratio: Option<f64>,
    pub replicas_needed: Option<u64>,
    /// Per-step series for the charts: (unix time, max and median per-replica QPS).
    pub qps_timeline: Vec<(f64, f64, f64)>,
    /// Each replica judged against its own load, warm-up and cool-down excluded
    /// (`replicas.rs`); the capacity above is the lowest of theirs.
    #[serde(default)]
    pub replicas: Vec<ReplicaCapacity>,
    /// How sure the capacity is, in words (the deciding replica's statement).
    #[serde(default)]
    pub capacity_confidence: String,
}

/// The whole live-data report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CapacityReport {
    pub prometheus: String,
    pub start_unix: f64,
    pub end_unix: f64,
    pub step_secs: f64,
    pub rate_window_secs: f64,
    pub selector: String,
    pub replica_label: String,
    pub slo_p99_secs: Option<f64>,
    pub target_qps: Option<f64>,
    pub queries: Vec<String>,
    pub routes: Vec<RouteCapacity>,
    /// The goodput target the goodput capacity is judged against.
    #[serde(default)]
    pub goodput_target: f64,
    /// Goodput capacity of every route with an SLO (`inferwatch_slo_requests_total` data),
    /// with why its first failing load band fails.
    #[serde(default)]
    pub goodput: Vec<RouteGoodput>,
}

type Key = (String, String);
/// (replica, step time in ms).
type At = (String, i64);

fn key(l: &BTreeMap<String, String>) -> Key {
    (
        l.get("route").cloned().unwrap_or_default(),
        l.get("model").cloned().unwrap_or_default(),
    )
}

fn t_key(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

/// Query Prometheus and build the report.
pub async fn capacity_report(
    client: &HttpClient,
    cfg: &CapacityConfig,
) -> Result<CapacityReport, BenchError> {
    cfg.validate()?;
    let end = cfg.end.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    });
    let start = end - cfg.range.as_secs_f64();
    let step = cfg.step().as_secs_f64();
    let w = format!("{}ms", cfg.rate_window().as_millis());
    let rl = &cfg.replica_label;
    let q_req = format!(
        "sum by (route, model, {rl}, outcome, code_class) (rate({}{}[{w}]))",
        names::REQUESTS_TOTAL,
        cfg.matchers("")
    );
    let q_buckets = format!(
        "sum by (le, route, model, {rl}) (rate({}_bucket{}[{w}]))",
        names::REQUEST_DURATION_SECONDS,
        cfg.matchers("")
    );
    let q_energy = format!(
        "avg by (route, model) ({}{})",
        names::ENERGY_PER_INFERENCE_JOULES,
        cfg.matchers(r#"kind="total""#)
    );
    // The request count over exactly [start, end], per series (`prom::counts_over`).
    let sel = format!("{}{}", names::REQUESTS_TOTAL, cfg.matchers(""));
    let q_count = format!("increase({sel}[{}ms])", cfg.range.as_millis());
    let base = &cfg.prometheus;
    let mut counts: BTreeMap<Key, (f64, f64)> = BTreeMap::new();
    for (labels, n) in counts_over(client, base, &sel, start, end, step).await? {
        let failed = labels.get("outcome").is_some_and(|o| o != "ok")
            || labels.get("code_class").is_some_and(|c| c == "5xx");
        let c = counts.entry(key(&labels)).or_default();
        c.0 += n;
        if failed {
            c.1 += n;
        }
    }
    let req = query_range(client, base, &q_req, start, end, step).await?;
    let buckets = query_range(client, base, &q_buckets, start, end, step).await?;
    let energy = query_range(client, base, &q_energy, start, end, step).await?;

    // (route, model) -> (replica, t) -> (qps, error qps)
    let mut load: BTreeMap<Key, BTreeMap<At, (f64, f64)>> = BTreeMap::new();
    for (labels, points) in &req {
        let replica = labels.get(rl).cloned().unwrap_or_default();
        let failed = labels.get("outcome").is_some_and(|o| o != "ok")
            || labels.get("code_class").is_some_and(|c| c == "5xx");
        let m = load.entry(key(labels)).or_default();
        for &(t, v) in points {
            if !v.is_finite() {
                continue;
            }
            let e = m.entry((replica.clone(), t_key(t))).or_default();
            e.0 += v;
            if failed {
                e.1 += v;
            }
        }
    }
    // (route, model) -> (replica, t) -> [(le, rate)]
    let mut hist: BTreeMap<Key, BTreeMap<At, Vec<(f64, f64)>>> = BTreeMap::new();
    for (labels, points) in &buckets {
        let Some(le) = labels.get("le").and_then(|l| parse_value(l)) else {
            continue;
        };
        let replica = labels.get(rl).cloned().unwrap_or_default();
        let m = hist.entry(key(labels)).or_default();
        for &(t, v) in points {
            if v.is_finite() {
                m.entry((replica.clone(), t_key(t)))
                    .or_default()
                    .push((le, v));
            }
        }
    }
    let mut joules: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for (labels, points) in &energy {
        joules.entry(key(labels)).or_default().extend(
            points
                .iter()
                .map(|p| p.1)
                .filter(|v| v.is_finite() && *v > 0.0),
        );
    }

    let mut routes = Vec::new();
    for (k, steps) in &load {
        let empty = BTreeMap::new();
        let h = hist.get(k).unwrap_or(&empty);
        let mut rc = route_capacity(cfg, (t_key(start), t_key(end)), k, steps, h, joules.get(k));
        if let Some(&(total, failed)) = counts.get(k) {
            rc.requests = total;
            rc.error_ratio = if total > 0.0 { failed / total } else { 0.0 };
        }
        routes.push(rc);
    }
    let settings = goodput::Settings {
        prometheus: base,
        matchers: cfg.matchers(""),
        replica_label: rl,
        rate_window_ms: cfg.rate_window().as_millis(),
        bands: cfg.bands,
        target: cfg.goodput_target,
        target_qps: cfg.target_qps,
    };
    let (goodput, goodput_queries) = goodput::goodput(client, &settings, start, end, step).await?;
    let mut queries = vec![sel, q_count, q_req, q_buckets, q_energy];
    queries.extend(goodput_queries);
    Ok(CapacityReport {
        prometheus: cfg.prometheus.clone(),
        start_unix: start,
        end_unix: end,
        step_secs: step,
        rate_window_secs: cfg.rate_window().as_secs_f64(),
        selector: cfg.selector.clone(),
        replica_label: cfg.replica_label.clone(),
        slo_p99_secs: cfg.slo_p99,
        target_qps: cfg.target_qps,
        queries,
        routes,
        goodput_target: cfg.goodput_target,
        goodput,
    })
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn route_capacity(
    cfg: &CapacityConfig,
    range_ms: (i64, i64),
    k: &Key,
    steps: &BTreeMap<(String, i64), (f64, f64)>,
    hist: &BTreeMap<(String, i64), Vec<(f64, f64)>>,
    joules: Option<&Vec<f64>>,
) -> RouteCapacity {
    let step = cfg.step().as_secs_f64();
    // Replica-steps with traffic; idle steps say nothing about capacity.
    let active: Vec<(&(String, i64), f64)> = steps
        .iter()
        .filter(|(_, v)| v.0 > 1e-9)
        .map(|(k, v)| (k, v.0))
        .collect();
    let replicas: BTreeSet<&String> = steps.keys().map(|(r, _)| r).collect();
    let peak = active.iter().map(|a| a.1).fold(0.0, f64::max);
    let mut qs: Vec<f64> = active.iter().map(|a| a.1).collect();
    let typical = median(&mut qs);
    let mut fleet: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for ((_, t), v) in steps {
        fleet.entry(*t).or_default().push(v.0);
    }
    let peak_fleet = fleet
        .values()
        .map(|v| v.iter().sum::<f64>())
        .fold(0.0, f64::max);
    let qps_timeline = fleet
        .iter()
        .map(|(t, v)| {
            let mut v = v.clone();
            let max = v.iter().copied().fold(0.0, f64::max);
            (*t as f64 / 1000.0, max, median(&mut v))
        })
        .collect();
    // Rates are per second; their integral is the request count when no exact count is at hand
    // (`capacity_report` replaces it with the counters' increase over the range).
    let requests: f64 = steps.values().map(|v| v.0).sum::<f64>() * step;
    let errors: f64 = steps.values().map(|v| v.1).sum::<f64>() * step;

    let all = pool(active.iter().filter_map(|(k, _)| hist.get(*k)));
    let p99 = histogram_quantile(0.99, &all);
    let p50 = histogram_quantile(0.50, &all);

    let n = cfg.bands;
    let width = if peak > 0.0 { peak / n as f64 } else { 0.0 };
    let mut bands = Vec::new();
    for i in 0..n {
        let (lo, hi) = (width * i as f64, width * (i + 1) as f64);
        let members: Vec<&(&(String, i64), f64)> = active
            .iter()
            .filter(|(_, q)| *q > lo && (*q <= hi || i == n - 1))
            .collect();
        let pooled = pool(members.iter().filter_map(|(k, _)| hist.get(*k)));
        let p = histogram_quantile(0.99, &pooled);
        let worst = members
            .iter()
            .filter_map(|(k, _)| hist.get(*k).and_then(|h| histogram_quantile(0.99, h)))
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
        bands.push(Band {
            qps_low: lo,
            qps_high: hi,
            samples: members.len() as u64,
            mean_qps: if members.is_empty() {
                0.0
            } else {
                members.iter().map(|m| m.1).sum::<f64>() / members.len() as f64
            },
            p99_secs: p,
            worst_step_p99_secs: worst,
            meets_slo: cfg.slo_p99.and_then(|s| p.map(|p| p <= s)),
        });
    }
    let p99_at_peak = bands.iter().rev().find_map(|b| b.p99_secs);

    // The capacity: every replica judged on its own load, the lowest answer kept (with load
    // spread evenly the weakest replica breaks the SLO first). The rate window's length is
    // left out at each end of a replica's traffic: those rates straddle its start or stop.
    let (mut capacity, mut lower_bound) = (None, false);
    let mut per_replica = Vec::new();
    let mut confidence = String::new();
    if let Some(slo) = cfg.slo_p99 {
        let edge_ms = cfg.rate_window().as_millis() as i64;
        per_replica = replicas::judge(steps, hist, slo, cfg.bands, step, edge_ms, range_ms);
        if let Some(weakest) = per_replica
            .iter()
            .filter(|r| r.capacity_qps.is_some())
            .min_by(|a, b| a.capacity_qps.unwrap().total_cmp(&b.capacity_qps.unwrap()))
        {
            capacity = weakest.capacity_qps;
            lower_bound = weakest.lower_bound;
            confidence = format!("replica {}: {}", weakest.replica, weakest.confidence);
        }
    }
    let latency_headroom = cfg.slo_p99.zip(p99_at_peak).map(|(s, p)| 1.0 - p / s);
    let qps_headroom = capacity.filter(|_| peak > 0.0).map(|c| c / peak - 1.0);
    let replicas_needed = cfg
        .target_qps
        .zip(capacity)
        .map(|(t, c)| (t / c).ceil() as u64);
    RouteCapacity {
        route: k.0.clone(),
        model: k.1.clone(),
        replicas_seen: replicas.len() as u64,
        peak_qps_per_replica: peak,
        typical_qps_per_replica: typical,
        peak_fleet_qps: peak_fleet,
        requests,
        error_ratio: if requests > 0.0 {
            errors / requests
        } else {
            0.0
        },
        p99_secs: p99,
        p50_secs: p50,
        p99_at_peak_secs: p99_at_peak,
        joules_per_inference: joules
            .filter(|j| !j.is_empty())
            .map(|j| j.iter().sum::<f64>() / j.len() as f64),
        bands,
        capacity_qps_per_replica: capacity,
        capacity_is_lower_bound: lower_bound,
        latency_headroom_ratio: latency_headroom,
        qps_headroom_ratio: qps_headroom,
        replicas_needed,
        qps_timeline,
        replicas: per_replica,
        capacity_confidence: confidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_capacity() {
        let mut cfg = CapacityConfig::new("http://p", Duration::from_secs(100));
        cfg.step = Some(Duration::from_secs(1));
        cfg.slo_p99 = Some(0.05);
        cfg.target_qps = Some(250.0);
        cfg.bands = 2;
        // Traffic flows from the range's start to its end: no warm-up edge is left out.
        cfg.rate_window = Some(Duration::from_secs(2));
        let mut steps = BTreeMap::new();
        let mut hist = BTreeMap::new();
        for t in 0..10i64 {
            // Light load is fast (all under 10 ms), heavy load slow (all in the 0.1 bucket).
            let (q, h) = if t < 5 {
                (20.0, vec![(0.01, 20.0), (0.1, 20.0), (f64::INFINITY, 20.0)])
            } else {
                (
                    100.0,
                    vec![(0.01, 0.0), (0.1, 100.0), (f64::INFINITY, 100.0)],
                )
            };
            steps.insert(("a".to_string(), t * 1000), (q, 0.0));
            hist.insert(("a".to_string(), t * 1000), h);
        }
        let rc = route_capacity(
            &cfg,
            (0, 9000),
            &("r".into(), "m".into()),
            &steps,
            &hist,
            None,
        );
        assert_eq!(rc.peak_qps_per_replica, 100.0);
        assert_eq!(rc.bands[0].meets_slo, Some(true));
        assert_eq!(rc.bands[1].meets_slo, Some(false));
        assert_eq!(rc.capacity_qps_per_replica, Some(20.0));
        assert!(!rc.capacity_is_lower_bound);
        assert_eq!(rc.replicas_needed, Some(13));
        assert!(rc.latency_headroom_ratio.unwrap() < 0.0);
    }
}
