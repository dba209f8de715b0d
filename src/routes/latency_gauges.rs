//! Turns the routes' sliding-window sketches into the quantile and upper-bound gauges, on demand
//! (at scrape or /status time, off the live path).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::Router;
use crate::latency::config::LatencyConfig;
use crate::metrics::{window_label, ProxyMetrics};

pub struct LatencyExporter {
    router: Arc<Router>,
    metrics: ProxyMetrics,
    windows: Vec<(Duration, String)>,
    quantiles: Vec<(f64, String)>,
    confidence: f64,
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
                    .with_label_values(&[&route.info.name, &route.info.model, wl])
                    .set(snap.count() as f64);
                for (q, ql) in &self.quantiles {
                    let labels = [route.info.name.as_str(), route.info.model.as_str(), wl, ql];
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
                "route": route.info.name,
                "model": route.info.model,
                "protocol": route.info.protocol,
                "in_flight": route.in_flight.get(),
                "windows": windows,
            }));
        }
        json!({ "confidence": self.confidence, "routes": routes })
    }
}
