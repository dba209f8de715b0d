//! Prometheus histograms as the capacity report reads them: `histogram_quantile`, and bucket
//! rates pooled over several steps or replicas (the quantile of the pooled histogram, not an
//! average of quantiles).

use std::collections::BTreeMap;

/// Prometheus' `histogram_quantile` on (upper bound, cumulative count) pairs: linear
/// interpolation inside the bucket holding the rank; a rank in the `+Inf` bucket returns the
/// highest finite bound.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = b.last().filter(|l| l.0.is_infinite())?.1;
    if total.is_nan() || total <= 0.0 || b.len() < 2 {
        return None;
    }
    let rank = q * total;
    let mut prev_le = 0.0;
    let mut prev_cum = 0.0;
    for &(le, cum) in &b {
        if cum >= rank {
            if le.is_infinite() {
                return Some(prev_le);
            }
            if cum == prev_cum {
                return Some(le);
            }
            return Some(prev_le + (le - prev_le) * (rank - prev_cum) / (cum - prev_cum));
        }
        prev_le = le;
        prev_cum = cum;
    }
    Some(prev_le)
}

/// Add bucket rates of several steps (same bucket bounds).
pub fn pool<'a>(hs: impl Iterator<Item = &'a Vec<(f64, f64)>>) -> Vec<(f64, f64)> {
    let mut acc: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for h in hs {
        for &(le, v) in h {
            // Bucket bounds are exact decimal strings; key on a fixed-point form to merge them.
            let k = if le.is_infinite() {
                i64::MAX
            } else {
                (le * 1e9).round() as i64
            };
            let e = acc.entry(k).or_insert((le, 0.0));
            e.1 += v;
        }
    }
    acc.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_like_prometheus() {
        // 100 observations: 50 <= 0.1, 90 <= 0.2, 100 <= 0.4.
        let b = [
            (0.1, 50.0),
            (0.2, 90.0),
            (0.4, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!((histogram_quantile(0.5, &b).unwrap() - 0.1).abs() < 1e-12);
        assert!((histogram_quantile(0.7, &b).unwrap() - 0.15).abs() < 1e-12);
        assert!((histogram_quantile(0.99, &b).unwrap() - 0.38).abs() < 1e-12);
        let over = [(0.1, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.99, &over), Some(0.1));
        assert_eq!(histogram_quantile(0.5, &[(f64::INFINITY, 0.0)]), None);
    }
}
