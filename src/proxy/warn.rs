//! Rate-limited warnings for the live path: under overload or an upstream outage every request
//! fails the same way, and a WARN line per request (2,184 lines for 2,184 shed requests in the
//! fault campaign) buries everything else while the counters already carry the detail.
//!
//! Per kind of failure, the first warning of each interval is logged in full; later ones in the
//! same interval are only counted (and logged at DEBUG), and the next line logged says how many
//! were held back (`suppressed`). Cost on a failing request: two relaxed atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::metrics::Outcome;

/// One summary line per kind per interval at most.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Throttle state per outcome.
pub struct Warnings {
    origin: Instant,
    /// Per outcome: when (ms since `origin`, plus one so 0 means never) the current interval
    /// began, and how many warnings it has held back.
    since: [AtomicU64; Outcome::ALL.len()],
    held: [AtomicU64; Outcome::ALL.len()],
}

impl Default for Warnings {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            since: std::array::from_fn(|_| AtomicU64::new(0)),
            held: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Warnings {
    /// Whether to log this warning now; `Some(n)`: yes, and `n` similar ones were held back
    /// since the last one logged. `None`: held back (counted).
    pub fn admit(&self, outcome: Outcome) -> Option<u64> {
        self.admit_at(outcome, self.origin.elapsed())
    }

    /// [`Self::admit`] at `elapsed` since this throttle was made.
    fn admit_at(&self, outcome: Outcome, elapsed: Duration) -> Option<u64> {
        let i = outcome.index();
        let now = elapsed.as_millis() as u64 + 1;
        let since = self.since[i].load(Ordering::Relaxed);
        if since != 0 && now - since < INTERVAL.as_millis() as u64 {
            self.held[i].fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // Several threads may see the interval over at once; one wins the swap and logs.
        if self.since[i]
            .compare_exchange(since, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.held[i].fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.held[i].swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_then_the_count_held_back() {
        let w = Warnings::default();
        let t = |s: f64| Duration::from_secs_f64(s);
        assert_eq!(w.admit_at(Outcome::Overloaded, t(0.0)), Some(0));
        for k in 0..2183 {
            assert_eq!(w.admit_at(Outcome::Overloaded, t(k as f64 * 0.004)), None);
        }
        // Another kind has its own interval.
        assert_eq!(w.admit_at(Outcome::UpstreamReset, t(5.0)), Some(0));
        // The next interval: logged, saying how many were held back.
        assert_eq!(w.admit_at(Outcome::Overloaded, t(10.0)), Some(2183));
        assert_eq!(w.admit_at(Outcome::Overloaded, t(10.5)), None);
        assert_eq!(w.admit_at(Outcome::Overloaded, t(60.0)), Some(1));
    }
}
