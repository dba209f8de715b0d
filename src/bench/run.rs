//! The scenarios and one run's summary.
//!
//! - `server`: open loop. Arrival times are drawn up front from a Poisson process at `--qps`
//!   (seeded), each query is sent at its time whether or not earlier ones have answered, and its
//!   latency runs from the *scheduled* time. A stalled server therefore shows up in every query
//!   that should have been sent during the stall (a closed-loop client would just wait, send
//!   fewer queries and report a clean tail: coordinated omission). A `--concurrency-limit` caps
//!   queries in flight; queries waiting for a slot keep their scheduled start.
//! - `single-stream`: one query at a time, the next sent when the previous completes; the
//!   figure of merit is p90 (MLPerf's choice for this scenario).
//! - `offline`: as many queries as `--concurrency-limit` allows, always kept full; the figure of
//!   merit is throughput. Latency is measured from each query's own send.
//!
//! Every run lasts at least `--duration` and at least `--min-queries` queries (as LoadGen's
//! min duration and min query count), after an optional `--warmup` whose results are dropped.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::client::{self, ErrorKind, HttpClient, Target};
use super::early_stop::{Estimate, SloEarlyStopping};
use super::progress::Progress;
use super::requests::RequestTemplate;
use super::scrape::{self, EnergyReading};
use super::stats::LatencyStats;
use super::BenchError;
use crate::routes::config::Protocol;

/// How queries are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Server,
    SingleStream,
    Offline,
}

impl FromStr for Scenario {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Self, BenchError> {
        match s {
            "server" => Ok(Scenario::Server),
            "single-stream" => Ok(Scenario::SingleStream),
            "offline" => Ok(Scenario::Offline),
            _ => Err(BenchError::Setting(format!(
                "scenario {s:?}: use server, single-stream or offline"
            ))),
        }
    }
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Server => "server",
            Scenario::SingleStream => "single-stream",
            Scenario::Offline => "offline",
        }
    }

    /// The percentile MLPerf reports for the scenario.
    pub fn target_percentile(self) -> f64 {
        match self {
            Scenario::SingleStream => 0.90,
            _ => 0.99,
        }
    }

    /// Default queries in flight: the server scenario must not throttle itself (that would be
    /// coordinated omission again), offline needs a window big enough to fill a batching server.
    pub fn default_concurrency(self) -> usize {
        match self {
            Scenario::Server => 4096,
            Scenario::SingleStream => 1,
            Scenario::Offline => 64,
        }
    }
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub target: Target,
    pub protocol: Protocol,
    pub scenario: Scenario,
    /// Server scenario arrival rate.
    pub qps: f64,
    pub duration: Duration,
    pub min_queries: u64,
    pub warmup: Duration,
    pub seed: u64,
    /// `None`: the scenario's default.
    pub concurrency_limit: Option<usize>,
    pub requests: Arc<Vec<RequestTemplate>>,
    /// p99 latency SLO, seconds.
    pub slo_p99: Option<f64>,
    /// p99 time-to-first-token bound for streaming targets, seconds.
    pub slo_ttft_p99: Option<f64>,
    /// p99 time-per-output-token bound for streaming targets, seconds.
    pub slo_tpot_p99: Option<f64>,
    /// Failed queries tolerated in a valid run, as a fraction of all.
    pub max_error_ratio: f64,
    pub timeout: Duration,
    /// A sidecar's `/metrics` URL to read joules per inference from after the run.
    pub sidecar_metrics: Option<String>,
    /// Draw a progress bar / progress lines on stderr.
    pub progress: bool,
}

impl BenchConfig {
    /// A config with the defaults the CLI uses, for `target`.
    pub fn new(target: Target, protocol: Protocol, scenario: Scenario) -> Self {
        Self {
            target,
            protocol,
            scenario,
            qps: 10.0,
            duration: Duration::from_secs(60),
            min_queries: 0,
            warmup: Duration::ZERO,
            seed: 1,
            concurrency_limit: None,
            requests: Arc::new(vec![super::requests::default_for(protocol)]),
            slo_p99: None,
            slo_ttft_p99: None,
            slo_tpot_p99: None,
            max_error_ratio: DEFAULT_MAX_ERROR_RATIO,
            timeout: Duration::from_secs(60),
            sidecar_metrics: None,
            progress: false,
        }
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency_limit
            .unwrap_or_else(|| self.scenario.default_concurrency())
            .max(1)
    }

    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Setting(m.to_string()));
        if self.scenario == Scenario::Server && !(self.qps.is_finite() && self.qps > 0.0) {
            return bad("--qps must be a positive number");
        }
        if self.duration.is_zero() && self.min_queries == 0 {
            return bad("--duration or --min-queries must be above zero");
        }
        if !(0.0..=1.0).contains(&self.max_error_ratio) {
            return bad("--max-error-ratio must be within 0..1");
        }
        for (name, v) in [
            ("--slo-p99", self.slo_p99),
            ("--slo-ttft-p99", self.slo_ttft_p99),
            ("--slo-tpot-p99", self.slo_tpot_p99),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                return Err(BenchError::Setting(format!("{name} must be positive")));
            }
        }
        if self.requests.is_empty() {
            return bad("no requests to send");
        }
        Ok(())
    }
}

/// One failure in a thousand: a stray reset in a long run should not void it, a failing
/// server should.
pub const DEFAULT_MAX_ERROR_RATIO: f64 = 0.001;

/// One query's record, times in seconds from the start of the run.
#[derive(Debug, Clone)]
struct Rec {
    sched: f64,
    done: f64,
    latency: f64,
    error: Option<ErrorKind>,
    ttft: Option<f64>,
    tpot: Option<f64>,
    tokens: u32,
}

/// Queries scheduled within one second of the run, for the latency-over-time chart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TimelinePoint {
    pub second: u64,
    pub queries: u64,
    pub errors: u64,
    pub p50_secs: Option<f64>,
    pub p99_secs: Option<f64>,
    pub max_secs: Option<f64>,
}

/// One bound checked against a measured p99.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SloCheck {
    /// `latency`, `ttft` or `tpot`.
    pub name: String,
    pub bound_secs: f64,
    pub p99_secs: Option<f64>,
    pub met: bool,
}

/// Everything one run measured, and its verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub scenario: Scenario,
    pub target: String,
    pub target_qps: Option<f64>,
    pub concurrency_limit: usize,
    pub seed: u64,
    pub warmup_secs: f64,
    /// From the first scheduled query to the last completion.
    pub duration_secs: f64,
    pub issued: u64,
    pub completed_ok: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub error_ratio: f64,
    /// Issue rate as scheduled: `(issued - 1) / time of the last scheduled query`.
    pub scheduled_qps: Option<f64>,
    /// Successful completions per second over the whole run.
    pub achieved_qps: f64,
    /// Latency of successful queries (server: from the scheduled time).
    pub latency: Option<LatencyStats>,
    pub ttft: Option<LatencyStats>,
    pub tpot: Option<LatencyStats>,
    pub output_tokens: u64,
    /// MLPerf early-stopping estimates for p90 and p99.
    pub early_stopping: Vec<Estimate>,
    /// Early stopping against the p99 SLO (failed queries count as over it).
    pub slo_early_stopping: Option<SloEarlyStopping>,
    pub slo_checks: Vec<SloCheck>,
    pub valid: bool,
    /// Why the run is INVALID; empty when valid.
    pub reasons: Vec<String>,
    pub timeline: Vec<TimelinePoint>,
    pub energy: Option<EnergyReading>,
}

impl RunSummary {
    /// The figure of merit's percentile value for the scenario (p90 single-stream, else p99).
    pub fn headline_latency(&self) -> Option<f64> {
        self.latency.as_ref().map(|l| match self.scenario {
            Scenario::SingleStream => l.p90,
            _ => l.p99,
        })
    }

    pub fn verdict(&self) -> &'static str {
        if self.valid {
            "VALID"
        } else {
            "INVALID"
        }
    }
}

/// Shared state of a run in progress.
struct Shared {
    client: HttpClient,
    cfg: BenchConfig,
    recs: Mutex<Vec<Rec>>,
    done: AtomicU64,
    start: Instant,
}

impl Shared {
    fn record(&self, scheduled: Instant, o: client::Observed) {
        let at = |i: Instant| i.saturating_duration_since(self.start).as_secs_f64();
        let tpot = match (o.first_token, o.last_token) {
            (Some(f), Some(l)) if o.tokens >= 2 => {
                Some(l.saturating_duration_since(f).as_secs_f64() / f64::from(o.tokens - 1))
            }
            _ => None,
        };
        let rec = Rec {
            sched: at(scheduled),
            done: at(o.done),
            latency: o.done.saturating_duration_since(scheduled).as_secs_f64(),
            error: o.error,
            ttft: o
                .first_token
                .map(|f| f.saturating_duration_since(scheduled).as_secs_f64()),
            tpot,
            tokens: o.tokens,
        };
        self.recs.lock().expect("records lock").push(rec);
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    fn template(&self, i: u64) -> &RequestTemplate {
        let r = &self.cfg.requests;
        &r[(i % r.len() as u64) as usize]
    }
}

/// Run one bench: warmup (dropped), then the measured run, then its summary.
pub async fn run_bench(cfg: &BenchConfig) -> Result<RunSummary, BenchError> {
    cfg.validate()?;
    let client = client::http_client();
    if !cfg.warmup.is_zero() {
        let mut w = cfg.clone();
        w.duration = cfg.warmup;
        w.min_queries = 0;
        w.seed = cfg.seed.wrapping_add(0x9e37_79b9);
        let _ = execute(&client, &w, "warmup").await;
    }
    let recs = execute(&client, cfg, "measure").await;
    let mut summary = summarize(cfg, recs);
    if let Some(url) = &cfg.sidecar_metrics {
        summary.energy = scrape::energy(&client, url).await.ok();
    }
    Ok(summary)
}

/// Issue the queries of one phase and return their records.
async fn execute(client: &HttpClient, cfg: &BenchConfig, phase: &str) -> Vec<Rec> {
    // A small lead so the first scheduled query is not already late when the loop starts.
    let start = Instant::now() + Duration::from_millis(5);
    let shared = Arc::new(Shared {
        client: client.clone(),
        cfg: cfg.clone(),
        recs: Mutex::new(Vec::new()),
        done: AtomicU64::new(0),
        start,
    });
    let expected = match cfg.scenario {
        Scenario::Server => cfg
            .duration
            .max(Duration::from_secs_f64(cfg.min_queries as f64 / cfg.qps)),
        _ => cfg.duration,
    };
    let progress = cfg.progress.then(|| {
        Progress::start(
            format!("{} {}", phase, label(cfg)),
            expected,
            cfg.min_queries,
            shared.clone_counter(),
        )
    });
    match cfg.scenario {
        Scenario::Server => server(&shared).await,
        Scenario::SingleStream => single_stream(&shared).await,
        Scenario::Offline => offline(&shared).await,
    }
    if let Some(p) = progress {
        p.finish().await;
    }
    let recs = std::mem::take(&mut *shared.recs.lock().expect("records lock"));
    recs
}

fn label(cfg: &BenchConfig) -> String {
    match cfg.scenario {
        Scenario::Server => format!("server @ {:.1} qps", cfg.qps),
        s => s.as_str().to_string(),
    }
}

impl Shared {
    fn clone_counter(self: &Arc<Self>) -> Arc<dyn Fn() -> u64 + Send + Sync> {
        let me = self.clone();
        Arc::new(move || me.done.load(Ordering::Relaxed))
    }
}

async fn server(shared: &Arc<Shared>) {
    let cfg = &shared.cfg;
    let mut rng = SmallRng::seed_from_u64(cfg.seed);
    let slots = Arc::new(Semaphore::new(cfg.concurrency()));
    let mut tasks = tokio::task::JoinSet::new();
    let mut t = 0.0f64;
    let run_for = cfg.duration.as_secs_f64();
    let mut i = 0u64;
    loop {
        // Exponential inter-arrival times make a Poisson process; 1 - u keeps ln away from 0.
        let u: f64 = rng.gen();
        t += -(1.0 - u).ln() / cfg.qps;
        if t >= run_for && i >= cfg.min_queries {
            break;
        }
        let scheduled = shared.start + Duration::from_secs_f64(t);
        tokio::time::sleep_until(scheduled).await;
        let s = shared.clone();
        let slots = slots.clone();
        let idx = i;
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let tpl = s.template(idx);
            let o = client::send(&s.client, &s.cfg.target, tpl, s.cfg.timeout).await;
            s.record(scheduled, o);
        });
        i += 1;
        // Reap finished tasks as we go so the set does not grow with the run's length.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn single_stream(shared: &Arc<Shared>) {
    let cfg = &shared.cfg;
    let mut i = 0u64;
    loop {
        let now = Instant::now();
        if now.saturating_duration_since(shared.start) >= cfg.duration && i >= cfg.min_queries {
            break;
        }
        let o = client::send(&shared.client, &cfg.target, shared.template(i), cfg.timeout).await;
        shared.record(now, o);
        i += 1;
    }
}

async fn offline(shared: &Arc<Shared>) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..shared.cfg.concurrency() {
        let s = shared.clone();
        let next = next.clone();
        tasks.spawn(async move {
            loop {
                let now = Instant::now();
                let i = next.fetch_add(1, Ordering::Relaxed);
                if now.saturating_duration_since(s.start) >= s.cfg.duration
                    && i >= s.cfg.min_queries
                {
                    break;
                }
                let o = client::send(&s.client, &s.cfg.target, s.template(i), s.cfg.timeout).await;
                s.record(now, o);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

fn summarize(cfg: &BenchConfig, mut recs: Vec<Rec>) -> RunSummary {
    recs.sort_by(|a, b| a.sched.total_cmp(&b.sched));
    let issued = recs.len() as u64;
    let mut error_kinds = BTreeMap::new();
    let mut ok_lat = Vec::new();
    let mut ttft = Vec::new();
    let mut tpot = Vec::new();
    let mut tokens = 0u64;
    for r in &recs {
        match r.error {
            Some(e) => *error_kinds.entry(e.as_str().to_string()).or_insert(0) += 1,
            None => {
                ok_lat.push(r.latency);
                ttft.extend(r.ttft);
                tpot.extend(r.tpot);
                tokens += u64::from(r.tokens);
            }
        }
    }
    let errors = issued - ok_lat.len() as u64;
    let last_done = recs.iter().map(|r| r.done).fold(0.0, f64::max);
    let last_sched = recs.last().map_or(0.0, |r| r.sched);
    let latency = LatencyStats::from_samples(&mut ok_lat);
    let early_stopping = [0.90, 0.99]
        .iter()
        .map(|&p| Estimate::compute(&ok_lat, p))
        .collect::<Vec<_>>();
    let ttft_stats = LatencyStats::from_samples(&mut ttft);
    let tpot_stats = LatencyStats::from_samples(&mut tpot);
    let error_ratio = if issued == 0 {
        0.0
    } else {
        errors as f64 / issued as f64
    };

    let mut reasons = Vec::new();
    if issued < cfg.min_queries {
        reasons.push(format!(
            "min queries not met: {issued} of {}",
            cfg.min_queries
        ));
    }
    if issued == 0 || ok_lat.is_empty() {
        reasons.push("no successful query".to_string());
    }
    if error_ratio > cfg.max_error_ratio {
        reasons.push(format!(
            "error ratio {:.4} above --max-error-ratio {}",
            error_ratio, cfg.max_error_ratio
        ));
    }
    let mut slo_checks = Vec::new();
    let mut check = |name: &str, bound: Option<f64>, stats: &Option<LatencyStats>| {
        if let Some(bound) = bound {
            let p99 = stats.as_ref().map(|s| s.p99);
            let met = p99.is_some_and(|v| v <= bound);
            if !met {
                reasons.push(match p99 {
                    Some(v) => format!(
                        "{name} p99 {} above the SLO {}",
                        super::fmt_secs(v),
                        super::fmt_secs(bound)
                    ),
                    None => format!("{name} p99 not measured (SLO {})", super::fmt_secs(bound)),
                });
            }
            slo_checks.push(SloCheck {
                name: name.to_string(),
                bound_secs: bound,
                p99_secs: p99,
                met,
            });
        }
    };
    check("latency", cfg.slo_p99, &latency);
    check("ttft", cfg.slo_ttft_p99, &ttft_stats);
    check("tpot", cfg.slo_tpot_p99, &tpot_stats);
    let slo_early_stopping = cfg
        .slo_p99
        .map(|bound| SloEarlyStopping::compute(&ok_lat, errors, 0.99, bound));
    match &slo_early_stopping {
        Some(es) if !es.satisfied => reasons.push(format!(
            "early stopping: {} of {} queries over the SLO; {} more needed to claim p99 at 99% confidence",
            es.over_bound, es.queries, es.more_queries_needed
        )),
        None if cfg.scenario != Scenario::Offline => {
            // Without an SLO the claim is the percentile estimate itself.
            let p = cfg.scenario.target_percentile();
            if let Some(e) = early_stopping.iter().find(|e| e.percentile == p) {
                if !e.satisfied {
                    reasons.push(format!(
                        "early stopping: {} queries, p{} needs at least {} ({} more)",
                        e.queries,
                        p * 100.0,
                        e.min_queries,
                        e.more_queries_needed
                    ));
                }
            }
        }
        _ => {}
    }

    RunSummary {
        scenario: cfg.scenario,
        target: cfg.target.as_str(),
        target_qps: (cfg.scenario == Scenario::Server).then_some(cfg.qps),
        concurrency_limit: cfg.concurrency(),
        seed: cfg.seed,
        warmup_secs: cfg.warmup.as_secs_f64(),
        duration_secs: last_done,
        issued,
        completed_ok: ok_lat.len() as u64,
        errors,
        error_kinds,
        error_ratio,
        scheduled_qps: (issued > 1 && last_sched > 0.0).then(|| (issued - 1) as f64 / last_sched),
        achieved_qps: if last_done > 0.0 {
            ok_lat.len() as f64 / last_done
        } else {
            0.0
        },
        latency,
        ttft: ttft_stats,
        tpot: tpot_stats,
        output_tokens: tokens,
        early_stopping,
        slo_early_stopping,
        slo_checks,
        valid: reasons.is_empty(),
        reasons,
        timeline: timeline(&recs),
        energy: None,
    }
}

fn timeline(recs: &[Rec]) -> Vec<TimelinePoint> {
    let mut bins: BTreeMap<u64, (u64, u64, Vec<f64>)> = BTreeMap::new();
    for r in recs {
        let b = bins.entry(r.sched.max(0.0) as u64).or_default();
        b.0 += 1;
        match r.error {
            Some(_) => b.1 += 1,
            None => b.2.push(r.latency),
        }
    }
    bins.into_iter()
        .map(|(second, (queries, errors, mut lat))| {
            let s = LatencyStats::from_samples(&mut lat);
            TimelinePoint {
                second,
                queries,
                errors,
                p50_secs: s.as_ref().map(|s| s.p50),
                p99_secs: s.as_ref().map(|s| s.p99),
                max_secs: s.as_ref().map(|s| s.max),
            }
        })
        .collect()
}

/// A plain-text summary of one run, for the terminal.
pub fn render_text(s: &RunSummary) -> String {
    use std::fmt::Write;
    let f = super::fmt_secs;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "inferwatch bench: {} against {}",
        s.scenario.as_str(),
        s.target
    );
    if let Some(q) = s.target_qps {
        let _ = writeln!(o, "  target qps        {q:.2}");
    }
    if let Some(q) = s.scheduled_qps {
        let _ = writeln!(o, "  scheduled qps     {q:.2}");
    }
    let _ = writeln!(o, "  achieved qps      {:.2}", s.achieved_qps);
    let _ = writeln!(
        o,
        "  queries           {} issued, {} ok, {} errors ({:.3}%) in {:.2}s",
        s.issued,
        s.completed_ok,
        s.errors,
        s.error_ratio * 100.0,
        s.duration_secs
    );
    for (k, v) in &s.error_kinds {
        let _ = writeln!(o, "    {k:<16}{v}");
    }
    let mut stats = |name: &str, l: &Option<LatencyStats>| {
        if let Some(l) = l {
            let _ = writeln!(
                o,
                "  {name:<18}p50 {}  p90 {}  p95 {}  p99 {}  p99.9 {}  mean {}  max {}",
                f(l.p50),
                f(l.p90),
                f(l.p95),
                f(l.p99),
                f(l.p999),
                f(l.mean),
                f(l.max)
            );
        }
    };
    stats("latency", &s.latency);
    stats("ttft", &s.ttft);
    stats("tpot", &s.tpot);
    for e in &s.early_stopping {
        let _ = match e.estimate_secs {
            Some(v) => writeln!(
                o,
                "  early stopping p{}: {} at {:.0}% confidence ({} queries, at least {}; {} highest discarded)",
                e.percentile * 100.0,
                f(v),
                e.confidence * 100.0,
                e.queries,
                e.min_queries,
                e.discarded
            ),
            None => writeln!(
                o,
                "  early stopping p{}: not enough queries ({} of at least {}; {} more needed)",
                e.percentile * 100.0,
                e.queries,
                e.min_queries,
                e.more_queries_needed
            ),
        };
    }
    if let Some(es) = &s.slo_early_stopping {
        let _ = writeln!(
            o,
            "  SLO early stopping: {} of {} queries over {}; needs {} in total -> {}",
            es.over_bound,
            es.queries,
            f(es.bound_secs),
            if es.required_queries == u64::MAX {
                "never".to_string()
            } else {
                es.required_queries.to_string()
            },
            if es.satisfied {
                "satisfied".to_string()
            } else {
                format!("{} more needed", es.more_queries_needed)
            }
        );
    }
    for c in &s.slo_checks {
        let _ = writeln!(
            o,
            "  SLO {:<8} p99 {} vs {}: {}",
            c.name,
            c.p99_secs.map_or("n/a".into(), f),
            f(c.bound_secs),
            if c.met { "met" } else { "MISSED" }
        );
    }
    if let Some(e) = &s.energy {
        let _ = writeln!(o, "  energy            {}", e.describe());
    }
    let _ = writeln!(o, "Result is: {}", s.verdict());
    for r in &s.reasons {
        let _ = writeln!(o, "  - {r}");
    }
    o
}
