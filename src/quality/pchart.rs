//! p-chart for 0/1 signals (request failed, canary wrong, shadow disagreed): the fraction of
//! "bad" in each subgroup against a centre p₀, with a varying subgroup size n.
//!
//! The limits are binomial probability limits rather than the textbook normal approximation
//! `p₀ ± L·√(p₀(1−p₀)/n)` (Montgomery §7.2): at the small n·p₀ of an error rate the normal limits
//! are badly off (with p₀ = 0.1%, n = 20 the 3σ UCL is 2.2%, so a single failure, probability 2%,
//! "alarms" — ARL0 ≈ 50, not 370). Here the upper limit is the smallest count u with
//! P(X > u) ≤ α, the lower the largest l with P(X < l) ≤ α, X ~ Binomial(n, p₀), α = Φ(−L) per
//! side; so each subgroup's false-alarm probability is at most 2·Φ(−L), as on a normal chart, and
//! ARL0 ≥ 1/(2Φ(−L)) (370.4 for L = 3), higher where the count's discreteness allows no closer.

use statrs::distribution::{Binomial, DiscreteCDF};

use super::{phi, Point, Rule, Rules};

#[derive(Debug, Clone)]
pub struct PChart {
    p0: f64,
    limit: f64,
    alpha: f64,
    /// Last (n, l, u): the limits for the same n are reused (a steady request rate repeats n).
    cache: Option<(u64, u64, u64)>,
}

impl PChart {
    /// `p0` in (0, 1): the in-control fraction; `limit`: L, giving α = Φ(−L) per side.
    pub fn new(p0: f64, limit: f64) -> Self {
        Self {
            p0,
            limit,
            alpha: phi(-limit),
            cache: None,
        }
    }

    pub fn p0(&self) -> f64 {
        self.p0
    }

    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// Count limits `(l, u)` for a subgroup of `n`: in control iff `l <= d <= u`.
    pub fn count_limits(&mut self, n: u64) -> (u64, u64) {
        if let Some((cn, l, u)) = self.cache {
            if cn == n {
                return (l, u);
            }
        }
        let (l, u) = binomial_limits(n, self.p0, self.alpha);
        self.cache = Some((n, l, u));
        (l, u)
    }

    /// Plot one subgroup: `bad` of `n`. `None` for an empty subgroup (nothing to judge).
    pub fn observe(&mut self, bad: u64, n: u64) -> Option<Point> {
        if n == 0 {
            return None;
        }
        let bad = bad.min(n);
        let (l, u) = self.count_limits(n);
        let fired = if bad > u || bad < l {
            Rules::NONE.with(Rule::Limit)
        } else {
            Rules::NONE
        };
        let nf = n as f64;
        Some(Point {
            statistic: bad as f64 / nf,
            center: self.p0,
            upper: u as f64 / nf,
            lower: l as f64 / nf,
            fired,
        })
    }
}

/// `(l, u)`: the largest l with P(X < l) ≤ α and the smallest u with P(X > u) ≤ α, for
/// X ~ Binomial(n, p).
pub fn binomial_limits(n: u64, p: f64, alpha: f64) -> (u64, u64) {
    let Ok(b) = Binomial::new(p, n) else {
        return (0, n);
    };
    // Start near the mean and walk; a few standard deviations of steps at most.
    let mean = (n as f64 * p).floor() as u64;
    let mut u = mean.min(n);
    while u < n && b.sf(u) > alpha {
        u += 1;
    }
    while u > 0 && b.sf(u - 1) <= alpha {
        u -= 1;
    }
    // P(X < l) = cdf(l − 1).
    let mut l = mean.min(n);
    while l > 0 && b.cdf(l - 1) > alpha {
        l -= 1;
    }
    while l < n && b.cdf(l) <= alpha {
        l += 1;
    }
    (l, u)
}

/// Probability that one subgroup of `n` signals when the true fraction is `p`.
pub fn signal_probability(n: u64, p0: f64, limit: f64, p: f64) -> f64 {
    let (l, u) = binomial_limits(n, p0, phi(-limit));
    let Ok(b) = Binomial::new(p, n) else {
        return f64::NAN;
    };
    let below = if l == 0 { 0.0 } else { b.cdf(l - 1) };
    below + b.sf(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_by_hand() {
        // p0 = 0.001, n = 20: P(X > 0) ≈ 0.0198 > α, P(X > 1) ≈ 1.9e-4 ≤ α → u = 1.
        let (l, u) = binomial_limits(20, 0.001, phi(-3.0));
        assert_eq!((l, u), (0, 1));
        // Large n: close to the normal limits np ± 3√(np(1−p)) = 5000 ± 150.
        let (l, u) = binomial_limits(10_000, 0.5, phi(-3.0));
        assert!((4849..=4851).contains(&l), "{l}");
        assert!((5149..=5151).contains(&u), "{u}");
    }

    #[test]
    fn observe_plots_fractions_and_signals_beyond() {
        let mut c = PChart::new(0.001, 3.0);
        assert!(c.observe(0, 0).is_none());
        let p = c.observe(1, 20).unwrap();
        assert!(!p.fired.any());
        assert_eq!(p.upper, 0.05);
        let p = c.observe(2, 20).unwrap();
        assert!(p.fired.contains(Rule::Limit));
        assert_eq!(p.statistic, 0.1);
    }

    #[test]
    fn false_alarm_probability_is_at_most_two_alpha() {
        for &(n, p0) in &[(20, 0.001), (100, 0.01), (1000, 0.05), (50, 0.5)] {
            let s = signal_probability(n, p0, 3.0, p0);
            assert!(s <= 2.0 * phi(-3.0) + 1e-12, "n={n} p0={p0}: {s}");
        }
    }
}
