//! Sliding-window latency quantiles: a ring of DDSketch slots behind one mutex.
//!
//! Time is cut into slots of fixed length counted from a start instant; slot number `e` holds
//! the samples recorded in `[start + e*slot, start + (e+1)*slot)` and lives at ring index
//! `e % len`. Rotation is lazy: a slot found holding an older slot number is cleared on its
//! first use, so nothing needs a timer task, and a snapshot simply ignores slots whose number is
//! outside the window it asks for.
//!
//! # Window coverage
//!
//! At `now`, in slot `e`, `snapshot(window, now)` merges slots `e-m+1 ..= e`, where
//! `m = ceil(window / slot)` clamped to `1 ..= ceil(max_window / slot)`. That is the current,
//! partially filled slot plus the `m - 1` full slots before it, so the history covered is
//! `(m-1)*slot + phase` with `phase = (now - start) mod slot` in `[0, slot)`. For a window that
//! is a multiple of the slot this means: every sample younger than `window - slot` is in,
//! no sample aged `window` or more is in, and those in between are in or out by the phase.
//! The window never reaches further back than asked, at the price of up to one slot less.

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use sketches_ddsketch::{Config, DDSketch};
use tokio::time::Instant;

use super::bound::upper_bound_rank;

/// Values at or below this (1 µs) share the sketch's zero bucket: they read back as 0.0, and an
/// upper bound that lands on them reports this value instead, so it still bounds them.
const MIN_TRACKED_SECS: f64 = 1e-6;

/// Bins are provisioned so that everything from [`MIN_TRACKED_SECS`] to one day keeps the
/// stated relative accuracy. Bins are only allocated over the range actually seen, so a
/// generous limit costs nothing; beyond it the lowest bins are merged upwards, which can only
/// make low quantiles read high, never make an upper bound optimistic.
const MAX_TRACKED_SECS: f64 = 86_400.0;

/// At least this many bins whatever the accuracy (as suggested by the DDSketch defaults).
const MIN_BINS: u32 = 4096;

/// Accepted relative accuracy range; outside it (or NaN) the value is clamped (NaN: default).
/// Far below 1e-4 the key space (and bin count) explodes; at or above 1 the sketch is
/// meaningless.
const MIN_ACCURACY: f64 = 1e-4;
const MAX_ACCURACY: f64 = 0.5;
const DEFAULT_ACCURACY: f64 = 0.01;

/// Upper bound on ring length. If `max_window / slot` asks for more, the slot is widened
/// instead, so that the longest window is still served (at a coarser granularity).
const MAX_SLOTS: u128 = 4096;

/// Relative guard against float rounding when a value is keyed near a bucket edge; far below
/// any accuracy that matters, but it keeps the "never optimistic" promise literal.
const ROUNDING_GUARD: f64 = 1e-12;

/// One ring entry: the slot number it currently holds (`None`: never used) and its samples.
struct Slot {
    epoch: Option<u64>,
    sketch: DDSketch,
}

/// Thread-safe sliding-window quantile sketch for latencies in seconds.
pub struct WindowedSketch {
    config: Config,
    relative_accuracy: f64,
    start: Instant,
    slot_nanos: u128,
    /// The most slots one snapshot merges: `ceil(max_window / slot)`.
    window_slots: u128,
    ring: Mutex<Vec<Slot>>,
}

impl WindowedSketch {
    /// `slot`: granularity of rotation. `max_window`: the longest window that will be asked
    /// for; the ring holds `ceil(max_window / slot) + 1` slots (at most 4096: beyond that the
    /// slot is widened so `max_window` stays reachable). `relative_accuracy`: the sketch's
    /// alpha, e.g. 0.01, clamped to `[1e-4, 0.5]` (NaN means 0.01). `start`: the origin of slot
    /// numbering. A zero `slot` is treated as one nanosecond and a `max_window` shorter than a
    /// slot as one slot.
    pub fn new(
        slot: Duration,
        max_window: Duration,
        relative_accuracy: f64,
        start: Instant,
    ) -> Self {
        let relative_accuracy = if relative_accuracy.is_nan() {
            DEFAULT_ACCURACY
        } else {
            relative_accuracy.clamp(MIN_ACCURACY, MAX_ACCURACY)
        };
        let mut slot_nanos = slot.as_nanos().max(1);
        let max_window_nanos = max_window.as_nanos();
        let mut window_slots = max_window_nanos.div_ceil(slot_nanos).max(1);
        if window_slots > MAX_SLOTS - 1 {
            slot_nanos = max_window_nanos.div_ceil(MAX_SLOTS - 1);
            window_slots = max_window_nanos.div_ceil(slot_nanos).max(1);
        }
        let config = Config::new(
            relative_accuracy,
            bins_for(relative_accuracy),
            MIN_TRACKED_SECS,
        );
        // `window_slots <= MAX_SLOTS - 1` here, so the ring length fits comfortably in usize.
        let len = window_slots as usize + 1;
        let ring = (0..len)
            .map(|_| Slot {
                epoch: None,
                sketch: DDSketch::new(config),
            })
            .collect();
        WindowedSketch {
            config,
            relative_accuracy,
            start,
            slot_nanos,
            window_slots,
            ring: Mutex::new(ring),
        }
    }

    /// Record one latency in seconds at `now`. Negative, NaN and infinite values are ignored,
    /// as is a sample so late that its slot has already been reused for a newer one (it is
    /// older than any window this ring can serve).
    pub fn record(&self, value_secs: f64, now: Instant) {
        // NaN fails `is_finite`; infinities would overflow the sketch's integer keys.
        if !value_secs.is_finite() || value_secs < 0.0 {
            return;
        }
        let epoch = self.epoch(now);
        let mut ring = self.lock();
        let len = ring.len() as u64;
        let Some(slot) = ring.get_mut((epoch % len) as usize) else {
            return;
        };
        match slot.epoch {
            Some(held) if held == epoch => {}
            Some(held) if held > epoch => return,
            _ => {
                // Stale or unused: this is the lazy rotation.
                slot.epoch = Some(epoch);
                slot.sketch = DDSketch::new(self.config);
            }
        }
        slot.sketch.add(value_secs);
    }

    /// Merge the slots covering the last `window` before `now` (see the module docs for the
    /// exact coverage: the current slot plus `ceil(window / slot) - 1` full ones, capped at
    /// `max_window`; a zero window gives the current slot only).
    pub fn snapshot(&self, window: Duration, now: Instant) -> Snapshot {
        let current = self.epoch(now);
        let wanted = window
            .as_nanos()
            .div_ceil(self.slot_nanos)
            .clamp(1, self.window_slots);
        // `wanted <= window_slots < MAX_SLOTS`, so this fits in u64.
        let oldest = current.saturating_sub(wanted as u64 - 1);
        let ring = self.lock();
        let mut merged: Option<DDSketch> = None;
        for slot in ring.iter() {
            let in_window = matches!(slot.epoch, Some(e) if e >= oldest && e <= current);
            if !in_window || slot.sketch.count() == 0 {
                continue;
            }
            match merged.as_mut() {
                None => merged = Some(slot.sketch.clone()),
                Some(m) => {
                    // Merging only fails on differing configs, and every slot shares one.
                    if m.merge(&slot.sketch).is_err() {
                        continue;
                    }
                }
            }
        }
        Snapshot {
            sketch: merged,
            relative_accuracy: self.relative_accuracy,
        }
    }

    /// The relative accuracy in effect (after clamping).
    pub fn relative_accuracy(&self) -> f64 {
        self.relative_accuracy
    }

    /// The slot length in effect (after any widening to fit the ring cap).
    pub fn slot(&self) -> Duration {
        duration_from_nanos(self.slot_nanos)
    }

    /// The longest window a snapshot can cover: `ceil(max_window / slot)` slots.
    pub fn max_window(&self) -> Duration {
        duration_from_nanos(self.slot_nanos.saturating_mul(self.window_slots))
    }

    fn epoch(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        u64::try_from(elapsed / self.slot_nanos).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        // Nothing in the critical sections can panic, but if a poisoned lock ever appeared the
        // data would still be consistent (every update is a single add), so keep going.
        self.ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for WindowedSketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowedSketch")
            .field("slot", &self.slot())
            .field("max_window", &self.max_window())
            .field("relative_accuracy", &self.relative_accuracy)
            .finish_non_exhaustive()
    }
}

/// The merged samples of one window, detached from the ring (no lock held).
#[derive(Clone)]
pub struct Snapshot {
    /// `None` when the window held no samples.
    sketch: Option<DDSketch>,
    relative_accuracy: f64,
}

impl Snapshot {
    /// Number of samples in the window.
    pub fn count(&self) -> u64 {
        self.sketch.as_ref().map_or(0, |s| s.count() as u64)
    }

    /// Exact sum of the samples in the window (0.0 when empty), e.g. for a summary's `_sum`.
    pub fn sum(&self) -> f64 {
        self.sketch.as_ref().and_then(DDSketch::sum).unwrap_or(0.0)
    }

    /// The sketch's relative accuracy: quantiles are within this factor of a true sample.
    pub fn relative_accuracy(&self) -> f64 {
        self.relative_accuracy
    }

    /// The `q`-quantile of the samples in the window: the order statistic at 0-based rank
    /// `floor(q * (count - 1))`, within `relative_accuracy` of it (q = 0 and q = 1 give the
    /// exact minimum and maximum; samples of 1 µs or less read as 0.0). `None` when the window
    /// is empty or `q` is outside `[0, 1]` or NaN.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        self.sketch.as_ref()?.quantile(q).ok().flatten()
    }

    /// A `confidence` upper bound on the true `q`-quantile of the distribution the samples came
    /// from (MLPerf LoadGen early-stopping style): the `k`-th smallest sample, with `k` from
    /// [`upper_bound_rank`], read from the sketch and raised to the top edge of its bucket, so
    /// the sketch's error cannot make the bound optimistic. It is also capped at the exact
    /// sample maximum, which is never below the `k`-th sample. `None` when there are too few
    /// samples for this `q` and `confidence` (see [`super::min_samples`]) or the inputs are out
    /// of range.
    pub fn upper_bound(&self, q: f64, confidence: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let sketch = self.sketch.as_ref()?;
        let k = upper_bound_rank(self.count(), q, confidence)?;
        let read = self.order_statistic(k)?;
        let max = sketch.max()?;
        let bound = if read <= 0.0 {
            // The zero bucket holds everything up to the tracking floor.
            MIN_TRACKED_SECS
        } else {
            // Bucket values sit at (1 - alpha) times the bucket's upper edge.
            read / (1.0 - self.relative_accuracy) * (1.0 + ROUNDING_GUARD)
        };
        Some(bound.min(max))
    }

    /// The sketch's reading of the `k`-th smallest sample (1-based). The crate maps `q` to the
    /// 0-based rank `floor(q * (count - 1))`, so rank `k - 1` needs `q = (k - 1) / (n - 1)`; half
    /// a rank is added so float rounding cannot truncate to the rank below.
    fn order_statistic(&self, k: u64) -> Option<f64> {
        let sketch = self.sketch.as_ref()?;
        let n = self.count();
        if k == 0 || k > n {
            return None;
        }
        let q = if k == n {
            1.0
        } else {
            // Here n >= 2, since 1 <= k < n.
            (((k - 1) as f64 + 0.5) / (n - 1) as f64).min(1.0)
        };
        sketch.quantile(q).ok().flatten()
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("count", &self.count())
            .field("relative_accuracy", &self.relative_accuracy)
            .finish_non_exhaustive()
    }
}

/// Bin limit that keeps `MIN_TRACKED_SECS ..= MAX_TRACKED_SECS` at full accuracy.
fn bins_for(relative_accuracy: f64) -> u32 {
    let gamma_ln = (2.0 * relative_accuracy / (1.0 - relative_accuracy)).ln_1p();
    let needed = ((MAX_TRACKED_SECS / MIN_TRACKED_SECS).ln() / gamma_ln).ceil() + 2.0;
    // At the smallest accepted accuracy this is about 127k, well inside u32.
    (needed as u32).max(MIN_BINS)
}

fn duration_from_nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is below 1e9 and so fits a u32.
    Duration::new(secs, (nanos % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn ring(start: Instant) -> WindowedSketch {
        WindowedSketch::new(10 * SEC, 600 * SEC, 0.01, start)
    }

    fn at(start: Instant, secs: f64) -> Instant {
        start + Duration::from_secs_f64(secs)
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<WindowedSketch>();
        check::<Snapshot>();
    }

    #[test]
    fn empty_window_has_no_answers() {
        let start = Instant::now();
        let w = ring(start);
        let s = w.snapshot(60 * SEC, at(start, 30.0));
        assert_eq!(s.count(), 0);
        assert_eq!(s.sum(), 0.0);
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.upper_bound(0.5, 0.9), None);
    }

    #[test]
    fn invalid_values_are_ignored() {
        let start = Instant::now();
        let w = ring(start);
        for v in [f64::NAN, -1.0, -1e-9, f64::INFINITY, f64::NEG_INFINITY] {
            w.record(v, start);
        }
        assert_eq!(w.snapshot(60 * SEC, start).count(), 0);
        w.record(0.25, start);
        let s = w.snapshot(60 * SEC, start);
        assert_eq!(s.count(), 1);
        assert_eq!(s.quantile(f64::NAN), None);
        assert_eq!(s.quantile(1.5), None);
        assert_eq!(s.upper_bound(f64::NAN, 0.9), None);
        assert_eq!(s.upper_bound(0.5, f64::NAN), None);
    }

    #[test]
    fn samples_leave_the_window_as_documented() {
        let start = Instant::now();
        let w = ring(start);
        w.record(1.0, at(start, 5.0)); // slot 0
        w.record(2.0, at(start, 10.0)); // slot 1
        w.record(3.0, at(start, 19.9)); // slot 1
        w.record(4.0, at(start, 65.0)); // slot 6

        // 60 s window = 6 slots. At 65 s (slot 6): slots 1..=6.
        let s = w.snapshot(60 * SEC, at(start, 65.0));
        assert_eq!(s.count(), 3, "slot 0 (age 60 s) is out");
        // At 69.9 s still slot 6: the sample aged 59.9 s is in.
        assert_eq!(w.snapshot(60 * SEC, at(start, 69.9)).count(), 3);
        // At 70 s (slot 7): slot 1 leaves, including the sample aged only 50.1 s.
        let s = w.snapshot(60 * SEC, at(start, 70.0));
        assert_eq!(s.count(), 1);
        assert_eq!(s.quantile(0.5).map(|v| (v - 4.0).abs() < 0.04), Some(true));

        // The 600 s window from the same ring still has everything until slot 0 ages out.
        assert_eq!(w.snapshot(600 * SEC, at(start, 599.9)).count(), 4);
        assert_eq!(w.snapshot(600 * SEC, at(start, 600.0)).count(), 3);
        assert_eq!(w.snapshot(600 * SEC, at(start, 610.0)).count(), 1);
        assert_eq!(w.snapshot(600 * SEC, at(start, 670.0)).count(), 0);

        // Asking for more than max_window gets max_window.
        assert_eq!(w.snapshot(3600 * SEC, at(start, 600.0)).count(), 3);
        // A window shorter than a slot (or zero) is the current slot.
        assert_eq!(w.snapshot(Duration::ZERO, at(start, 19.0)).count(), 2);
        assert_eq!(w.snapshot(SEC, at(start, 19.0)).count(), 2);
        // A window that is not a multiple of the slot rounds up: 15 s -> 2 slots.
        assert_eq!(w.snapshot(15 * SEC, at(start, 19.0)).count(), 3);
    }

    #[test]
    fn reused_slots_are_cleared_and_late_samples_dropped() {
        let start = Instant::now();
        let w = WindowedSketch::new(SEC, 3 * SEC, 0.01, start); // 4 slots
        w.record(1.0, at(start, 0.5)); // slot 0 -> index 0
        w.record(2.0, at(start, 4.5)); // slot 4 -> index 0 again: clears slot 0
        assert_eq!(w.snapshot(3 * SEC, at(start, 4.5)).count(), 1);
        w.record(3.0, at(start, 0.7)); // late: index 0 now holds slot 4, dropped
        let s = w.snapshot(3 * SEC, at(start, 4.5));
        assert_eq!(s.count(), 1);
        assert_eq!(s.sum(), 2.0);
        // A snapshot taken "before" newer samples does not see them.
        assert_eq!(w.snapshot(3 * SEC, at(start, 3.5)).count(), 0);
        // Instants before the start count as slot 0.
        w.record(5.0, start.checked_sub(SEC).unwrap_or(start));
        assert_eq!(w.snapshot(3 * SEC, at(start, 4.5)).count(), 1);
    }

    #[test]
    fn ring_cap_widens_the_slot() {
        let start = Instant::now();
        let w = WindowedSketch::new(Duration::from_nanos(1), 600 * SEC, 0.01, start);
        assert!(w.max_window() >= 600 * SEC);
        assert!(w.slot() > Duration::from_millis(100));
        w.record(1.0, start);
        assert_eq!(w.snapshot(600 * SEC, at(start, 599.0)).count(), 1);

        let w = WindowedSketch::new(Duration::ZERO, Duration::ZERO, f64::NAN, start);
        assert_eq!(w.relative_accuracy(), 0.01);
        w.record(1.0, start);
        assert_eq!(w.snapshot(SEC, start).count(), 1);
        assert_eq!(
            WindowedSketch::new(SEC, SEC, 7.0, start).relative_accuracy(),
            0.5
        );
    }

    #[test]
    fn order_statistic_reads_the_kth_sample() {
        // Check the q' = (k - 1 + 0.5) / (n - 1) mapping against every rank of small sets.
        let start = Instant::now();
        for n in 1..=60u64 {
            let w = ring(start);
            // Distinct values two buckets apart so each rank is identifiable.
            let values: Vec<f64> = (0..n).map(|i| 0.001 * 1.05f64.powi(i as i32)).collect();
            for &v in values.iter().rev() {
                w.record(v, start);
            }
            let s = w.snapshot(60 * SEC, start);
            for k in 1..=n {
                let read = s.order_statistic(k).unwrap();
                let want = values[(k - 1) as usize];
                assert!(
                    (read - want).abs() <= 0.01 * want,
                    "n={n} k={k} {read} vs {want}"
                );
            }
            assert_eq!(s.order_statistic(0), None);
            assert_eq!(s.order_statistic(n + 1), None);
        }
    }

    #[test]
    fn upper_bound_is_never_below_the_kth_sample() {
        let start = Instant::now();
        let w = ring(start);
        // Values spread over many buckets, including exact bucket-edge-ish powers.
        let values: Vec<f64> = (0..1000)
            .map(|i| 0.0005 * 1.0201f64.powi(i % 500))
            .collect();
        for &v in &values {
            w.record(v, start);
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let s = w.snapshot(60 * SEC, start);
        for &(q, c) in &[(0.5, 0.9), (0.9, 0.95), (0.99, 0.99), (0.1, 0.5)] {
            let k = upper_bound_rank(1000, q, c).unwrap();
            let bound = s.upper_bound(q, c).unwrap();
            let kth = sorted[(k - 1) as usize];
            assert!(bound >= kth, "q={q} c={c}: {bound} < {kth}");
            assert!(
                bound <= kth * 1.0203,
                "q={q} c={c}: {bound} too loose vs {kth}"
            );
        }
        // 459 samples is exactly enough for p99 at 99 %: the bound is then the exact maximum.
        let w = ring(start);
        for i in 0..459 {
            w.record(0.01 + i as f64 * 1e-4, start);
        }
        let s = w.snapshot(60 * SEC, start);
        assert_eq!(s.upper_bound(0.99, 0.99), Some(0.01 + 458.0 * 1e-4));
        w.record(0.5, at(start, 100.0));
        assert_eq!(
            w.snapshot(60 * SEC, at(start, 100.0))
                .upper_bound(0.99, 0.99),
            None
        );
    }

    #[test]
    fn tiny_values_bound_at_the_tracking_floor() {
        let start = Instant::now();
        let w = ring(start);
        for _ in 0..100 {
            w.record(0.0, start);
        }
        w.record(5e-7, start);
        let s = w.snapshot(60 * SEC, start);
        assert_eq!(s.quantile(0.5), Some(0.0));
        // The maximum (5e-7) caps the tracking floor.
        assert_eq!(s.upper_bound(0.5, 0.9), Some(5e-7));
    }

    #[test]
    fn concurrent_records_all_land() {
        let start = Instant::now();
        let w = ring(start);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let w = &w;
                scope.spawn(move || {
                    for i in 0..1000 {
                        w.record(0.001 * (1 + (i + t) % 100) as f64, at(start, 1.0));
                    }
                });
            }
        });
        assert_eq!(w.snapshot(60 * SEC, at(start, 1.0)).count(), 4000);
    }
}
