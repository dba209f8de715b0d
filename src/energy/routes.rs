//! What the energy sampler reads of the route table: a narrow, read-only view implemented at
//! the top (`app.rs`) over the proxy's routes, so energy attribution never sees the live path's
//! types.

/// One route's cumulative load at an instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RouteLoad {
    /// Completed, timed inferences so far.
    pub count: u64,
    /// Sum of their durations, in seconds.
    pub busy_secs: f64,
    /// Requests in flight at the instant.
    pub in_flight: i64,
}

/// The routes whose requests share the measured energy.
pub trait RouteLoads: Send + Sync {
    /// Every route's `(route, model)` label values, in a fixed order, the same on every call.
    fn labels(&self) -> Vec<(String, String)>;

    /// Every route's load now, in the order of [`RouteLoads::labels`]. Implementations read
    /// in-flight before the completed figures, so a request finishing between the two reads
    /// shows as both rather than neither (its energy would otherwise be taken for idle).
    fn loads(&self) -> Vec<RouteLoad>;
}
