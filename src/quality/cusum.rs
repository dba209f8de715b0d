//! Two-sided tabular CUSUM (Page 1954) on standardized subgroup statistics, reference value k and
//! decision interval h in σ units.
//!
//! `C⁺_t = max(0, x_t − k + C⁺_{t−1})`, `C⁻_t = max(0, −x_t − k + C⁻_{t−1})`, signal when either
//! exceeds h (Montgomery §9.1). Published two-sided ARLs (Lucas & Crosier 1982, Technometrics
//! 24(3); Montgomery Table 9.3): k = 0.5, h = 4 → ARL0 168, 1σ shift 8.38; h = 5 → 465 and 10.4.
//!
//! The exported statistic is the larger side, signed: `C⁺` if `C⁺ ≥ C⁻`, else `−C⁻`, against
//! limits ±h and centre 0.

use super::{Chart, Point, Rule, Rules};

#[derive(Debug, Clone)]
pub struct Cusum {
    k: f64,
    h: f64,
    upper: f64,
    lower: f64,
}

impl Cusum {
    pub fn new(k: f64, h: f64) -> Self {
        Self {
            k,
            h,
            upper: 0.0,
            lower: 0.0,
        }
    }

    pub fn k(&self) -> f64 {
        self.k
    }

    pub fn h(&self) -> f64 {
        self.h
    }
}

impl Chart for Cusum {
    fn observe(&mut self, x: f64) -> Point {
        self.upper = (self.upper + x - self.k).max(0.0);
        self.lower = (self.lower - x - self.k).max(0.0);
        let mut fired = Rules::NONE;
        // NaN fails `max(0.0)` into 0, so a NaN input counts as a signal explicitly.
        if self.upper > self.h || x.is_nan() {
            fired = fired.with(Rule::CusumUpper);
        }
        if self.lower > self.h {
            fired = fired.with(Rule::CusumLower);
        }
        let statistic = if self.upper >= self.lower {
            self.upper
        } else {
            -self.lower
        };
        if fired.any() {
            self.reset();
        }
        Point {
            statistic,
            center: 0.0,
            upper: self.h,
            lower: -self.h,
            fired,
        }
    }

    fn reset(&mut self) {
        self.upper = 0.0;
        self.lower = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_accumulate_and_signal_by_side() {
        let mut c = Cusum::new(0.5, 4.0);
        // +1.5 each: C⁺ grows by 1 per point and passes 4 at the fifth.
        for i in 1..=4 {
            let p = c.observe(1.5);
            assert!((p.statistic - i as f64).abs() < 1e-12);
            assert!(!p.fired.any());
        }
        let p = c.observe(1.5);
        assert_eq!(p.fired, Rules::NONE.with(Rule::CusumUpper));
        assert_eq!(c.observe(0.0).statistic, 0.0, "restarted after the signal");
        for _ in 0..4 {
            assert!(!c.observe(-1.5).fired.any());
        }
        let p = c.observe(-1.5);
        assert_eq!(p.fired, Rules::NONE.with(Rule::CusumLower));
        assert!((p.statistic + 5.0).abs() < 1e-12);
    }
}
