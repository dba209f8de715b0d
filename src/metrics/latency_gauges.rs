//! Turns the routes' sliding-window sketches into the quantile and upper-bound gauges, on demand
//! (at scrape or /status time, off the live path).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::ProxyMetrics;
use crate::config::LatencyConfig;
use crate::proxy::Router;

pub struct LatencyExporter {
    router: Arc<Router>,
    metrics: ProxyMetrics,
    windows: Vec<(Duration, String)>,
    quantiles: Vec<(f64, String)>,
    confidence: f64,
}

/// `60` → `1m`, `600` → `10m`, `3600` → `1h`, `90` → `90s`.
pub fn window_label(secs: u64) -> String {
    if secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

impl LatencyExporter {
    pub fn new(router: Arc<Router>, metrics: ProxyMetrics, cfg: &LatencyConfig) -> Self {
        Self {
            router,
            metrics,
            windows: cfg
                .windows_secs
                .iter()
                .map(|&s| (Duration::from_secs(s), window_label(s)))
                .collect(),
            quantiles: cfg.quantiles.iter().map(|&q| (q, q.to_string())).collect(),
            confidence: cfg.confidence,
        }
    }

    /// Recompute every quantile gauge from the sketches. Gauges for which there is no value
    /// (empty window; too few samples for a bound) are removed rather than left stale.
    pub fn refresh(&self) {
        let now = tokio::time::Instant::now();
        let m = &self.metrics;
        for route in self.router.all() {
            for (window, wl) in &self.windows {
                let snap = route.sketch.snapshot(*window, now);
                m.window_samples
                    .with_label_values(&[&route.name, &route.model, wl])
                    .set(snap.count() as f64);
                for (q, ql) in &self.quantiles {
                    let labels = [route.name.as_str(), route.model.as_str(), wl, ql];
                    match snap.quantile(*q) {
                        Some(v) => m.quantile.with_label_values(&labels).set(v),
                        None => {
                            let _ = m.quantile.remove_label_values(&labels);
                        }
                    }
                    match snap.upper_bound(*q, self.confidence) {
                        Some(v) => m.quantile_upper_bound.with_label_values(&labels).set(v),
                        None => {
                            let _ = m.quantile_upper_bound.remove_label_values(&labels);
                        }
                    }
                }
            }
        }
    }

    /// The same figures as JSON, for `/status`.
    pub fn status_json(&self) -> Value {
        let now = tokio::time::Instant::now();
        let mut routes = Vec::new();
        for route in self.router.all() {
            let mut windows = Map::new();
            for (window, wl) in &self.windows {
                let snap = route.sketch.snapshot(*window, now);
                let mut w = Map::new();
                w.insert("count".into(), snap.count().into());
                for (q, ql) in &self.quantiles {
                    w.insert(
                        format!("q{ql}"),
                        json!({
                            "seconds": snap.quantile(*q),
                            "upper_bound_seconds": snap.upper_bound(*q, self.confidence),
                        }),
                    );
                }
                windows.insert(wl.clone(), Value::Object(w));
            }
            routes.push(json!({
                "route": route.name,
                "model": route.model,
                "protocol": route.protocol,
                "in_flight": route.in_flight.get(),
                "windows": windows,
            }));
        }
        json!({ "confidence": self.confidence, "routes": routes })
    }
}
