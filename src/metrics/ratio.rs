//! Windowed success ratios (`inferwatch_probe_accuracy_ratio`, `inferwatch_shadow_agreement_ratio`,
//! `inferwatch_labeled_accuracy_ratio`): 0/1 outcomes counted in time slots, turned into
//! `hits / total` over each configured window when Prometheus scrapes, so a window slides even
//! while no new outcome arrives (a stale ratio would hide that probes stopped).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, Opts, Registry};
use tokio::time::Instant;

use super::{registered, window_label};

/// Outcomes of one series, counted per slot.
#[derive(Debug)]
struct Slots {
    /// (slot number since `origin`, hits, total), oldest first.
    slots: VecDeque<(u64, u64, u64)>,
}

/// One ratio family: label values → slots, exported per window.
struct Inner {
    gauge: GaugeVec,
    origin: Instant,
    slot: Duration,
    /// (window length, `window` label value)
    windows: Vec<(Duration, String)>,
    longest: Duration,
    series: Mutex<BTreeMap<Vec<String>, Slots>>,
}

/// A gauge family `name{labels..., window}` computed from recorded 0/1 outcomes. Cheap to
/// clone; registered on the registry as a collector that refreshes itself on every scrape.
#[derive(Clone)]
pub struct RatioGauge {
    inner: Arc<Inner>,
}

impl RatioGauge {
    /// `windows_secs`: each window's length; `slot`: the granularity by which windows slide
    /// (a window covers the slots that started within it, so it may reach up to one slot further
    /// back than its length).
    pub fn register(
        registry: &Registry,
        name: &str,
        help: &str,
        labels: &[&str],
        windows_secs: &[u64],
        slot: Duration,
    ) -> prometheus::Result<Self> {
        let mut all: Vec<&str> = labels.to_vec();
        all.push("window");
        let gauge = GaugeVec::new(Opts::new(name, help), &all)?;
        let windows: Vec<(Duration, String)> = windows_secs
            .iter()
            .map(|&s| (Duration::from_secs(s), window_label(s)))
            .collect();
        let longest = windows.iter().map(|w| w.0).max().unwrap_or(slot);
        registered(
            registry,
            Self {
                inner: Arc::new(Inner {
                    gauge,
                    origin: Instant::now(),
                    slot: slot.max(Duration::from_millis(1)),
                    windows,
                    longest,
                    series: Mutex::new(BTreeMap::new()),
                }),
            },
        )
    }

    /// Record `hits` successes out of `total` outcomes for the series `labels` (without window).
    pub fn record(&self, labels: &[&str], hits: u64, total: u64) {
        self.record_at(labels, hits, total, Instant::now());
    }

    fn record_at(&self, labels: &[&str], hits: u64, total: u64, at: Instant) {
        if total == 0 {
            return;
        }
        let slot = self.slot_of(at);
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        let mut series = self.inner.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = series.entry(key).or_insert_with(|| Slots {
            slots: VecDeque::new(),
        });
        match s.slots.back_mut() {
            Some(last) if last.0 == slot => {
                last.1 += hits;
                last.2 += total;
            }
            _ => s.slots.push_back((slot, hits, total)),
        }
    }

    /// One 0/1 outcome.
    pub fn outcome(&self, labels: &[&str], hit: bool) {
        self.record(labels, u64::from(hit), 1);
    }

    /// `(hits, total)` of one series over the window of `window` length, for tests and /status.
    pub fn counts(&self, labels: &[&str], window: Duration) -> (u64, u64) {
        self.counts_at(labels, window, Instant::now())
    }

    fn counts_at(&self, labels: &[&str], window: Duration, at: Instant) -> (u64, u64) {
        let now = self.slot_of(at);
        let reach = self.slots_in(window);
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        let series = self.inner.series.lock().unwrap_or_else(|e| e.into_inner());
        series.get(&key).map_or((0, 0), |s| sum(s, now, reach))
    }

    fn slot_of(&self, t: Instant) -> u64 {
        let since = t.saturating_duration_since(self.inner.origin);
        (since.as_nanos() / self.inner.slot.as_nanos()) as u64
    }

    fn slots_in(&self, window: Duration) -> u64 {
        (window.as_nanos().div_ceil(self.inner.slot.as_nanos())) as u64
    }

    /// Drop old slots and set every gauge from the slots still inside its window; a series with
    /// nothing inside a window has no sample for it (no made-up 0 or stale value).
    fn refresh(&self, at: Instant) {
        let now = self.slot_of(at);
        let keep = self.slots_in(self.inner.longest);
        let mut series = self.inner.series.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.gauge.reset();
        series.retain(|key, s| {
            while s.slots.front().is_some_and(|f| f.0 + keep <= now) {
                s.slots.pop_front();
            }
            for (len, label) in &self.inner.windows {
                let (hits, total) = sum(s, now, self.slots_in(*len));
                if total > 0 {
                    let mut values: Vec<&str> = key.iter().map(String::as_str).collect();
                    values.push(label);
                    self.inner
                        .gauge
                        .with_label_values(&values)
                        .set(hits as f64 / total as f64);
                }
            }
            !s.slots.is_empty()
        });
    }
}

/// Hits and total of the slots within the last `reach` slots (the current one included).
fn sum(s: &Slots, now: u64, reach: u64) -> (u64, u64) {
    s.slots
        .iter()
        .filter(|(slot, _, _)| slot + reach > now)
        .fold((0, 0), |(h, t), (_, sh, st)| (h + sh, t + st))
}

impl Collector for RatioGauge {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh(Instant::now());
        self.inner.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_at(r: &RatioGauge, at: Instant) -> String {
        r.refresh(at);
        let mut buf = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &r.inner
                .gauge
                .collect()
                .into_iter()
                .filter(|f| !f.get_metric().is_empty())
                .collect::<Vec<_>>(),
            &mut buf,
        )
        .unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn windows_slide_without_new_outcomes() {
        let registry = Registry::new();
        let r = RatioGauge::register(
            &registry,
            "inferwatch_test_ratio",
            "test",
            &["probe"],
            &[60, 600],
            Duration::from_secs(10),
        )
        .unwrap();
        let t0 = r.inner.origin;
        r.record_at(&["a"], 3, 4, t0);
        r.record_at(&["a"], 0, 1, t0);
        assert_eq!(r.counts_at(&["a"], Duration::from_secs(60), t0), (3, 5));
        let t = text_at(&r, t0);
        assert!(
            t.contains(r#"inferwatch_test_ratio{probe="a",window="1m"} 0.6"#),
            "{t}"
        );
        let t1 = t0 + Duration::from_secs(120);
        r.record_at(&["a"], 1, 1, t1);
        let t = text_at(&r, t1);
        assert!(
            t.contains(r#"inferwatch_test_ratio{probe="a",window="1m"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(r#"inferwatch_test_ratio{probe="a",window="10m"} 0.6666"#),
            "{t}"
        );
        let t2 = t1 + Duration::from_secs(700);
        assert!(!text_at(&r, t2).contains("probe=\"a\""));
        assert_eq!(r.counts_at(&["a"], Duration::from_secs(600), t2), (0, 0));
    }
}
