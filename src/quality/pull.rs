//! The pull signals: `request_error:<route>` and `latency_p99:<route>`, sampled once per
//! subgroup interval from the route table through [`RouteFigures`] (the live path's existing
//! counters and sketches, so it does no extra work for them).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::figures::RouteFigures;
use super::QualityError;

/// One pull signal of one chart.
pub(super) enum Pull {
    /// `request_error:<route>`: deltas of the route's (total, failed) counters per interval.
    RequestError {
        figures: Arc<dyn RouteFigures>,
        route: String,
        last: (u64, u64),
    },
    /// `latency_p99:<route>`: the route sketch's p99 over the last interval.
    LatencyP99 {
        figures: Arc<dyn RouteFigures>,
        route: String,
    },
}

/// What one interval's sample came to.
pub(super) enum Sample {
    /// Failed of `n` requests (a p-chart's subgroup; `n` may be 0).
    Fraction { bad: u64, n: u64 },
    /// One value (a continuous chart's subgroup of one).
    Value(f64),
}

/// The route's totals now; a pull signal's route must exist.
fn totals(figures: &dyn RouteFigures, route: &str) -> Result<(u64, u64), QualityError> {
    figures
        .totals(route)
        .ok_or_else(|| QualityError::Invalid(format!("no route named {route:?}")))
}

impl Pull {
    /// `request_error:<route>`; the totals now are the first interval's start.
    pub(super) fn request_error(
        figures: &Arc<dyn RouteFigures>,
        route: &str,
    ) -> Result<Self, QualityError> {
        Ok(Pull::RequestError {
            last: totals(figures.as_ref(), route)?,
            figures: figures.clone(),
            route: route.to_string(),
        })
    }

    /// `latency_p99:<route>`.
    pub(super) fn latency_p99(
        figures: &Arc<dyn RouteFigures>,
        route: &str,
    ) -> Result<Self, QualityError> {
        totals(figures.as_ref(), route)?;
        Ok(Pull::LatencyP99 {
            figures: figures.clone(),
            route: route.to_string(),
        })
    }

    /// The interval of length `interval` ending at `now`; `None` when there is no value (an
    /// empty latency window).
    pub(super) fn sample(&mut self, interval: Duration, now: Instant) -> Option<Sample> {
        match self {
            Pull::RequestError {
                figures,
                route,
                last,
            } => {
                let (total, failed) = figures.totals(route).unwrap_or(*last);
                let n = total.saturating_sub(last.0);
                let bad = failed.saturating_sub(last.1);
                *last = (total, failed);
                Some(Sample::Fraction { bad, n })
            }
            Pull::LatencyP99 { figures, route } => {
                figures.p99(route, interval, now).map(Sample::Value)
            }
        }
    }
}
