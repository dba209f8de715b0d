//! The tap's byte budget: every body byte the tap holds — chunks of exchanges still streaming,
//! and captures queued for or being read by the adapters — is reserved here, so the memory the
//! tap keeps alive is bounded in bytes, not only in entries. A capture that would go over the
//! budget is dropped and counted, never waited for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes held by the tap, and the most it may hold.
#[derive(Debug)]
pub struct Budget {
    held: AtomicU64,
    max: u64,
}

impl Budget {
    pub fn new(max: u64) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicU64::new(0),
            max,
        })
    }

    /// The most bytes that may be reserved at once.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Bytes reserved now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}

/// Bytes one recording or capture holds of the budget, given back when it is dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Reservation {
    pub fn new(budget: &Arc<Budget>) -> Self {
        Self {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    /// Reserve `n` more bytes; `false`, with nothing reserved, when the budget would be exceeded.
    /// One atomic add (and a subtract on refusal): cheap enough for every body chunk.
    pub fn grow(&mut self, n: u64) -> bool {
        let before = self.budget.held.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.budget.max {
            self.budget.held.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        self.bytes += n;
        true
    }

    /// Give back everything reserved so far.
    pub fn release(&mut self) {
        if self.bytes > 0 {
            self.budget.held.fetch_sub(self.bytes, Ordering::Relaxed);
            self.bytes = 0;
        }
    }

    /// Take over `other`'s bytes (one reservation for a whole capture).
    pub fn absorb(&mut self, mut other: Reservation) {
        self.bytes += std::mem::take(&mut other.bytes);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_budget_and_are_given_back() {
        let b = Budget::new(100);
        let mut a = Reservation::new(&b);
        let mut c = Reservation::new(&b);
        assert!(a.grow(60));
        assert!(!c.grow(41), "over the budget: refused");
        assert_eq!(b.held(), 60, "a refusal reserves nothing");
        assert!(c.grow(40));
        assert_eq!(b.held(), 100);
        a.absorb(c);
        assert_eq!(a.bytes(), 100);
        assert_eq!(
            b.held(),
            100,
            "absorbing moves bytes, it does not free them"
        );
        drop(a);
        assert_eq!(b.held(), 0);
    }
}
