//! MLPerf LoadGen's early-stopping rule, re-derived on [`crate::latency::upper_bound_rank`].
//!
//! LoadGen asks: with `n` queries of which `t` were "over latency" (above a bound), is it at
//! least `c` = 99% sure that the true `p`-percentile is below the bound? If the percentile were
//! exactly at the bound, the count over it would be `Binomial(n, 1 - p)`; the run passes when
//! seeing `t` or fewer is improbable under that hypothesis: `P(Binomial(n, 1 - p) <= t) < 1 - c`.
//! That equals `P(Binomial(n, p) <= n - t - 1) > c`, i.e. the order-statistic rank
//! `k = upper_bound_rank(n, p, c)` satisfies `k <= n - t`. So:
//! - with an SLO (server scenario), `t` is the count over the SLO (errors included), and the
//!   run needs the smallest `n` with `k(n) + t <= n` ([`min_total_queries`]);
//! - without one (single-stream), LoadGen treats the `t`-th highest latency as the bound, so
//!   the estimate is the `(k + 1)`-th smallest sample and at least one query must lie at or
//!   above it (`t >= 1`). That is one order statistic more conservative than the plain
//!   confidence bound (the `k`-th), and it is why LoadGen's minimum for p90 at 99% is 64
//!   queries rather than the 44 that `1 - 0.9^n >= 0.99` alone would give (p99: 662, not 459).
//!
//! The figures here follow LoadGen's convention exactly so that its summary and ours agree.

use serde::{Deserialize, Serialize};

use crate::latency::{min_samples, upper_bound_rank};

/// LoadGen's confidence level for early stopping.
pub const CONFIDENCE: f64 = 0.99;

/// `n` passes with `t` over-latency queries: `P(Binomial(n, 1 - p) <= t) < 1 - c`.
pub fn passes(n: u64, t: u64, p: f64, c: f64) -> bool {
    upper_bound_rank(n, p, c).is_some_and(|k| k.saturating_add(t) <= n)
}

/// The smallest total query count for which `t` over-latency queries still pass, i.e. how many
/// queries a run with `t` of them over the bound needs. `u64::MAX` if none suffices.
pub fn min_total_queries(t: u64, p: f64, c: f64) -> u64 {
    let base = min_samples(p, c);
    if base == u64::MAX {
        return u64::MAX;
    }
    let mut lo = base.saturating_add(t).max(1);
    if passes(lo, t, p, c) {
        return lo;
    }
    // The number of passing-allowed over-latency queries grows like n (1 - p), so doubling
    // brackets the answer quickly; then bisect (the condition is monotone in n).
    let mut hi = lo.saturating_mul(2);
    while !passes(hi, t, p, c) {
        if hi == u64::MAX {
            return u64::MAX;
        }
        lo = hi;
        hi = hi.saturating_mul(2);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if passes(mid, t, p, c) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// LoadGen's minimum query count for a percentile estimate (single-stream): one query at or
/// above the estimate, so `min_total_queries(1, ..)`. 64 for p90 and 662 for p99 at 99%.
pub fn min_queries(p: f64, c: f64) -> u64 {
    min_total_queries(1, p, c)
}

/// The early-stopping estimate of the `p`-percentile from sorted latencies, LoadGen's way:
/// `(estimate, discarded)` where `discarded` counts the highest latencies above it that could
/// be thrown away while keeping the `c` confidence. `None` below [`min_queries`].
pub fn percentile_estimate(sorted: &[f64], p: f64, c: f64) -> Option<(f64, u64)> {
    let n = sorted.len() as u64;
    let k = upper_bound_rank(n, p, c)?;
    if k >= n {
        return None;
    }
    // 1-based rank k + 1 is 0-based index k.
    Some((sorted[k as usize], n - k - 1))
}

/// The early-stopping figures for one percentile of one run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Estimate {
    pub percentile: f64,
    pub confidence: f64,
    pub queries: u64,
    /// LoadGen's "processed at least N queries" for this percentile.
    pub min_queries: u64,
    pub satisfied: bool,
    /// Seconds; the latency the run can claim for this percentile at this confidence.
    pub estimate_secs: Option<f64>,
    /// Highest latencies the estimate may ignore.
    pub discarded: u64,
    /// Queries still needed before an estimate exists (0 when satisfied).
    pub more_queries_needed: u64,
}

impl Estimate {
    pub fn compute(sorted: &[f64], p: f64) -> Self {
        let n = sorted.len() as u64;
        let min = min_queries(p, CONFIDENCE);
        let est = percentile_estimate(sorted, p, CONFIDENCE);
        Self {
            percentile: p,
            confidence: CONFIDENCE,
            queries: n,
            min_queries: min,
            satisfied: est.is_some(),
            estimate_secs: est.map(|e| e.0),
            discarded: est.map_or(0, |e| e.1),
            more_queries_needed: min.saturating_sub(n),
        }
    }
}

/// Early stopping against a latency bound (the SLO): can the run claim, at 99% confidence,
/// that the `p`-percentile is within the bound?
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SloEarlyStopping {
    pub percentile: f64,
    pub confidence: f64,
    pub bound_secs: f64,
    pub queries: u64,
    /// Queries over the bound, failed queries included.
    pub over_bound: u64,
    /// Total queries a run with this many over the bound needs.
    pub required_queries: u64,
    pub satisfied: bool,
    /// More queries needed, assuming every additional one is within the bound.
    pub more_queries_needed: u64,
}

impl SloEarlyStopping {
    /// `latencies` of successful queries, `failed` queries counted as over the bound.
    pub fn compute(latencies: &[f64], failed: u64, p: f64, bound_secs: f64) -> Self {
        let over = latencies.iter().filter(|&&l| l > bound_secs).count() as u64 + failed;
        let n = latencies.len() as u64 + failed;
        let required = min_total_queries(over, p, CONFIDENCE);
        Self {
            percentile: p,
            confidence: CONFIDENCE,
            bound_secs,
            queries: n,
            over_bound: over,
            required_queries: required,
            satisfied: n >= required,
            more_queries_needed: required.saturating_sub(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadgen_minimums() {
        // The numbers LoadGen's summaries print ("Processed at least 64 queries", "would need
        // to process at least 662 total queries"); the integration test checks them against a
        // live LoadGen run too.
        assert_eq!(min_queries(0.90, 0.99), 64);
        assert_eq!(min_queries(0.99, 0.99), 662);
        // No over-latency query: the plain bound, 1 - p^n >= c.
        assert_eq!(min_total_queries(0, 0.99, 0.99), 459);
    }

    /// Brute force of LoadGen's condition P(Binomial(n, 1-p) <= t) < 1 - c, in log space.
    fn loadgen_condition(n: u64, t: u64, p: f64, c: f64) -> bool {
        let q = 1.0 - p;
        let mut cdf = 0.0;
        for x in 0..=t.min(n) {
            let ln = statrs::function::factorial::ln_binomial(n, x)
                + x as f64 * q.ln()
                + (n - x) as f64 * p.ln();
            cdf += ln.exp();
        }
        cdf < 1.0 - c
    }

    #[test]
    fn matches_the_binomial_definition() {
        for &p in &[0.9, 0.95, 0.99] {
            for t in [0u64, 1, 2, 5, 20] {
                let n = min_total_queries(t, p, 0.99);
                assert!(loadgen_condition(n, t, p, 0.99), "p={p} t={t} n={n}");
                assert!(!loadgen_condition(n - 1, t, p, 0.99), "p={p} t={t} n={n}");
            }
        }
    }

    #[test]
    fn estimate_follows_loadgen_ranks() {
        let sorted: Vec<f64> = (0..2048).map(f64::from).collect();
        // LoadGen on 2048 single-stream queries: "Would discard 172 highest latency queries".
        let (est, discarded) = percentile_estimate(&sorted, 0.9, 0.99).unwrap();
        assert_eq!(discarded, 172);
        assert_eq!(est, sorted[2048 - 173]);
        assert!(percentile_estimate(&sorted[..63], 0.9, 0.99).is_none());
        assert!(percentile_estimate(&sorted[..64], 0.9, 0.99).is_some());
        let e = Estimate::compute(&sorted[..40], 0.9);
        assert_eq!((e.satisfied, e.more_queries_needed), (false, 24));
    }

    #[test]
    fn slo_verdict() {
        let lat = vec![0.01; 700];
        let s = SloEarlyStopping::compute(&lat, 0, 0.99, 0.02);
        assert!(s.satisfied);
        assert_eq!(s.required_queries, 459);
        let s = SloEarlyStopping::compute(&lat, 3, 0.99, 0.02);
        assert_eq!(s.over_bound, 3);
        assert!(!s.satisfied);
        assert_eq!(s.more_queries_needed, s.required_queries - 703);
    }
}
