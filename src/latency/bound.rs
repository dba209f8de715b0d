//! Order-statistic ranks for distribution-free confidence upper bounds on quantiles.
//!
//! If `X_(1) <= .. <= X_(n)` are i.i.d. samples and `ξ_q` is the true `q`-quantile, then
//! `X_(k) < ξ_q` needs at least `k` samples below `ξ_q`, and the number of samples below
//! `ξ_q` is `Binomial(n, p)` with `p <= q`. So `P(X_(k) >= ξ_q) >= P(Binomial(n, q) <= k-1)`
//! for every distribution, and the smallest `k` that makes this at least `confidence` gives the
//! tightest bound. This is the rule MLPerf LoadGen uses for early stopping.
//!
//! `statrs`' binomial CDF goes through a continued fraction capped at 140 iterations, which is
//! not accurate for the millions of samples a busy window holds, so the tail is summed here
//! directly from the pmf recurrence, over a window around the mode that provably holds all but
//! a negligible, explicitly accounted-for mass. Only for astronomically large `n` does it switch
//! to a normal approximation, widened by the Berry-Esseen error so it stays conservative.

use statrs::distribution::{ContinuousCDF, Normal};

/// Extra Bernstein exponent on top of `ln(1 / (1 - confidence))`: the mass cut off outside the
/// summation window is at most `(1 - confidence) * e^-40`, far below `f64` resolution.
const EXTRA_EXPONENT: f64 = 40.0;

/// Pmf terms (relative to the mode's) below this are dropped: they are far beyond the window's
/// Bernstein slack already, and stopping early keeps the downward recurrence from starting at an
/// underflowed zero.
const NEGLIGIBLE: f64 = 1e-300;

/// Smallest `k` in `1..=n` with `P(Binomial(n, q) <= k - 1) >= confidence`: the 1-based rank of
/// the order statistic that is a `confidence` upper bound on the true `q`-quantile.
///
/// `None` when no such `k` exists (too few samples), when `n == 0`, when `q >= 1` or
/// `confidence >= 1` (no finite sample can bound those, except `q == 0`), or when an argument is
/// NaN. `q <= 0` or `confidence <= 0` give `Some(1)` for any `n >= 1`.
///
/// The test is done on the upper tail, `P(Binomial(n, q) >= k) <= 1 - confidence`, which is the
/// same condition without the cancellation of `1 - CDF` when the confidence is close to 1. The
/// mass outside the summation window is added to the tail, so truncation can only make the rank
/// larger (more conservative), never smaller. Cost is `O(sqrt(n q (1 - q)) + ln(1/(1-c)))`
/// arithmetic steps and no allocation, so millions of samples are cheap. Beyond a variance of
/// 2^32 (billions of samples) a Berry-Esseen-widened normal approximation is used instead; it
/// can only return a slightly larger rank (a few parts per million of a standard deviation).
pub fn upper_bound_rank(n: u64, q: f64, confidence: f64) -> Option<u64> {
    if n == 0 || q.is_nan() || confidence.is_nan() {
        return None;
    }
    if q <= 0.0 || confidence <= 0.0 {
        // P(Binomial(n, 0) <= 0) = 1, and any CDF value is >= a non-positive confidence.
        return if confidence <= 1.0 { Some(1) } else { None };
    }
    if q >= 1.0 || confidence >= 1.0 {
        return None;
    }
    let alpha = 1.0 - confidence;
    let var = n as f64 * q * (1.0 - q);
    if var > LARGE_VARIANCE {
        return large_n_rank(n, q, alpha, var);
    }
    exact_rank(n, q, alpha)
}

/// The summed-pmf rank for moderate variance; preconditions checked by [`upper_bound_rank`].
fn exact_rank(n: u64, q: f64, alpha: f64) -> Option<u64> {
    // Bernstein: P(|X - mu| >= t) <= exp(-t^2 / (2 (sigma^2 + t/3))) per side. Solving for the
    // t that makes this exp(-e) gives the window half-width.
    let e = EXTRA_EXPONENT + (1.0 / alpha).ln();
    let cut_mass = (-e).exp();
    let nf = n as f64;
    let mu = nf * q;
    let var = mu * (1.0 - q);
    // The slack covers rounding of the mean (measured from whichever end is nearer, below).
    let slack = 2.0 + nf * q.min(1.0 - q) * 4.0 * f64::EPSILON;
    let t = e / 3.0 + (e * e / 9.0 + 2.0 * e * var).sqrt() + slack;
    // For q > 1/2 the positions are measured down from n (the mean of n - X is n (1 - q)), so
    // they stay exact even where n * q cannot resolve single units.
    let (lo, mode, hi) = if q <= 0.5 {
        let mode = to_u64(((nf + 1.0) * q).floor()).min(n);
        (
            to_u64((mu - t).floor()),
            mode,
            to_u64((mu + t).ceil()).min(n),
        )
    } else {
        let nu = nf * (1.0 - q);
        // floor((n + 1) q) = n + 1 - ceil((n + 1)(1 - q)).
        let below_top = to_u64(((nf + 1.0) * (1.0 - q)).ceil()).saturating_sub(1);
        let mode = n.saturating_sub(below_top);
        let lo = n.saturating_sub(to_u64((nu + t).ceil()));
        let hi = n.saturating_sub(to_u64((nu - t).floor()));
        (lo, mode, hi)
    };
    let lo = lo.min(mode);
    let hi = hi.max(mode);

    // Pass 1: total mass of the window, in units of pmf(mode), walking outward from the mode
    // where every ratio step shrinks the term, so nothing can overflow.
    let odds = q / (1.0 - q);
    let mut total = 1.0;
    let mut top = mode;
    let mut top_term = 1.0;
    {
        let mut r = 1.0;
        let mut j = mode;
        while j < hi {
            r *= up_ratio(n, j, odds);
            if r < NEGLIGIBLE {
                break;
            }
            j += 1;
            total += r;
            top = j;
            top_term = r;
        }
        let mut r = 1.0;
        let mut j = mode;
        while j > lo {
            r *= down_ratio(n, j, odds);
            if r < NEGLIGIBLE {
                break;
            }
            j -= 1;
            total += r;
        }
    }

    // Pass 2: walk down from the top, accumulating the upper tail P(X >= j) (plus the mass cut
    // off above the window), until it exceeds alpha. The rank is one above that point.
    if top_term / total + cut_mass > alpha {
        // Even the topmost term's tail is too heavy: the rank is above the window.
        let k = top + 1;
        return if k <= n { Some(k) } else { None };
    }
    let mut r = top_term;
    let mut tail = top_term;
    let mut j = top;
    while j > lo.max(1) {
        r *= down_ratio(n, j, odds);
        j -= 1;
        tail += r;
        if tail / total + cut_mass > alpha {
            return Some(j + 1);
        }
    }
    // The tail stayed within alpha down to the bottom of the window. Below the window the tail
    // is at least 1 - cut_mass, which only happens to fit when the confidence is a rounding error
    // above zero; `j` is then a valid (at worst slightly conservative) rank.
    Some(j.max(1))
}

/// Above this variance (standard deviation 65536, e.g. n > 1.7e10 at q = 0.5 or n > 4.3e11 at
/// q = 0.99) summing the pmf would take millions of steps, and the normal approximation with a
/// Berry-Esseen correction is both rigorous and within a few parts per million of exact.
const LARGE_VARIANCE: f64 = 4_294_967_296.0;

/// Shevtsova's (2011) Berry-Esseen constant for i.i.d. sums.
const BERRY_ESSEEN_C: f64 = 0.4748;

/// Conservative rank for huge `n`: `P(X <= x) >= Phi((x - mu) / sigma) - BE` with the
/// Berry-Esseen error `BE = C (q^2 + (1-q)^2) / sigma`, so asking the normal for
/// `confidence + BE` can only overshoot the exact rank (by about `BE / phi(z) * sigma`, a few
/// parts per million of sigma). If that leaves no room below 1, Bernstein's inequality, also
/// rigorous but looser, is used instead.
fn large_n_rank(n: u64, q: f64, alpha: f64, var: f64) -> Option<u64> {
    let sigma = var.sqrt();
    let mu = n as f64 * q;
    let be = BERRY_ESSEEN_C * (q * q + (1.0 - q) * (1.0 - q)) / sigma;
    let target_alpha = alpha - be;
    let deviation = if target_alpha > 1e-12 {
        // P(X >= mu + sigma z) <= 1 - Phi(z) + BE <= alpha.
        let std_normal = Normal::standard();
        sigma * std_normal.inverse_cdf(1.0 - target_alpha)
    } else {
        // Bernstein with exp(-e) = alpha, as in the window width of `exact_rank`.
        let e = (1.0 / alpha).ln();
        e / 3.0 + (e * e / 9.0 + 2.0 * e * var).sqrt()
    };
    if !deviation.is_finite() {
        return None;
    }
    // X >= k must be at least `deviation` above the mean: k - 1 >= mu + deviation, rounded up,
    // plus slack for the rounding of mu itself at this magnitude.
    let k = to_u64((mu + deviation + mu * 4.0 * f64::EPSILON).ceil()).saturating_add(1);
    if k <= n {
        Some(k.max(1))
    } else {
        None
    }
}

/// The smallest sample count `n` for which [`upper_bound_rank`] has an answer, i.e. for which a
/// `confidence` upper bound on the `q`-quantile exists at all (it is then the sample maximum).
///
/// Mathematically that is `n >= ln(1 - confidence) / ln(q)` (from `1 - q^n >= confidence`);
/// the estimate is then checked against `upper_bound_rank` itself so the two never disagree on
/// a rounding boundary. Returns 1 for `q <= 0` or `confidence <= 0`, and `u64::MAX` when no
/// sample count suffices (`q >= 1`, `confidence >= 1`, or NaN).
pub fn min_samples(q: f64, confidence: f64) -> u64 {
    if q.is_nan() || confidence.is_nan() {
        return u64::MAX;
    }
    if upper_bound_rank(1, q, confidence).is_some() {
        return 1;
    }
    if q <= 0.0 || q >= 1.0 || confidence <= 0.0 || confidence >= 1.0 {
        return u64::MAX;
    }
    let estimate = ((1.0 - confidence).ln() / q.ln()).ceil();
    let mut n = to_u64(estimate).max(2);
    // Existence is monotone in n; the estimate is off by at most a rounding step or two.
    let exists = |n: u64| upper_bound_rank(n, q, confidence).is_some();
    let mut steps = 0;
    while n > 2 && exists(n - 1) && steps < 64 {
        n -= 1;
        steps += 1;
    }
    while !exists(n) && n < u64::MAX && steps < 128 {
        n += 1;
        steps += 1;
    }
    if exists(n) {
        n
    } else {
        u64::MAX
    }
}

/// pmf(j + 1) / pmf(j) for Binomial(n, q), with `odds = q / (1 - q)`. Differences are taken in
/// integers so they stay exact even where `n` itself does not fit an f64 mantissa.
fn up_ratio(n: u64, j: u64, odds: f64) -> f64 {
    (n - j) as f64 / (j + 1) as f64 * odds
}

/// pmf(j - 1) / pmf(j) for Binomial(n, q); `j >= 1`.
fn down_ratio(n: u64, j: u64, odds: f64) -> f64 {
    j as f64 / (n - j + 1) as f64 / odds
}

/// Saturating, NaN-safe float to u64 (negative and NaN become 0).
fn to_u64(x: f64) -> u64 {
    // `as` saturates at the bounds and maps NaN to 0, which is exactly what is wanted here.
    x as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::distribution::{Binomial, DiscreteCDF};

    /// Reference: exact pmf terms in log space, upper tail summed from the top.
    fn brute_force_rank(n: u64, q: f64, confidence: f64) -> Option<u64> {
        let ln_pmf = |j: u64| {
            statrs::function::factorial::ln_binomial(n, j)
                + j as f64 * q.ln()
                + (n - j) as f64 * (1.0 - q).ln()
        };
        let mut tail = 0.0;
        // tail(k) = P(X >= k); the smallest k with tail(k) <= 1 - confidence.
        let mut answer = None;
        for k in (1..=n).rev() {
            tail += ln_pmf(k).exp();
            if tail <= 1.0 - confidence {
                answer = Some(k);
            } else {
                break;
            }
        }
        answer
    }

    #[test]
    fn mlperf_p99_at_99_percent_needs_459_samples() {
        assert_eq!(upper_bound_rank(459, 0.99, 0.99), Some(459));
        assert_eq!(upper_bound_rank(458, 0.99, 0.99), None);
        assert_eq!(min_samples(0.99, 0.99), 459);
    }

    #[test]
    fn min_samples_matches_closed_form() {
        for &(q, c) in &[
            (0.9, 0.9),
            (0.95, 0.99),
            (0.99, 0.95),
            (0.999, 0.99),
            (0.5, 0.5),
        ] {
            let n = min_samples(q, c);
            let closed: f64 = (1.0f64 - c).ln() / q.ln();
            assert_eq!(n, closed.ceil() as u64, "q={q} c={c}");
            assert!(upper_bound_rank(n, q, c).is_some());
            assert!(upper_bound_rank(n - 1, q, c).is_none());
        }
        assert_eq!(min_samples(0.0, 0.99), 1);
        assert_eq!(min_samples(0.99, 0.0), 1);
        assert_eq!(min_samples(1.0, 0.99), u64::MAX);
        assert_eq!(min_samples(0.99, 1.0), u64::MAX);
        assert_eq!(min_samples(f64::NAN, 0.99), u64::MAX);
    }

    #[test]
    fn matches_brute_force_for_small_n() {
        for n in [1u64, 2, 3, 5, 10, 37, 100, 250, 459, 1000] {
            for &q in &[0.1, 0.5, 0.9, 0.95, 0.99] {
                for &c in &[0.6, 0.9, 0.95, 0.99] {
                    assert_eq!(
                        upper_bound_rank(n, q, c),
                        brute_force_rank(n, q, c),
                        "n={n} q={q} c={c}"
                    );
                }
            }
        }
    }

    #[test]
    fn agrees_with_statrs_cdf_where_that_is_accurate() {
        // For moderate n statrs' CDF is fine: k must satisfy the definition exactly.
        for &(n, q, c) in &[(1000u64, 0.99, 0.99), (5000, 0.9, 0.95), (2000, 0.5, 0.9)] {
            let k = upper_bound_rank(n, q, c).unwrap();
            let bin = Binomial::new(q, n).unwrap();
            assert!(bin.cdf(k - 1) >= c, "n={n} q={q} c={c} k={k}");
            assert!(bin.cdf(k - 2) < c, "n={n} q={q} c={c} k={k}");
        }
    }

    #[test]
    fn large_n_is_fast_and_near_the_normal_approximation() {
        let started = std::time::Instant::now();
        for &(n, q) in &[(10_000_000u64, 0.99), (10_000_000, 0.5), (1_000_000, 0.999)] {
            let k = upper_bound_rank(n, q, 0.99).unwrap();
            let nf = n as f64;
            let sd = (nf * q * (1.0 - q)).sqrt();
            // z_{0.99} = 2.326; skew and the discrete +1 move it by a few units only.
            let approx = nf * q + 2.326 * sd + 1.0;
            assert!(
                (k as f64 - approx).abs() < 0.05 * sd + 3.0,
                "n={n} q={q}: {k} vs {approx}"
            );
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn large_n_path_is_conservative_and_tight() {
        // Just above the switch-over both methods are feasible; the approximation must never
        // give a smaller (optimistic) rank, and may only overshoot by a small fraction of sigma.
        for &(n, q, c) in &[
            (20_000_000_000u64, 0.5, 0.99),
            (500_000_000_000, 0.99, 0.95),
        ] {
            let var = n as f64 * q * (1.0 - q);
            assert!(var > LARGE_VARIANCE);
            let exact = exact_rank(n, q, 1.0 - c).unwrap();
            let approx = upper_bound_rank(n, q, c).unwrap();
            assert!(approx >= exact, "n={n} q={q}: {approx} < {exact}");
            assert!(
                ((approx - exact) as f64) < 1e-3 * var.sqrt() + 2.0,
                "{approx} vs {exact}"
            );
        }
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(upper_bound_rank(0, 0.99, 0.99), None);
        assert_eq!(upper_bound_rank(10, f64::NAN, 0.99), None);
        assert_eq!(upper_bound_rank(10, 0.99, f64::NAN), None);
        assert_eq!(upper_bound_rank(10, 1.0, 0.5), None);
        assert_eq!(upper_bound_rank(10, 0.5, 1.0), None);
        assert_eq!(upper_bound_rank(10, 0.0, 0.99), Some(1));
        assert_eq!(upper_bound_rank(10, -1.0, 0.99), Some(1));
        assert_eq!(upper_bound_rank(10, 0.5, 0.0), Some(1));
        assert_eq!(upper_bound_rank(10, 0.5, 2.0), None);
        assert_eq!(
            upper_bound_rank(u64::MAX, 0.5, 0.99).map(|k| k > 0),
            Some(true)
        );
        assert!(upper_bound_rank(u64::MAX, 1e-300, 0.99).is_some());
        // n (1 - q) = 0.0011 expected misses: 1 - q^n is far below 0.99, no bound exists.
        assert_eq!(upper_bound_rank(1 << 40, 1.0 - 1e-15, 0.99), None);
        // n - X ~ Poisson(1153), whose 1 % quantile is about 1074 (1153 - 2.33 * 34).
        let n = 1u64 << 60;
        let k = upper_bound_rank(n, 1.0 - 1e-15, 0.99).unwrap();
        assert!((n - 1100..=n - 1050).contains(&k), "{}", n - k);
    }
}
