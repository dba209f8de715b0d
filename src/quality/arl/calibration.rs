//! `inferwatch spc calibrate`: the limit that gives a chosen in-control ARL, by bisection on the
//! exact values.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use super::markov::exact;
use super::Spec;

/// Which limit `calibrate` searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Shewhart,
    We,
    Ewma { exact: bool },
    Cusum,
}

/// The setting `calibrate` found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Calibrated {
    pub spec: Spec,
    /// The limit found: L (Shewhart, WE, EWMA) or h (CUSUM).
    pub limit: f64,
    pub exact_arl0: f64,
}

/// Find the limit that gives an in-control ARL of `target` for `family` with shape `shape`
/// (λ for EWMA, k for CUSUM; ignored otherwise), by bisection on the exact ARL0 (which rises
/// monotonically with the limit).
pub fn calibrate(family: Family, shape: f64, target: f64) -> Result<Calibrated, String> {
    if !(target.is_finite() && target > 1.0) {
        return Err(format!(
            "--target must be a finite number > 1, got {target}"
        ));
    }
    let make = |limit: f64| match family {
        Family::Shewhart => Spec::Shewhart { limit },
        Family::We => Spec::We { limit },
        Family::Ewma { exact } => Spec::Ewma {
            lambda: shape,
            limit,
            exact,
        },
        Family::Cusum => Spec::Cusum { k: shape, h: limit },
    };
    make(3.0).validate()?;
    let arl0 = |limit: f64| exact(&make(limit), 0.0).map_or(f64::NAN, |e| e.arl);
    if family == Family::Shewhart {
        // Closed form: 2Φ(−L) = 1/ARL0.
        let limit = -Normal::new(0.0, 1.0)
            .expect("standard normal")
            .inverse_cdf(0.5 / target);
        return Ok(Calibrated {
            spec: make(limit),
            limit,
            exact_arl0: arl0(limit),
        });
    }
    let (mut lo, mut hi) = match family {
        Family::We => (2.0 + 1e-9, 8.0),
        _ => (0.05, 8.0),
    };
    if arl0(lo) > target {
        return Err(format!(
            "no limit gives ARL0 {target}: even the smallest ({lo:.3}) gives {:.1}",
            arl0(lo)
        ));
    }
    while arl0(hi) < target {
        hi *= 1.5;
        if hi > 100.0 {
            return Err(format!("no limit up to 100 gives ARL0 {target}"));
        }
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if arl0(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-7 {
            break;
        }
    }
    let limit = 0.5 * (lo + hi);
    Ok(Calibrated {
        spec: make(limit),
        limit,
        exact_arl0: arl0(limit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shewhart_calibration_is_the_normal_quantile() {
        let c = calibrate(Family::Shewhart, 0.0, 370.398).unwrap();
        assert!((c.limit - 3.0).abs() < 1e-4, "{}", c.limit);
    }
}
