//! The scenarios and one run's summary.
//!
//! - `server`: open loop. Arrival times are drawn from the `--arrival` process at `--qps`
//!   (Poisson by default, gamma or constant; seeded: [`super::llm::arrival`]), each query is sent at its time whether or not earlier ones have answered, and its
//!   latency runs from the *scheduled* time. A stalled server therefore shows up in every query
//!   that should have been sent during the stall (a closed-loop client would just wait, send
//!   fewer queries and report a clean tail: coordinated omission). A `--concurrency-limit` caps
//!   queries in flight; queries waiting for a slot keep their scheduled start.
//! - `single-stream`: one query at a time, the next sent when the previous completes; the
//!   figure of merit is p90 (MLPerf's choice for this scenario).
//! - `offline`: as many queries as `--concurrency-limit` allows, always kept full; the figure of
//!   merit is throughput. Latency is measured from each query's own send.
//!   `--concurrency N` (OpenAI targets) is this loop: N users, each sending its next request
//!   when its last one finished.
//!
//! OpenAI targets: each response's chunks are kept with their arrival times and read, once the
//! query is done, with the live path's adapter ([`super::llm::record`]); the engine's
//! saturation is sampled while the queries run ([`super::llm::saturation`]).
//!
//! Every run lasts at least `--duration` and at least `--min-queries` queries (as LoadGen's
//! min duration and min query count), after an optional `--warmup` whose results are dropped.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::client::{self, HttpClient};
use super::config::{BenchConfig, Scenario};
use super::llm::arrival::Arrivals;
use super::llm::record::{self, RequestRecord};
use super::llm::saturation::{self, Saturation};
use super::progress::Progress;
use super::requests::RequestTemplate;
use super::scrape;
use super::summary::{summarize, Rec, RunSummary};
use super::BenchError;

/// Shared state of a run in progress.
struct Shared {
    client: HttpClient,
    cfg: BenchConfig,
    recs: Mutex<Vec<Rec>>,
    /// OpenAI targets: each request read as the sidecar reads it.
    llm: Mutex<Vec<RequestRecord>>,
    done: AtomicU64,
    /// Completed queries that failed or took longer than the p99 SLO.
    late: AtomicU64,
    /// Why the run stopped before its schedule, if it did.
    stopped: Mutex<Option<String>>,
    start: Instant,
}

impl Shared {
    fn is_llm(&self) -> bool {
        self.cfg.protocol == crate::routes::config::Protocol::Openai
    }

    /// Send query `i` and record it (`scheduled`: when it should have gone).
    async fn query(&self, i: u64, scheduled: Instant) {
        let o = client::send(
            &self.client,
            &self.cfg.target,
            self.template(i),
            self.cfg.timeout,
            self.is_llm(),
        )
        .await;
        if self.is_llm() {
            self.record_llm(i, scheduled, &o);
        }
        self.record(scheduled, o);
    }

    fn record_llm(&self, i: u64, scheduled: Instant, o: &client::Observed) {
        let tpl = self.template(i);
        let uri = self.cfg.target.uri_for(tpl);
        let path = match crate::protocol::openai::endpoint(uri.path()) {
            Some(_) => uri.path(),
            None => "/v1/chat/completions",
        };
        let n = self.cfg.requests.len() as u64;
        let cx = record::Context {
            index: i,
            item: ((self.cfg.first_item + i) % n) as usize,
            scheduled,
            start: self.start,
            path,
            request: &tpl.body,
            requested: self
                .cfg
                .workload
                .as_ref()
                .map(|w| w.requested(self.cfg.first_item + i)),
            slo: &self.cfg.slo,
        };
        let rec = record::observe(&cx, o);
        self.llm.lock().expect("llm records lock").push(rec);
    }

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
        if rec.error.is_some() || self.cfg.slo_p99.is_some_and(|slo| rec.latency > slo) {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        self.recs.lock().expect("records lock").push(rec);
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    fn template(&self, i: u64) -> &RequestTemplate {
        let r = &self.cfg.requests;
        &r[((self.cfg.first_item + i) % r.len() as u64) as usize]
    }
}

/// Run one bench: warmup (dropped), then the measured run, then its summary.
pub async fn run_bench(cfg: &BenchConfig) -> Result<RunSummary, BenchError> {
    cfg.validate()?;
    let client = if cfg.grpc {
        client::grpc_client()
    } else {
        client::http_client()
    };
    let mut cfg = cfg.clone();
    if !cfg.warmup.is_zero() {
        let mut w = cfg.clone();
        w.duration = cfg.warmup;
        w.min_queries = 0;
        w.seed = cfg.seed.wrapping_add(0x9e37_79b9);
        w.stop_when_certain = false;
        let (warm, ..) = execute(&client, &w, "warmup").await;
        cfg.first_item += warm.len() as u64;
    }
    let cfg = &cfg;
    let (recs, llm, saturation, stopped) = execute(&client, cfg, "measure").await;
    let mut summary = summarize(cfg, recs);
    summary.next_item = cfg.first_item + summary.issued;
    if cfg.protocol == crate::routes::config::Protocol::Openai {
        summary.llm_figures(cfg, llm, saturation);
    }
    if let Some(why) = stopped {
        summary.valid = false;
        summary.reasons.push(format!("stopped early: {why}"));
        summary.stopped_early = Some(why);
    }
    if let Some(url) = &cfg.sidecar_metrics {
        if let Ok(text) = scrape::get_text(&client, url).await {
            let samples = scrape::parse_text(&text);
            summary.energy = Some(scrape::energy_from(&samples));
            if let Some(l) = summary.llm.as_mut() {
                l.joules_per_output_token = saturation::joules_per_output_token(&samples);
            }
        }
    }
    Ok(summary)
}

/// What one phase recorded: its queries, their LLM records (OpenAI targets), the engine's
/// saturation while it ran, and why it stopped early if it did.
type Phase = (
    Vec<Rec>,
    Vec<RequestRecord>,
    Option<Saturation>,
    Option<String>,
);

/// Issue the queries of one phase and return what they recorded.
async fn execute(client: &HttpClient, cfg: &BenchConfig, phase: &str) -> Phase {
    // A small lead so the first scheduled query is not already late when the loop starts.
    let start = Instant::now() + Duration::from_millis(5);
    let shared = Arc::new(Shared {
        client: client.clone(),
        cfg: cfg.clone(),
        recs: Mutex::new(Vec::new()),
        llm: Mutex::new(Vec::new()),
        done: AtomicU64::new(0),
        late: AtomicU64::new(0),
        stopped: Mutex::new(None),
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
    // The engine's saturation is sampled while the queries run (after, its queue is empty).
    let source = match (&cfg.engine_metrics, &cfg.sidecar_metrics) {
        _ if !shared.is_llm() => None,
        (Some(u), _) => Some(saturation::Source::Engine(u.clone())),
        (None, Some(u)) => Some(saturation::Source::Sidecar(u.clone())),
        (None, None) => None,
    };
    let (stop_watch, stopped_rx) = tokio::sync::watch::channel(false);
    let watcher = source.map(|s| tokio::spawn(saturation::watch(client.clone(), s, stopped_rx)));
    match cfg.scenario {
        Scenario::Server => server(&shared).await,
        Scenario::SingleStream => single_stream(&shared).await,
        Scenario::Offline => offline(&shared).await,
    }
    let _ = stop_watch.send(true);
    let sat = match watcher {
        Some(w) => w.await.ok(),
        None => None,
    };
    if let Some(p) = progress {
        p.finish().await;
    }
    let recs = std::mem::take(&mut *shared.recs.lock().expect("records lock"));
    let llm = std::mem::take(&mut *shared.llm.lock().expect("llm records lock"));
    let stopped = shared.stopped.lock().expect("stopped lock").take();
    (recs, llm, sat, stopped)
}

/// Whether a server run's p99 is already certain to be over the SLO: more than 1% of all the
/// queries it will issue are late (failed, answered after the SLO, or still outstanding longer
/// than the SLO), so its 99th percentile is over the SLO whatever the rest do. `most` bounds the
/// run's query count from above ([`most_queries`]); at least 10 late queries are asked for.
pub fn certain_failure(late: u64, most: f64) -> bool {
    late >= 10 && late as f64 > 0.01 * most
}

/// An upper bound on a server run's query count: `--min-queries`, or the Poisson count of
/// `duration × qps` plus four standard deviations (exceeded with odds below 1 in 10,000).
pub fn most_queries(duration_secs: f64, qps: f64, min_queries: u64) -> f64 {
    let mean = duration_secs * qps;
    (mean + 4.0 * mean.sqrt() + 1.0).max(min_queries as f64)
}

fn label(cfg: &BenchConfig) -> String {
    match cfg.scenario {
        Scenario::Server => format!("server @ {:.1} qps", cfg.qps),
        Scenario::Offline if cfg.protocol == crate::routes::config::Protocol::Openai => {
            format!("closed loop, {} users", cfg.concurrency())
        }
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
    let mut arrivals = Arrivals::new(cfg.arrival, cfg.qps, cfg.seed);
    let slots = Arc::new(Semaphore::new(cfg.concurrency()));
    let mut tasks = tokio::task::JoinSet::new();
    let mut t = 0.0f64;
    let run_for = cfg.duration.as_secs_f64();
    let mut i = 0u64;
    // For stopping early: the scheduled times of queries not yet older than the SLO, and how
    // many were scheduled longer ago than that.
    let watch = cfg.slo_p99.filter(|_| cfg.stop_when_certain);
    let most = most_queries(run_for, cfg.qps, cfg.min_queries);
    let mut recent: std::collections::VecDeque<f64> = std::collections::VecDeque::new();
    let mut aged = 0u64;
    loop {
        t += arrivals.next_gap();
        if t >= run_for && i >= cfg.min_queries {
            break;
        }
        let scheduled = shared.start + Duration::from_secs_f64(t);
        tokio::time::sleep_until(scheduled).await;
        if let Some(slo) = watch {
            let now = Instant::now()
                .saturating_duration_since(shared.start)
                .as_secs_f64();
            while recent.front().is_some_and(|&s| s < now - slo) {
                recent.pop_front();
                aged += 1;
            }
            // Queries scheduled over an SLO ago and not completed are late already; counting
            // every completion against them keeps this a lower bound.
            let done = shared.done.load(Ordering::Relaxed);
            let late = shared.late.load(Ordering::Relaxed) + aged.saturating_sub(done);
            if certain_failure(late, most) {
                *shared.stopped.lock().expect("stopped lock") = Some(format!(
                    "{late} of at most {most:.0} queries already failed or exceeded the p99 SLO ({}) after {now:.1} s ({} outstanding)",
                    super::fmt_secs(slo),
                    i - done
                ));
                tasks.abort_all();
                break;
            }
            recent.push_back(t);
        }
        let s = shared.clone();
        let slots = slots.clone();
        let idx = i;
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            s.query(idx, scheduled).await;
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
        shared.query(i, now).await;
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
                s.query(i, now).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
