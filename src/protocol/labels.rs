//! Label values and signal values taken from payloads, bounded: model and class labels capped
//! per route (then `other`), and the stable index a predicted class takes as a signal.

use std::collections::HashSet;

/// `class` label for predictions without a class (regressors).
pub const NO_CLASS: &str = "none";
/// The label value past a cap.
pub const OTHER: &str = "other";
/// Longest model or class label value taken from a payload; longer ones are `other`.
pub const MAX_LABEL_LEN: usize = 128;

/// The first `cap` distinct values seen; everything after is `other`.
#[derive(Debug)]
pub struct CappedLabels {
    cap: usize,
    seen: HashSet<String>,
}

impl CappedLabels {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            seen: HashSet::new(),
        }
    }

    /// The label value for `value`: itself while under the cap (or already seen), else `other`.
    pub fn label<'a>(&mut self, value: &'a str) -> &'a str {
        if self.seen.contains(value) {
            return value;
        }
        let acceptable = !value.is_empty()
            && value.len() <= MAX_LABEL_LEN
            && !value.chars().any(char::is_control);
        if acceptable && self.seen.len() < self.cap {
            self.seen.insert(value.to_string());
            return value;
        }
        OTHER
    }
}

/// Class indices a `class:{route}` signal takes: the quality engine's categorical drift test
/// keeps this many bins (`quality::drift_runtime::MAX_CLASSES`).
pub const CLASS_BINS: u64 = 64;

/// The index `class:{route}` carries for a predicted class, the same after a restart (a drift
/// test's saved reference stays valid): its position in the route's `class_labels`, else the
/// label itself when it is a number below [`CLASS_BINS`], else an FNV-1a hash of it modulo
/// [`CLASS_BINS`] (names that collide share a bin: the test sees fewer classes, stays valid).
pub fn class_index(class_labels: &[String], class: &str) -> f64 {
    if let Some(k) = class_labels.iter().position(|l| l == class) {
        return k as f64;
    }
    if let Ok(k) = class.parse::<u64>() {
        if k < CLASS_BINS {
            return k as f64;
        }
    }
    let hash = class.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % CLASS_BINS) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_index_is_stable_and_bounded() {
        let labels = [
            "setosa".to_string(),
            "versicolor".into(),
            "virginica".into(),
        ];
        assert_eq!(class_index(&labels, "virginica"), 2.0);
        assert_eq!(class_index(&[], "7"), 7.0);
        let hashed = class_index(&[], "cat");
        assert_eq!(hashed, class_index(&[], "cat"));
        assert!(hashed >= 0.0 && hashed < CLASS_BINS as f64);
        assert!(class_index(&[], "1000") < CLASS_BINS as f64);
    }
}
