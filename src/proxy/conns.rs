//! The cap on client connections (`proxy.max_connections`) and the accept loop's back-off.
//!
//! A sidecar that accepts until the process runs out of file descriptors fails everything at
//! once: new clients, upstream connects, and the admin listener that `/healthz` and `/metrics`
//! come through (the fault campaign saw accepts fail for ~30 s). With the cap, the proxy stops
//! accepting at `max_connections` (the kernel's backlog holds new clients until a slot frees),
//! and the default leaves descriptors for the upstream side and the admin listener.
//!
//! Per connection (not per request): one atomic add and one subtract.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntGauge;
use rustix::process::{getrlimit, Resource};
use tokio::sync::Notify;

/// Descriptors kept out of the automatic cap: the admin listener and its scrapes, probe and
/// shadow clients, config and model files, the runtime's own.
pub const FD_RESERVE: u64 = 128;
/// The automatic cap when the fd limit is unknown or unlimited.
pub const FALLBACK_MAX: usize = 4096;

/// `max_connections = 0` resolved: half of what the fd limit leaves after [`FD_RESERVE`], as
/// each client connection may hold one upstream connection.
pub fn auto_max_connections() -> usize {
    match getrlimit(Resource::Nofile).current {
        Some(n) => ((n.saturating_sub(FD_RESERVE)) / 2).max(1) as usize,
        None => FALLBACK_MAX,
    }
}

/// Raise the soft fd limit to the hard one, as Go's runtime and nginx's
/// `worker_rlimit_nofile` do: the soft default (often 1024) is a relic of `select()`, which
/// nothing here uses. Returns the soft limit in force afterwards.
pub fn raise_fd_limit() -> Option<u64> {
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        if let Err(e) = rustix::process::setrlimit(Resource::Nofile, lim) {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// Open client connections, shared by every worker's accept loop.
#[derive(Debug)]
pub struct ConnLimit {
    open: AtomicUsize,
    max: usize,
    freed: Notify,
    gauge: IntGauge,
}

impl ConnLimit {
    /// `gauge` follows the open count; `max_gauge` is set to the cap.
    pub fn new(max: usize, gauge: IntGauge, max_gauge: &IntGauge) -> Arc<Self> {
        max_gauge.set(max as i64);
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max,
            freed: Notify::new(),
            gauge,
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Wait for a free slot and take it; the slot is released when the guard drops.
    pub async fn acquire(self: &Arc<Self>) -> ConnSlot {
        loop {
            // Register interest before checking, so a release in between is not missed.
            let freed = self.freed.notified();
            let prev = self.open.fetch_add(1, Ordering::AcqRel);
            if prev < self.max {
                self.gauge.inc();
                return ConnSlot(self.clone());
            }
            self.open.fetch_sub(1, Ordering::AcqRel);
            freed.await;
        }
    }
}

/// One open client connection's slot.
pub struct ConnSlot(Arc<ConnLimit>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.dec();
        self.0.freed.notify_one();
    }
}

/// The accept loop's wait after a failed accept (EMFILE, ENFILE, ENOBUFS): doubling from 5 ms
/// to 1 s, reset by the next successful accept, so a process out of descriptors neither spins
/// nor stays deaf long after they free up.
#[derive(Debug, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    pub fn failed(&mut self) -> Duration {
        let d = self.next.unwrap_or(Self::FIRST);
        self.next = Some((d * 2).min(Self::MAX));
        d
    }

    /// Whether the loop was backing off (so recovery can be logged once).
    pub fn succeeded(&mut self) -> bool {
        self.next.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<_> = (0..10).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert!(b.succeeded());
        assert!(!b.succeeded());
        assert_eq!(b.failed().as_millis(), 5);
    }

    #[tokio::test]
    async fn slots_are_capped_and_freed() {
        let g = || IntGauge::new("g", "-").unwrap();
        let lim = ConnLimit::new(2, g(), &g());
        let a = lim.acquire().await;
        let _b = lim.acquire().await;
        assert_eq!(lim.open(), 2);
        let waiting = tokio::spawn({
            let lim = lim.clone();
            async move {
                let _c = lim.acquire().await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("a freed slot wakes a waiting accept loop")
            .unwrap();
    }
}
