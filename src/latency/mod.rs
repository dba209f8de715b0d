//! Latency statistics: sliding-window quantile sketches and distribution-free confidence upper
//! bounds on their quantiles.
//!
//! A [`WindowedSketch`] is fed one latency per request and asked, at scrape time, for a
//! [`Snapshot`] of the last N seconds. Besides the plain (sketched) quantile, a snapshot gives an
//! upper bound that holds with a stated confidence for the service's true tail, the way MLPerf
//! LoadGen's early stopping does; [`upper_bound_rank`] and [`min_samples`] are the statistics
//! underneath, exposed so callers can say how many samples a bound needs.

mod bound;
pub mod config;
mod window;

pub use bound::{min_samples, upper_bound_rank};
pub use window::{Snapshot, WindowedSketch};
