//! One drift test at run time: it learns its reference from the first observations (or takes a
//! saved one), then tests each full window against it with the pure tests in [`super::drift`]
//! and sets the drift metrics.

use super::config::DriftConfig;
use super::drift;
use super::metrics::QualityMetrics;
use super::phase::SavedReference;

/// Most classes a categorical drift signal distinguishes; larger indices share the last bin.
pub const MAX_CLASSES: usize = 64;

pub(super) struct DriftRuntime {
    pub(super) cfg: DriftConfig,
    pub(super) reference: Vec<f64>,
    ready: bool,
    edges: Vec<f64>,
    reference_counts: Vec<u64>,
    window: Vec<f64>,
    alarm_on: bool,
    m: QualityMetrics,
}

impl DriftRuntime {
    /// A drift test for `cfg`; a saved reference of the configured size skips learning one.
    pub(super) fn new(
        cfg: &DriftConfig,
        m: QualityMetrics,
        saved: Option<&SavedReference>,
    ) -> Self {
        let mut rt = DriftRuntime {
            cfg: cfg.clone(),
            reference: Vec::with_capacity(cfg.reference_size),
            ready: false,
            edges: Vec::new(),
            reference_counts: Vec::new(),
            window: Vec::with_capacity(cfg.window_size),
            alarm_on: false,
            m,
        };
        if let Some(saved) = saved {
            if saved.values.len() == cfg.reference_size {
                rt.reference = saved.values.clone();
                rt.finish_reference();
            }
        }
        rt
    }

    /// Returns true when this observation completed the reference (to be saved).
    pub(super) fn push(&mut self, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        if !self.ready {
            self.reference.push(value);
            if self.reference.len() >= self.cfg.reference_size {
                self.finish_reference();
                return true;
            }
            return false;
        }
        self.window.push(value);
        if self.window.len() >= self.cfg.window_size {
            self.test();
            self.window.clear();
        }
        false
    }

    fn finish_reference(&mut self) {
        self.ready = true;
        let labels = [self.cfg.signal.as_str()];
        if self.cfg.categorical {
            self.reference_counts = class_counts(&self.reference);
        } else {
            self.edges = drift::psi_edges(&self.reference, self.cfg.bins);
            self.reference_counts = drift::bin_counts(&self.edges, &self.reference);
            let bins = self.edges.len() + 1;
            self.m
                .psi_threshold
                .with_label_values(&labels)
                .set(drift::psi_threshold(
                    self.reference.len(),
                    self.cfg.window_size,
                    bins,
                    self.cfg.alpha,
                ));
        }
    }

    fn test(&mut self) {
        let labels = [self.cfg.signal.as_str()];
        let alpha = self.cfg.alpha;
        let drifted = if self.cfg.categorical {
            let current = class_counts(&self.window);
            let c = drift::chi_square(&self.reference_counts, &current);
            self.m
                .chi_square_p_value
                .with_label_values(&labels)
                .set(c.p_value);
            self.m
                .psi
                .with_label_values(&labels)
                .set(drift::psi(&self.reference_counts, &current));
            c.p_value < alpha
        } else {
            let current = drift::bin_counts(&self.edges, &self.window);
            let psi = drift::psi(&self.reference_counts, &current);
            let threshold = drift::psi_threshold(
                self.reference.len(),
                self.window.len(),
                self.edges.len() + 1,
                alpha,
            );
            let ks = drift::ks_two_sample(&self.reference, &self.window);
            self.m.psi.with_label_values(&labels).set(psi);
            self.m
                .ks_statistic
                .with_label_values(&labels)
                .set(ks.statistic);
            self.m.ks_p_value.with_label_values(&labels).set(ks.p_value);
            psi > threshold || ks.p_value < alpha
        };
        self.m
            .drift_alarm
            .with_label_values(&labels)
            .set(i64::from(drifted));
        if drifted != self.alarm_on {
            self.alarm_on = drifted;
            if drifted {
                tracing::warn!(signal = %self.cfg.signal, "drift alarm");
            } else {
                tracing::info!(signal = %self.cfg.signal, "drift alarm cleared");
            }
        }
    }
}

fn class_counts(values: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; MAX_CLASSES];
    for &v in values {
        let class = if v.is_finite() && v >= 0.0 {
            (v.round() as usize).min(MAX_CLASSES - 1)
        } else {
            MAX_CLASSES - 1
        };
        counts[class] += 1;
    }
    counts
}
