//! Goodput capacity from live data, for `inferwatch report` on routes with an SLO (LLM routes):
//! from `inferwatch_slo_requests_total{route,model,result}` each replica's request rate and its
//! goodput (requests/s meeting every bound) at every step, load bands by request rate per
//! replica, the goodput ratio per band, and the highest load whose ratio stays at or above the
//! target before the first band surely below it — with the same honesty rules as the latency
//! capacity (`replicas.rs`: warm-up and cool-down left out, a band below the target by a chance
//! of few requests skipped, the confidence stated). For each replica's first failing band the
//! engine's own gauges over the same steps say why (`why.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::client::HttpClient;
use super::prom::{counts_over, query_range};
use super::replicas::{certain_at, trim_edges};
use super::why::{self, EngineBand, EngineStep, Why};
use super::BenchError;
use crate::metrics::{names, slo_result};

/// The goodput figures of one load band of one replica.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GoodputBand {
    pub qps_low: f64,
    pub qps_high: f64,
    pub steps: u64,
    pub mean_qps: f64,
    /// Requests in the band (its steps' rates times the step).
    pub requests: f64,
    /// Mean requests/s that met every bound.
    pub goodput_qps: f64,
    pub goodput_ratio: Option<f64>,
    /// Share of the band's requests by result other than `met`.
    pub missed: BTreeMap<String, f64>,
    pub meets_target: Option<bool>,
    /// The verdict (within or below the target) holds at 99% confidence.
    pub sure: bool,
    pub engine: EngineBand,
}

/// One replica's goodput verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplicaGoodput {
    pub replica: String,
    pub steps: u64,
    pub steps_excluded: u64,
    pub peak_qps: f64,
    /// Highest load within the target before the first band surely below it.
    pub capacity_qps: Option<f64>,
    /// No band was surely below the target: the capacity is at least the peak seen.
    pub lower_bound: bool,
    pub confident: bool,
    pub confidence: String,
    pub bands: Vec<GoodputBand>,
    /// Why the first failing band fails, from the engine's gauges.
    pub why: Option<Why>,
}

/// The goodput capacity of one route and model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteGoodput {
    pub route: String,
    pub model: String,
    /// Requests over the exact range, by `result`.
    pub requests_by_result: BTreeMap<String, f64>,
    pub requests: f64,
    pub goodput_ratio: Option<f64>,
    /// The lowest replica's capacity (with load spread evenly the weakest fails first).
    pub capacity_qps_per_replica: Option<f64>,
    pub capacity_is_lower_bound: bool,
    /// The deciding replica's statement.
    pub confidence: String,
    /// The deciding replica's cause (its name in `why_replica`).
    pub why: Option<Why>,
    pub why_replica: String,
    pub replicas_needed: Option<u64>,
    pub replicas: Vec<ReplicaGoodput>,
}

/// What the goodput part of a report needs from the capacity settings.
pub struct Settings<'a> {
    pub prometheus: &'a str,
    /// `{…}` with the user's matchers.
    pub matchers: String,
    pub replica_label: &'a str,
    pub rate_window_ms: u128,
    pub bands: usize,
    pub target: f64,
    pub target_qps: Option<f64>,
}

type Key = (String, String);
/// (replica, step ms) → result → requests/s.
type Steps = BTreeMap<(String, i64), BTreeMap<String, f64>>;
/// (replica, step ms) → the engine's figures.
type Engine = BTreeMap<(String, i64), EngineStep>;

fn t_key(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

/// The goodput report for every route with `inferwatch_slo_requests_total` data, and the
/// queries it ran.
pub async fn goodput(
    client: &HttpClient,
    s: &Settings<'_>,
    start: f64,
    end: f64,
    step: f64,
) -> Result<(Vec<RouteGoodput>, Vec<String>), BenchError> {
    let (rl, m) = (s.replica_label, &s.matchers);
    let w = format!("{}ms", s.rate_window_ms);
    let sel = format!("{}{m}", names::SLO_REQUESTS_TOTAL);
    let q_rate = format!("sum by (route, model, {rl}, result) (rate({sel}[{w}]))");
    let engine_queries = [
        format!("sum by ({rl}) (inferwatch_engine_requests_waiting{m})"),
        format!("sum by ({rl}) (inferwatch_engine_requests_running{m})"),
        format!("max by ({rl}) (inferwatch_engine_kv_cache_usage_ratio{m})"),
        format!("sum by ({rl}) (rate(inferwatch_engine_preemptions_total{m}[{w}]))"),
        format!("sum by ({rl}) (rate(inferwatch_engine_queue_seconds_total{m}[{w}]))"),
        format!("sum by ({rl}) (rate(inferwatch_engine_compute_seconds_total{m}[{w}]))"),
    ];
    let base = s.prometheus;
    let mut totals: BTreeMap<Key, BTreeMap<String, f64>> = BTreeMap::new();
    for (l, n) in counts_over(client, base, &sel, start, end, step).await? {
        let r = l.get("result").cloned().unwrap_or_default();
        *totals.entry(key(&l)).or_default().entry(r).or_default() += n;
    }
    let mut steps: BTreeMap<Key, Steps> = BTreeMap::new();
    for (l, points) in query_range(client, base, &q_rate, start, end, step).await? {
        let replica = l.get(rl).cloned().unwrap_or_default();
        let result = l.get("result").cloned().unwrap_or_default();
        let m = steps.entry(key(&l)).or_default();
        for (t, v) in points.into_iter().filter(|p| p.1.is_finite()) {
            *m.entry((replica.clone(), t_key(t)))
                .or_default()
                .entry(result.clone())
                .or_default() += v;
        }
    }
    let mut engine = Engine::new();
    for (i, q) in engine_queries.iter().enumerate() {
        for (l, points) in query_range(client, base, q, start, end, step).await? {
            let replica = l.get(rl).cloned().unwrap_or_default();
            for (t, v) in points.into_iter().filter(|p| p.1.is_finite()) {
                let e = engine.entry((replica.clone(), t_key(t))).or_default();
                let slot = match i {
                    0 => &mut e.waiting,
                    1 => &mut e.running,
                    2 => &mut e.kv_cache_usage,
                    3 => &mut e.preemptions_per_sec,
                    4 => &mut e.queue_rate,
                    _ => &mut e.compute_rate,
                };
                *slot = Some(v);
            }
        }
    }
    let range_ms = (t_key(start), t_key(end));
    let mut routes = Vec::new();
    for (k, st) in &steps {
        let by_result = totals.remove(k).unwrap_or_default();
        let r = route(s, k, st, &engine, by_result, step, range_ms);
        // A label set the sidecar created ahead of traffic (its configured model's `failed`
        // series) that never counted anything is no route to report.
        if !r.replicas.is_empty() || r.requests > 0.0 {
            routes.push(r);
        }
    }
    let mut queries = vec![sel, q_rate];
    queries.extend(engine_queries);
    Ok((routes, queries))
}

fn key(l: &BTreeMap<String, String>) -> Key {
    (
        l.get("route").cloned().unwrap_or_default(),
        l.get("model").cloned().unwrap_or_default(),
    )
}

fn route(
    s: &Settings<'_>,
    k: &Key,
    steps: &Steps,
    engine: &Engine,
    by_result: BTreeMap<String, f64>,
    step: f64,
    range_ms: (i64, i64),
) -> RouteGoodput {
    let mut by_replica: BTreeMap<&str, Vec<(i64, f64)>> = BTreeMap::new();
    for ((r, t), results) in steps {
        let q: f64 = results.values().sum();
        if q > 1e-9 {
            by_replica.entry(r).or_default().push((*t, q));
        }
    }
    let edge_ms = s.rate_window_ms as i64;
    let replicas: Vec<ReplicaGoodput> = by_replica
        .into_iter()
        .map(|(r, mut pts)| {
            let excluded = trim_edges(&mut pts, step, edge_ms, range_ms);
            let at = |t: i64| steps.get(&(r.to_string(), t));
            let eng = |t: i64| engine.get(&(r.to_string(), t));
            let mut g = judge(r, &pts, at, eng, s.target, s.bands, step);
            g.steps_excluded = excluded;
            g
        })
        .collect();
    let requests: f64 = by_result.values().sum();
    let met = by_result.get(slo_result::MET).copied().unwrap_or(0.0);
    let weakest = replicas
        .iter()
        .filter_map(|r| r.capacity_qps.map(|c| (c, r)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|p| p.1);
    // The cause: the deciding replica's, or the first replica that has one.
    let why_from = weakest
        .filter(|w| w.why.is_some())
        .or_else(|| replicas.iter().find(|r| r.why.is_some()));
    let capacity = weakest.and_then(|w| w.capacity_qps);
    RouteGoodput {
        route: k.0.clone(),
        model: k.1.clone(),
        requests,
        goodput_ratio: (requests > 0.0).then(|| met / requests),
        requests_by_result: by_result,
        capacity_qps_per_replica: capacity,
        capacity_is_lower_bound: weakest.is_some_and(|w| w.lower_bound),
        confidence: weakest.map_or(String::new(), |w| {
            format!("replica {}: {}", w.replica, w.confidence)
        }),
        why: why_from.and_then(|w| w.why.clone()),
        why_replica: why_from.map_or(String::new(), |w| w.replica.clone()),
        replicas_needed: s
            .target_qps
            .zip(capacity)
            .map(|(t, c)| (t / c).ceil() as u64),
        replicas,
    }
}

/// One replica: its bands over its own load, the capacity and the cause of its first failure.
fn judge<'a>(
    replica: &str,
    pts: &[(i64, f64)],
    at: impl Fn(i64) -> Option<&'a BTreeMap<String, f64>>,
    engine: impl Fn(i64) -> Option<&'a EngineStep>,
    target: f64,
    bands: usize,
    step: f64,
) -> ReplicaGoodput {
    let peak = pts.iter().map(|p| p.1).fold(0.0, f64::max);
    let n = bands.max(1);
    let width = peak / n as f64;
    let allowed = 1.0 - target;
    let mut out = Vec::new();
    for i in 0..n {
        let (lo, hi) = (width * i as f64, width * (i + 1) as f64);
        let members: Vec<&(i64, f64)> = pts
            .iter()
            .filter(|(_, q)| *q > lo && (*q <= hi || i == n - 1))
            .collect();
        let mut rates: BTreeMap<String, f64> = BTreeMap::new();
        for (t, _) in &members {
            for (r, v) in at(*t).into_iter().flatten() {
                *rates.entry(r.clone()).or_default() += v;
            }
        }
        let total: f64 = rates.values().sum();
        let met = rates.get(slo_result::MET).copied().unwrap_or(0.0);
        // (An empty band's sum of f64 is -0.0, which would print as "-0".)
        let requests = if members.is_empty() {
            0.0
        } else {
            total * step
        };
        let ratio = (total > 0.0).then(|| met / total);
        let meets = ratio.map(|r| r >= target);
        let missed_n = (total - met) * step;
        let sure = match meets {
            Some(true) => certain_at(allowed, requests, missed_n, false),
            Some(false) => certain_at(allowed, requests, missed_n, true),
            None => false,
        };
        out.push(GoodputBand {
            qps_low: lo,
            qps_high: hi,
            steps: members.len() as u64,
            mean_qps: if members.is_empty() {
                0.0
            } else {
                members.iter().map(|m| m.1).sum::<f64>() / members.len() as f64
            },
            requests,
            goodput_qps: if members.is_empty() {
                0.0
            } else {
                met / members.len() as f64
            },
            goodput_ratio: ratio,
            missed: rates
                .iter()
                .filter(|(r, _)| r.as_str() != slo_result::MET)
                .map(|(r, v)| (r.clone(), v / total))
                .collect(),
            meets_target: meets,
            sure,
            engine: EngineBand::of(members.iter().filter_map(|(t, _)| engine(*t))),
        });
    }
    // Walk up the bands: the capacity is the highest load meeting the target before the first
    // band surely below it; bands below it by chance neither count nor stop the walk.
    let mut best: Option<(f64, usize)> = None;
    let mut failing: Option<usize> = None;
    let mut unsure: Option<usize> = None;
    for (i, b) in out.iter().enumerate() {
        match b.meets_target {
            None => {}
            Some(false) if b.sure => {
                failing = Some(i);
                break;
            }
            Some(false) => {
                unsure.get_or_insert(i);
            }
            Some(true) => {
                let top = pts
                    .iter()
                    .filter(|(_, q)| *q > b.qps_low && (*q <= b.qps_high || i == n - 1))
                    .map(|p| p.1)
                    .fold(0.0, f64::max);
                best = Some((top, i));
            }
        }
    }
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    let describe = |b: &GoodputBand, sure: bool| {
        format!(
            "goodput {} at {:.1}-{:.1} req/s ({:.0} requests), target {}: {}",
            b.goodput_ratio.map_or("n/a".into(), pct),
            b.qps_low,
            b.qps_high,
            b.requests,
            pct(target),
            if sure {
                "beyond chance at 99% confidence"
            } else {
                "too few requests to be sure at 99% confidence"
            }
        )
    };
    let decided = failing.or(unsure);
    let (confident, confidence) = match (failing, unsure, best) {
        (Some(i), _, _) => (true, describe(&out[i], true)),
        (None, Some(i), _) => (false, describe(&out[i], false)),
        (None, None, Some((_, i))) => (
            out[i].sure,
            format!(
                "no band below the target up to {peak:.1} req/s (a lower bound); top band {}",
                describe(&out[i], out[i].sure)
            ),
        ),
        _ => (false, "no steps with goodput data".into()),
    };
    let why = decided.map(|i| {
        // Compared with the last band that met the target, or the lightest band with data.
        let base = out[..i]
            .iter()
            .rev()
            .find(|b| b.meets_target == Some(true))
            .or_else(|| out[..i].iter().find(|b| b.steps > 0));
        let (cause, detail) = why::cause(
            &out[i].engine,
            base.map(|b| &b.engine),
            out[i].mean_qps,
            allowed,
        );
        Why {
            cause,
            qps_low: out[i].qps_low,
            qps_high: out[i].qps_high,
            detail,
        }
    });
    ReplicaGoodput {
        replica: replica.to_string(),
        steps: pts.len() as u64,
        steps_excluded: 0,
        peak_qps: peak,
        capacity_qps: best.map(|b| b.0).filter(|c| *c > 0.0),
        // As for the latency capacity: no band surely below the target, so the real capacity is
        // at least this (a band below it by chance only makes the statement unsure).
        lower_bound: failing.is_none() && best.is_some(),
        confident,
        confidence,
        bands: out,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica ramped from 2 to 40 req/s whose goodput falls off above 25 req/s while the
    /// engine's queue grows: the capacity is found near 25 and the cause is queueing; a
    /// one-request miss at light load (chance) does not decide it.
    #[test]
    fn capacity_and_cause_from_a_ramp() {
        let mut steps = Steps::new();
        let mut engine = Engine::new();
        let mut pts = Vec::new();
        for t in 0..60i64 {
            let q = 2.0 + t as f64 * (38.0 / 59.0);
            let met_share = if q > 25.0 {
                0.7
            } else if t == 3 {
                0.9
            } else {
                1.0
            };
            let mut r = BTreeMap::new();
            r.insert("met".to_string(), q * met_share);
            r.insert("missed_ttft".to_string(), q * (1.0 - met_share));
            steps.insert(("a".into(), t * 1000), r);
            engine.insert(
                ("a".into(), t * 1000),
                EngineStep {
                    waiting: Some(if q > 25.0 { 8.0 } else { 0.1 }),
                    kv_cache_usage: Some(0.4),
                    ..EngineStep::default()
                },
            );
            pts.push((t * 1000, q));
        }
        let g = judge(
            "a",
            &pts,
            |t| steps.get(&("a".to_string(), t)),
            |t| engine.get(&("a".to_string(), t)),
            0.99,
            10,
            1.0,
        );
        let c = g.capacity_qps.unwrap();
        assert!((c / 25.0 - 1.0).abs() < 0.1, "{g:#?}");
        assert!(g.confident && !g.lower_bound, "{g:#?}");
        let why = g.why.unwrap();
        assert_eq!(why.cause, why::Cause::Queueing, "{why:?}");
        assert!(why.qps_low < 26.0 && why.qps_high > 25.0, "{why:?}");
        let b = &g.bands[9];
        assert!((b.goodput_ratio.unwrap() - 0.7).abs() < 1e-9);
        assert!((b.missed["missed_ttft"] - 0.3).abs() < 1e-9);
    }

    /// Every band within the target: the peak is a lower bound, sure at 99% only with enough
    /// requests; no failing band, no cause. A failing replica without engine data says so.
    #[test]
    fn lower_bound_and_no_engine_data() {
        let mut steps = Steps::new();
        let mut pts = Vec::new();
        for t in 0..30i64 {
            let q = 100.0 + t as f64;
            let met = if t >= 20 { q * 0.5 } else { q };
            let mut r = BTreeMap::new();
            r.insert("met".to_string(), met);
            r.insert("missed_e2e".to_string(), q - met);
            steps.insert(("a".into(), t * 1000), r);
            pts.push((t * 1000, q));
        }
        let at = |t| steps.get(&("a".to_string(), t));
        let g = judge("a", &pts[..20], at, |_| None, 0.99, 4, 1.0);
        assert!(g.lower_bound && g.confident && g.why.is_none(), "{g:#?}");
        assert_eq!(g.capacity_qps, Some(119.0));
        let g = judge("a", &pts, at, |_| None, 0.99, 3, 1.0);
        assert!(!g.lower_bound, "{g:#?}");
        assert_eq!(g.why.unwrap().cause, why::Cause::NoEngineData);
    }
}
