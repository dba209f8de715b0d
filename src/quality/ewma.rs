//! EWMA chart (Roberts 1959) on standardized subgroup statistics, with the exact time-varying
//! control limits or the asymptotic ones.
//!
//! `z_t = λ x_t + (1 − λ) z_{t−1}`, `z_0 = 0`; in control `Var(z_t) = λ/(2−λ) · (1 − (1−λ)^{2t})`
//! (Montgomery §9.2). The exact limits `±L·sd(z_t)` are narrower for the first points, which
//! catches a process that starts out of control; the asymptotic ones are what the published
//! tables use (Lucas & Saccucci 1990, Technometrics 32(1), Table 3: e.g. λ = 0.10, L = 2.814 →
//! ARL0 ≈ 500, ARL at a 1σ shift ≈ 10.3).

use super::{Chart, Point, Rule, Rules};

#[derive(Debug, Clone)]
pub struct Ewma {
    lambda: f64,
    limit: f64,
    exact: bool,
    z: f64,
    /// `(1 − λ)^{2t}` for the current t, kept as a running product (no `powi` per point).
    decay: f64,
    asymptotic_sd: f64,
}

impl Ewma {
    /// `lambda` in (0, 1]; `limit` = L; `exact`: time-varying limits (true) or asymptotic.
    pub fn new(lambda: f64, limit: f64, exact: bool) -> Self {
        Self {
            lambda,
            limit,
            exact,
            z: 0.0,
            decay: 1.0,
            asymptotic_sd: (lambda / (2.0 - lambda)).sqrt(),
        }
    }

    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    pub fn limit(&self) -> f64 {
        self.limit
    }

    pub fn exact(&self) -> bool {
        self.exact
    }

    /// The control limit's half-width at the t-th point after a (re)start (t ≥ 1).
    pub fn half_width(lambda: f64, limit: f64, exact: bool, t: u32) -> f64 {
        let asym = lambda / (2.0 - lambda);
        let var = if exact {
            asym * (1.0 - (1.0 - lambda).powi(2 * t as i32))
        } else {
            asym
        };
        limit * var.sqrt()
    }
}

impl Chart for Ewma {
    fn observe(&mut self, x: f64) -> Point {
        let q = 1.0 - self.lambda;
        self.z = self.lambda * x + q * self.z;
        let sd = if self.exact {
            self.decay *= q * q;
            self.asymptotic_sd * (1.0 - self.decay).sqrt()
        } else {
            self.asymptotic_sd
        };
        let h = self.limit * sd;
        let statistic = self.z;
        let fired = if statistic.abs() > h || statistic.is_nan() {
            Rules::NONE.with(Rule::Limit)
        } else {
            Rules::NONE
        };
        if fired.any() {
            self.reset();
        }
        Point {
            statistic,
            center: 0.0,
            upper: h,
            lower: -h,
            fired,
        }
    }

    fn reset(&mut self) {
        self.z = 0.0;
        self.decay = 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recursion_and_exact_limits() {
        let mut c = Ewma::new(0.2, 3.0, true);
        let p1 = c.observe(1.0);
        assert!((p1.statistic - 0.2).abs() < 1e-15);
        // t = 1: sd = λ (the first point is λ x_1).
        assert!((p1.upper - 3.0 * 0.2).abs() < 1e-12, "{}", p1.upper);
        let p2 = c.observe(1.0);
        assert!((p2.statistic - (0.2 + 0.8 * 0.2)).abs() < 1e-15);
        let want = Ewma::half_width(0.2, 3.0, true, 2);
        assert!((p2.upper - want).abs() < 1e-12);
        for _ in 0..200 {
            c.observe(0.0);
        }
        let far = c.observe(0.0);
        assert!((far.upper - 3.0 * (0.2f64 / 1.8).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn asymptotic_limits_are_constant_and_signal_restarts() {
        let mut c = Ewma::new(0.1, 2.7, false);
        let p = c.observe(0.0);
        assert!((p.upper - 2.7 * (0.1f64 / 1.9).sqrt()).abs() < 1e-12);
        let big = c.observe(100.0);
        assert!(big.fired.contains(Rule::Limit));
        // Restarted: the statistic is back at 0 for the next point.
        assert_eq!(c.observe(0.0).statistic, 0.0);
    }
}
