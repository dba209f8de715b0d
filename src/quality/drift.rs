//! Drift tests of a current window against a reference window: the population stability index
//! with fixed bins from the reference, the two-sample Kolmogorov–Smirnov test, and a chi-square
//! test of homogeneity for categorical signals (predicted classes).
//!
//! Definitions are pinned so they can be checked against scipy/numpy on identical data
//! (`tests/drift_scipy.rs`):
//! - PSI bins: the interior edges are the reference's quantiles at i/B, i = 1..B−1, numpy's
//!   default ("linear", Hyndman & Fan type 7), with repeated edges dropped (`np.unique`); a value
//!   goes to the bin `np.searchsorted(edges, x, side="right")`. `PSI = Σ (aᵢ − eᵢ)·ln(aᵢ/eᵢ)`
//!   over the proportions, a zero proportion replaced by [`PSI_EPSILON`] (evidently's convention).
//! - KS: `D = sup |F₁ − F₂|` exactly as `scipy.stats.ks_2samp`; the p-value is the asymptotic
//!   Kolmogorov distribution at `√(nm/(n+m))·D` (`scipy.stats.kstwobign.sf`), which statrs does
//!   not provide, so the series is summed here.
//! - Chi-square: the 2×K contingency test without continuity correction
//!   (`scipy.stats.chi2_contingency(..., correction=False)`), categories empty in both windows
//!   dropped; p-value from statrs' χ² distribution.
//!
//! Thresholds: under no drift, PSI·(1/N + 1/M)⁻¹ is approximately χ²(B−1) (the PSI is a
//! symmetrised KL divergence, asymptotically a Pearson statistic), so [`psi_threshold`] gives the
//! PSI a no-drift window exceeds with probability α, instead of the 0.1/0.25 rule of thumb, which
//! is far too strict for small windows and far too lax for large ones.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Stand-in for an empty bin's proportion (ln 0 is undefined); evidently uses the same.
pub const PSI_EPSILON: f64 = 1e-4;

/// Quantile of sorted data by linear interpolation between order statistics (numpy "linear").
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// The interior PSI bin edges of a reference sample: its quantiles at i/B, i = 1..B−1, deduplicated.
pub fn psi_edges(reference: &[f64], bins: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = reference.iter().copied().filter(|x| !x.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..bins)
        .map(|i| quantile_sorted(&sorted, i as f64 / bins as f64))
        .collect();
    edges.dedup();
    edges
}

/// Counts per bin: bin `j` holds the values with exactly `j` edges `<=` them (edges.len() + 1 bins).
pub fn bin_counts(edges: &[f64], data: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len() + 1];
    for &x in data {
        if x.is_nan() {
            continue;
        }
        counts[edges.partition_point(|&e| e <= x)] += 1;
    }
    counts
}

/// PSI between two binned samples (reference counts first).
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    let (nr, nc) = (
        reference.iter().sum::<u64>() as f64,
        current.iter().sum::<u64>() as f64,
    );
    if nr == 0.0 || nc == 0.0 {
        return f64::NAN;
    }
    reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let e = if r == 0 { PSI_EPSILON } else { r as f64 / nr };
            let a = if c == 0 { PSI_EPSILON } else { c as f64 / nc };
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// The PSI a window of `m` exceeds with probability `alpha` when nothing drifted from a reference
/// of `n`, with `bins` bins: `(1/n + 1/m) · χ²_{bins−1}(1 − α)`.
pub fn psi_threshold(n: usize, m: usize, bins: usize, alpha: f64) -> f64 {
    let Ok(chi) = ChiSquared::new((bins.max(2) - 1) as f64) else {
        return f64::NAN;
    };
    (1.0 / n as f64 + 1.0 / m as f64) * chi.inverse_cdf(1.0 - alpha)
}

/// A two-sample KS result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ks {
    pub statistic: f64,
    pub p_value: f64,
}

/// Two-sample Kolmogorov–Smirnov test (two-sided).
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> Ks {
    let mut a: Vec<f64> = a.iter().copied().filter(|x| !x.is_nan()).collect();
    let mut b: Vec<f64> = b.iter().copied().filter(|x| !x.is_nan()).collect();
    if a.is_empty() || b.is_empty() {
        return Ks {
            statistic: f64::NAN,
            p_value: f64::NAN,
        };
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (n, m) = (a.len(), b.len());
    let (mut i, mut j) = (0, 0);
    let mut d: f64 = 0.0;
    // Walk both sorted samples; at each distinct value step past all its ties in both.
    while i < n && j < m {
        let x = a[i].min(b[j]);
        while i < n && a[i] <= x {
            i += 1;
        }
        while j < m && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n as f64 - j as f64 / m as f64).abs());
    }
    let en = (n as f64 * m as f64) / (n + m) as f64;
    Ks {
        statistic: d,
        p_value: kolmogorov_sf(en.sqrt() * d),
    }
}

/// P(K > x) for the Kolmogorov distribution: `2 Σ (−1)^{k−1} e^{−2k²x²}` for larger x, the
/// Jacobi-theta form `1 − (√(2π)/x) Σ e^{−(2k−1)²π²/(8x²)}` for small x (both converge fast
/// where used).
pub fn kolmogorov_sf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x < 1.0 {
        let mut s = 0.0;
        for k in 1..=20 {
            let j = (2 * k - 1) as f64;
            s += (-j * j * std::f64::consts::PI.powi(2) / (8.0 * x * x)).exp();
        }
        (1.0 - (2.0 * std::f64::consts::PI).sqrt() / x * s).clamp(0.0, 1.0)
    } else {
        let mut s = 0.0;
        for k in 1..=100 {
            let kf = k as f64;
            let term = (-2.0 * kf * kf * x * x).exp();
            s += if k % 2 == 1 { term } else { -term };
            if term < 1e-300 {
                break;
            }
        }
        (2.0 * s).clamp(0.0, 1.0)
    }
}

/// A chi-square test result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquare {
    pub statistic: f64,
    pub dof: u64,
    pub p_value: f64,
}

/// Chi-square test of homogeneity between the class counts of two windows (2×K table).
pub fn chi_square(reference: &[u64], current: &[u64]) -> ChiSquare {
    let cols: Vec<(f64, f64)> = reference
        .iter()
        .zip(current)
        .filter(|(r, c)| **r + **c > 0)
        .map(|(&r, &c)| (r as f64, c as f64))
        .collect();
    let (nr, nc) = cols
        .iter()
        .fold((0.0, 0.0), |(a, b), (r, c)| (a + r, b + c));
    let total = nr + nc;
    if cols.len() < 2 || nr == 0.0 || nc == 0.0 {
        return ChiSquare {
            statistic: 0.0,
            dof: 0,
            p_value: 1.0,
        };
    }
    let mut stat = 0.0;
    for &(r, c) in &cols {
        let col = r + c;
        let er = nr * col / total;
        let ec = nc * col / total;
        stat += (r - er).powi(2) / er + (c - ec).powi(2) / ec;
    }
    let dof = (cols.len() - 1) as u64;
    let p_value = ChiSquared::new(dof as f64).map_or(f64::NAN, |d| d.sf(stat));
    ChiSquare {
        statistic: stat,
        dof,
        p_value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_like_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&s, 0.5), 2.5);
        assert_eq!(quantile_sorted(&s, 0.25), 1.75);
        assert_eq!(quantile_sorted(&s, 1.0), 4.0);
    }

    #[test]
    fn psi_of_identical_is_zero_and_edges_dedup() {
        let r: Vec<f64> = (0..100).map(f64::from).collect();
        let e = psi_edges(&r, 10);
        assert_eq!(e.len(), 9);
        let c = bin_counts(&e, &r);
        assert_eq!(c.iter().sum::<u64>(), 100);
        assert_eq!(psi(&c, &c), 0.0);
        assert_eq!(psi_edges(&[1.0; 50], 10), vec![1.0]);
    }

    #[test]
    fn ks_statistic_by_hand_and_kolmogorov_values() {
        let k = ks_two_sample(&[1.0, 2.0, 3.0], &[2.5, 3.5, 4.5, 5.5]);
        // After 3: F1 = 1, F2 = 1/4.
        assert!((k.statistic - 0.75).abs() < 1e-15);
        // Kolmogorov: P(K > 1.3581) ≈ 0.05; the two series agree near x = 1.
        assert!((kolmogorov_sf(1.358_099) - 0.05).abs() < 1e-5);
        let below = kolmogorov_sf(1.0 - 1e-12);
        let above = kolmogorov_sf(1.0);
        assert!((below - above).abs() < 1e-10, "{below} {above}");
    }

    #[test]
    fn chi_square_of_equal_proportions_is_zero() {
        let c = chi_square(&[10, 20, 30, 0], &[20, 40, 60, 0]);
        assert!(c.statistic.abs() < 1e-12);
        assert_eq!(c.dof, 2);
        assert!((c.p_value - 1.0).abs() < 1e-12);
    }

    #[test]
    fn psi_threshold_shrinks_with_window_size() {
        let small = psi_threshold(100, 100, 10, 0.01);
        let large = psi_threshold(10_000, 10_000, 10, 0.01);
        assert!(small > 0.4 && small < 0.5, "{small}");
        assert!(large < 0.01, "{large}");
    }
}
