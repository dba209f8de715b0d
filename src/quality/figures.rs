//! What the quality engine reads of the route table: a narrow, read-only view, implemented at
//! the top (`app.rs`) over the proxy's routes, so the charts never see the live path's types.

use std::time::Duration;

use tokio::time::Instant;

/// The pull signals' sources: `request_error:<route>` and `latency_p99:<route>`.
pub trait RouteFigures: Send + Sync {
    /// Requests finished on `route` so far as `(total, failed)`, where failed means a 5xx
    /// answer or any outcome other than `ok`; `None` when no route has that name.
    fn totals(&self, route: &str) -> Option<(u64, u64)>;

    /// The route's p99 latency in seconds over the `window` ending at `now`; `None` while the
    /// window is empty or no route has that name.
    fn p99(&self, route: &str, window: Duration, now: Instant) -> Option<f64>;
}

/// A route table with no routes: for engines that chart only pushed signals (tests, tools).
pub struct NoRoutes;

impl RouteFigures for NoRoutes {
    fn totals(&self, _: &str) -> Option<(u64, u64)> {
        None
    }

    fn p99(&self, _: &str, _: Duration, _: Instant) -> Option<f64> {
        None
    }
}
