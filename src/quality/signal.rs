//! Pushed signals: other modules (canary, shadow, protocol adapters) send observations through a
//! [`SignalSender`] into a bounded queue that the engine drains. Sending never waits: when the
//! queue is full the observation is dropped and counted, so the live path and the probers never
//! slow down for the quality engine.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::IntCounter;
use tokio::sync::mpsc;

/// One observation: the signal's index in the engine's closed set, and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub signal: u16,
    pub value: f64,
}

struct Inner {
    tx: mpsc::Sender<Observation>,
    /// Signal name → (index, dropped counter). Built from config only: a closed set.
    ids: HashMap<String, (u16, IntCounter)>,
    unknown: IntCounter,
}

/// Cheap to clone, `Send + Sync`: hand one to every module that produces observations.
#[derive(Clone)]
pub struct SignalSender {
    inner: Arc<Inner>,
}

/// A sender bound to one signal, resolved once (no name lookup per observation).
#[derive(Clone)]
pub struct SignalHandle {
    tx: mpsc::Sender<Observation>,
    id: u16,
    dropped: IntCounter,
}

impl SignalSender {
    pub(crate) fn new(
        tx: mpsc::Sender<Observation>,
        ids: HashMap<String, (u16, IntCounter)>,
        unknown: IntCounter,
    ) -> Self {
        Self {
            inner: Arc::new(Inner { tx, ids, unknown }),
        }
    }

    /// Queue one observation of `signal`. Returns false if it was dropped: the signal is not one
    /// any chart or drift test uses (counted in `inferwatch_quality_signal_unknown_total`), or
    /// the queue is full or closed (counted per signal in
    /// `inferwatch_quality_signal_dropped_total`).
    pub fn observe(&self, signal: &str, value: f64) -> bool {
        match self.inner.ids.get(signal) {
            None => {
                self.inner.unknown.inc();
                false
            }
            Some((id, dropped)) => send(&self.inner.tx, *id, value, dropped),
        }
    }

    /// A handle for one signal, if any chart or drift test uses it.
    pub fn handle(&self, signal: &str) -> Option<SignalHandle> {
        self.inner
            .ids
            .get(signal)
            .map(|(id, dropped)| SignalHandle {
                tx: self.inner.tx.clone(),
                id: *id,
                dropped: dropped.clone(),
            })
    }

    /// Whether some chart or drift test uses `signal` (a producer can skip work otherwise).
    pub fn wants(&self, signal: &str) -> bool {
        self.inner.ids.contains_key(signal)
    }
}

impl SignalHandle {
    pub fn observe(&self, value: f64) -> bool {
        send(&self.tx, self.id, value, &self.dropped)
    }
}

fn send(tx: &mpsc::Sender<Observation>, id: u16, value: f64, dropped: &IntCounter) -> bool {
    match tx.try_send(Observation { signal: id, value }) {
        Ok(()) => true,
        Err(_) => {
            dropped.inc();
            false
        }
    }
}
