//! Rational subgroups for continuous signals: observations are pooled into a subgroup that closes
//! after `size` observations or at the end of an interval, whichever comes first; the chart plots
//! the subgroup mean, standardized with σ/√n for the n it actually has.

/// One closed subgroup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Closed {
    pub mean: f64,
    pub n: u64,
    /// Sample standard deviation within the subgroup (n − 1 divisor); `None` for n = 1.
    pub sd: Option<f64>,
}

/// Welford accumulation (stable for large, close values such as latencies in seconds).
#[derive(Debug, Clone, Default)]
pub struct Subgrouper {
    /// Observations per subgroup; 0 = by interval only.
    size: u64,
    n: u64,
    mean: f64,
    m2: f64,
}

impl Subgrouper {
    pub fn new(size: u64) -> Self {
        Self {
            size,
            ..Self::default()
        }
    }

    /// Add one observation; returns the subgroup it completes, if any. Non-finite values are
    /// ignored (a NaN confidence says nothing about the model's quality).
    pub fn push(&mut self, x: f64) -> Option<Closed> {
        if !x.is_finite() {
            return None;
        }
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        (self.size > 0 && self.n >= self.size).then(|| self.close())
    }

    /// Close the current subgroup at an interval boundary (`None` if it is empty).
    pub fn flush(&mut self) -> Option<Closed> {
        (self.n > 0).then(|| self.close())
    }

    fn close(&mut self) -> Closed {
        let n = self.n;
        let sd = (n >= 2).then(|| (self.m2 / (n - 1) as f64).sqrt());
        let closed = Closed {
            mean: self.mean,
            n,
            sd,
        };
        self.n = 0;
        self.mean = 0.0;
        self.m2 = 0.0;
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_by_count_and_by_flush() {
        let mut g = Subgrouper::new(3);
        assert!(g.push(1.0).is_none());
        assert!(g.push(f64::NAN).is_none());
        assert!(g.push(2.0).is_none());
        let c = g.push(6.0).unwrap();
        assert_eq!(c.n, 3);
        assert!((c.mean - 3.0).abs() < 1e-12);
        assert!((c.sd.unwrap() - 7f64.sqrt()).abs() < 1e-12);
        assert!(g.flush().is_none());
        g.push(5.0);
        assert_eq!(
            g.flush(),
            Some(Closed {
                mean: 5.0,
                n: 1,
                sd: None
            })
        );
        let mut by_time = Subgrouper::new(0);
        for i in 0..100 {
            assert!(by_time.push(i as f64).is_none());
        }
        assert_eq!(by_time.flush().unwrap().n, 100);
    }
}
