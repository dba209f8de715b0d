//! Why a load level fails, for `inferwatch report`: the model server's own saturation gauges
//! (`inferwatch_engine_*`, exported by the sidecar's engine scraper) averaged over a load band,
//! and the cause of the first band that misses the goodput target named from them: KV-cache
//! exhaustion, queueing, or compute (neither). Pure functions of their inputs.

use serde::{Deserialize, Serialize};

/// KV-cache use at which an engine starts preempting or refusing to admit (vLLM preempts when a
/// new block cannot be allocated; with block rounding that happens a few percent short of 1).
pub const KV_FULL: f64 = 0.95;
/// Waiting requests that count as a queue: at least one on average, and at least this many more
/// than in the band that still met the target (a queue that was already there is not news).
pub const WAITING_GROWTH: f64 = 0.5;
/// Share of the engine's time that is queue time (queue / (queue + compute)) that counts as
/// queueing when it rose by [`QUEUE_SHARE_GROWTH`] from the band that met the target.
pub const QUEUE_SHARE: f64 = 0.2;
pub const QUEUE_SHARE_GROWTH: f64 = 0.1;

/// The engine's gauges at one step of one replica (any may be missing: engines export
/// different subsets, and a sidecar without `[engine]` exports none).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineStep {
    pub waiting: Option<f64>,
    pub running: Option<f64>,
    pub kv_cache_usage: Option<f64>,
    /// Preemptions per second (rate of the counter).
    pub preemptions_per_sec: Option<f64>,
    /// Queue and compute seconds per second (rates of the cumulative counters).
    pub queue_rate: Option<f64>,
    pub compute_rate: Option<f64>,
}

/// The engine's gauges over one load band.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EngineBand {
    /// Steps of the band with any engine figure.
    pub steps: u64,
    /// Mean requests waiting in the engine's queue.
    pub waiting_mean: Option<f64>,
    /// Mean requests running.
    pub running_mean: Option<f64>,
    /// Highest and mean KV-cache use (0-1).
    pub kv_cache_usage_max: Option<f64>,
    pub kv_cache_usage_mean: Option<f64>,
    /// Mean preemptions per second.
    pub preemptions_per_sec: Option<f64>,
    /// Queue time over queue plus compute time (0-1).
    pub queue_share: Option<f64>,
}

impl EngineBand {
    /// The band's figures from its steps' readings.
    pub fn of<'a>(steps: impl IntoIterator<Item = &'a EngineStep>) -> Self {
        let steps: Vec<&EngineStep> = steps.into_iter().collect();
        let mean = |f: fn(&EngineStep) -> Option<f64>| {
            let v: Vec<f64> = steps.iter().filter_map(|s| f(s)).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let kv: Vec<f64> = steps.iter().filter_map(|s| s.kv_cache_usage).collect();
        let (q, c): (f64, f64) = steps
            .iter()
            .filter_map(|s| s.queue_rate.zip(s.compute_rate))
            .fold((0.0, 0.0), |(q, c), (a, b)| (q + a, c + b));
        let any = |s: &&&EngineStep| {
            s.waiting.is_some()
                || s.running.is_some()
                || s.kv_cache_usage.is_some()
                || s.preemptions_per_sec.is_some()
                || s.queue_rate.is_some()
        };
        Self {
            steps: steps.iter().filter(any).count() as u64,
            waiting_mean: mean(|s| s.waiting),
            running_mean: mean(|s| s.running),
            kv_cache_usage_max: kv.iter().copied().reduce(f64::max),
            kv_cache_usage_mean: (!kv.is_empty()).then(|| kv.iter().sum::<f64>() / kv.len() as f64),
            preemptions_per_sec: mean(|s| s.preemptions_per_sec),
            queue_share: (q + c > 0.0).then(|| q / (q + c)),
        }
    }
}

/// What limits a load level.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// KV-cache use at [`KV_FULL`] or preemptions rising: the engine cannot hold the batch.
    KvCacheExhaustion,
    /// Requests wait in the engine's queue (waiting grew, or queue time's share rose).
    Queueing,
    /// The engine has room and no queue, yet requests miss: each one is slower (compute).
    ComputeBound,
    /// No engine figures for the band (no `[engine]` on the sidecar, or none scraped).
    NoEngineData,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::KvCacheExhaustion => "KV-cache exhaustion",
            Cause::Queueing => "queueing",
            Cause::ComputeBound => "compute-bound",
            Cause::NoEngineData => "unknown (no engine metrics)",
        }
    }
}

/// The cause of a failing band, with the figures that name it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Why {
    pub cause: Cause,
    /// Load range of the failing band (requests/s per replica).
    pub qps_low: f64,
    pub qps_high: f64,
    pub detail: String,
}

fn f(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2}"))
}

/// Name the cause of `failing`, compared with `base` (the last band that met the target, or
/// the lightest band when none did). KV-cache exhaustion is checked first: a full cache also
/// makes requests wait (vLLM puts preempted requests back in its queue), so a queue beside a
/// full cache is the cache's doing. `failing_qps` is the failing band's mean request rate and
/// `allowed` the share of requests the goodput target lets miss: preemptions of at least that
/// share of the requests are enough to break the target on their own.
pub fn cause(
    failing: &EngineBand,
    base: Option<&EngineBand>,
    failing_qps: f64,
    allowed: f64,
) -> (Cause, String) {
    if failing.steps == 0 {
        return (
            Cause::NoEngineData,
            "no inferwatch_engine_* series for this replica in the band (set [engine] metrics_url on the sidecar)".into(),
        );
    }
    let base = base.cloned().unwrap_or_default();
    let seen = format!(
        "waiting {} (was {}), KV-cache use max {} (was {}), preemptions/s {} (was {}), queue share {} (was {})",
        f(failing.waiting_mean),
        f(base.waiting_mean),
        f(failing.kv_cache_usage_max),
        f(base.kv_cache_usage_max),
        f(failing.preemptions_per_sec),
        f(base.preemptions_per_sec),
        f(failing.queue_share),
        f(base.queue_share)
    );
    let kv_full = failing.kv_cache_usage_max.is_some_and(|k| k >= KV_FULL);
    // Preemptions rising: half as many again as at the passing load, or enough of them to
    // break the target by themselves (the gauges' rate windows straddle neighbouring steps, so
    // a passing band near the knee shows some).
    let preempting = failing.preemptions_per_sec.is_some_and(|p| {
        p > 0.0
            && (p > base.preemptions_per_sec.unwrap_or(0.0) * 1.5
                || (failing_qps > 0.0 && p / failing_qps >= allowed))
    });
    if kv_full || preempting {
        let why = match (kv_full, preempting) {
            (true, true) => format!("KV cache at or over {KV_FULL} and preemptions rising"),
            (true, false) => format!("KV cache at or over {KV_FULL}"),
            _ => "preemptions rising".into(),
        };
        return (Cause::KvCacheExhaustion, format!("{why}: {seen}"));
    }
    let waiting_grew = failing
        .waiting_mean
        .is_some_and(|w| w >= 1.0 && w >= base.waiting_mean.unwrap_or(0.0) + WAITING_GROWTH);
    let queue_rose = failing.queue_share.is_some_and(|q| {
        q >= QUEUE_SHARE && q >= base.queue_share.unwrap_or(0.0) + QUEUE_SHARE_GROWTH
    });
    if waiting_grew || queue_rose {
        let why = match (waiting_grew, queue_rose) {
            (true, true) => "requests waiting grew and queue time's share rose",
            (true, false) => "requests waiting grew",
            _ => "queue time's share rose",
        };
        return (Cause::Queueing, format!("{why}: {seen}"));
    }
    (
        Cause::ComputeBound,
        format!("no queue and the KV cache has room, so each request is slower: {seen}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn band(waiting: f64, kv: f64, preempt: f64, queue: f64) -> EngineBand {
        let s = EngineStep {
            waiting: Some(waiting),
            running: Some(4.0),
            kv_cache_usage: Some(kv),
            preemptions_per_sec: Some(preempt),
            queue_rate: Some(queue),
            compute_rate: Some(1.0 - queue),
        };
        EngineBand::of([&s, &s])
    }

    #[test]
    fn causes() {
        let c = |f: &EngineBand, b: Option<&EngineBand>| cause(f, b, 40.0, 0.01);
        let calm = band(0.1, 0.3, 0.0, 0.02);
        assert_eq!(c(&band(6.0, 0.4, 0.0, 0.6), Some(&calm)).0, Cause::Queueing);
        // A full cache makes requests wait too: the cache is named.
        assert_eq!(
            c(&band(3.0, 0.99, 0.0, 0.3), Some(&calm)).0,
            Cause::KvCacheExhaustion
        );
        assert_eq!(
            c(&band(0.0, 0.8, 2.0, 0.0), Some(&calm)).0,
            Cause::KvCacheExhaustion
        );
        assert_eq!(
            c(&band(0.2, 0.5, 0.0, 0.05), Some(&calm)).0,
            Cause::ComputeBound
        );
        // Preemptions that grew little but are 5% of the requests: enough to miss a 99% target.
        assert_eq!(
            c(&band(0.5, 0.8, 2.0, 0.0), Some(&band(0.0, 0.7, 1.6, 0.0))).0,
            Cause::KvCacheExhaustion
        );
        // Preemptions of 0.5% of the requests, no more than before: not the cause.
        assert_eq!(
            c(&band(0.0, 0.8, 0.2, 0.0), Some(&band(0.0, 0.7, 0.2, 0.0))).0,
            Cause::ComputeBound
        );
        // A queue that was already there at the passing load is not the news.
        let queued = band(5.0, 0.3, 0.0, 0.5);
        assert_eq!(
            c(&band(5.2, 0.4, 0.0, 0.55), Some(&queued)).0,
            Cause::ComputeBound
        );
        assert_eq!(
            c(&EngineBand::default(), Some(&calm)).0,
            Cause::NoEngineData
        );
        let b = band(1.0, 0.5, 0.0, 0.25);
        assert_eq!(b.steps, 2);
        assert_eq!(b.kv_cache_usage_max, Some(0.5));
        assert!((b.queue_share.unwrap() - 0.25).abs() < 1e-12);
    }
}
