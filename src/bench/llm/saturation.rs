//! The model server's saturation while a step runs (requests waiting and running, KV-cache
//! use), sampled once a second from the engine's own `/metrics` (`--engine-metrics`, read with
//! [`crate::engine`]'s normalisation) or from a sidecar's `inferwatch_engine_*` gauges
//! (`--sidecar-metrics`); and joules per output token from the sidecar after the step.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::bench::client::HttpClient;
use crate::bench::scrape::{get_text, parse_text, Sample};
use crate::engine::config::EngineKind;
use crate::engine::{exposition, normalize};
use crate::metrics::names;

/// How often saturation is sampled while a step runs.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Where saturation is read.
#[derive(Debug, Clone)]
pub enum Source {
    /// The engine's own `/metrics`.
    Engine(String),
    /// A sidecar's `/metrics` (its `inferwatch_engine_*` gauges).
    Sidecar(String),
}

/// One step's saturation: mean and peak of each figure over the samples that had it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saturation {
    /// `engine URL` or `sidecar URL`.
    pub source: String,
    pub samples: u64,
    pub failed_samples: u64,
    pub waiting_mean: Option<f64>,
    pub waiting_max: Option<f64>,
    pub running_mean: Option<f64>,
    pub running_max: Option<f64>,
    /// KV-cache use, 0..1.
    pub kv_cache_usage_mean: Option<f64>,
    pub kv_cache_usage_max: Option<f64>,
}

#[derive(Default)]
struct Acc {
    waiting: Vec<f64>,
    running: Vec<f64>,
    kv: Vec<f64>,
    ok: u64,
    failed: u64,
}

/// (waiting, running, kv) in one scrape.
type Figures = (Option<f64>, Option<f64>, Option<f64>);

fn figures_from_engine(text: &str) -> Option<Figures> {
    let samples = exposition::parse(text).ok()?;
    let kind = normalize::detect(&samples).unwrap_or(EngineKind::Auto);
    let r = normalize::read(kind, &samples);
    Some((r.waiting, r.running, r.kv_cache_usage))
}

fn figures_from_sidecar(samples: &[Sample]) -> Figures {
    let sum = |name: &str| {
        samples
            .iter()
            .filter(|(n, _, v)| n == name && v.is_finite())
            .map(|s| s.2)
            .reduce(|a, b| a + b)
    };
    let max = |name: &str| {
        samples
            .iter()
            .filter(|(n, _, v)| n == name && v.is_finite())
            .map(|s| s.2)
            .reduce(f64::max)
    };
    (
        sum(crate::engine::WAITING),
        sum(crate::engine::RUNNING),
        max(crate::engine::KV),
    )
}

async fn sample(client: &HttpClient, source: &Source) -> Option<Figures> {
    match source {
        Source::Engine(url) => figures_from_engine(&get_text(client, url).await.ok()?),
        Source::Sidecar(url) => Some(figures_from_sidecar(&parse_text(
            &get_text(client, url).await.ok()?,
        ))),
    }
}

/// Sample `source` every [`INTERVAL`] until `stop` turns true (at least once).
pub async fn watch(
    client: HttpClient,
    source: Source,
    mut stop: watch::Receiver<bool>,
) -> Saturation {
    let mut acc = Acc::default();
    loop {
        match sample(&client, &source).await {
            Some((w, r, k)) => {
                acc.ok += 1;
                acc.waiting.extend(w);
                acc.running.extend(r);
                acc.kv.extend(k);
            }
            None => acc.failed += 1,
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let max = |v: &[f64]| v.iter().copied().reduce(f64::max);
    Saturation {
        source: match &source {
            Source::Engine(u) => format!("engine {u}"),
            Source::Sidecar(u) => format!("sidecar {u}"),
        },
        samples: acc.ok,
        failed_samples: acc.failed,
        waiting_mean: mean(&acc.waiting),
        waiting_max: max(&acc.waiting),
        running_mean: mean(&acc.running),
        running_max: max(&acc.running),
        kv_cache_usage_mean: mean(&acc.kv),
        kv_cache_usage_max: max(&acc.kv),
    }
}

/// Joules per output token in a sidecar scrape: the mean of the `kind="total"` series of
/// sources that are up; `None` without one.
pub fn joules_per_output_token(samples: &[Sample]) -> Option<f64> {
    let up: Vec<&String> = samples
        .iter()
        .filter(|(n, _, v)| n == names::ENERGY_SOURCE_UP && *v == 1.0)
        .filter_map(|(_, l, _)| l.get("source"))
        .collect();
    let v: Vec<f64> = samples
        .iter()
        .filter(|(n, l, v)| {
            n == names::ENERGY_PER_OUTPUT_TOKEN_JOULES
                && l.get("kind").map(String::as_str) == Some("total")
                && l.get("source").is_some_and(|s| up.contains(&s))
                && v.is_finite()
                && *v > 0.0
        })
        .map(|s| s.2)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_gauges_and_energy() {
        let text = r#"
inferwatch_engine_requests_waiting{engine="vllm"} 3
inferwatch_engine_requests_running{engine="vllm"} 8
inferwatch_engine_kv_cache_usage_ratio{engine="vllm"} 0.75
inferwatch_energy_source_up{source="estimate"} 1
inferwatch_energy_source_up{source="nvml"} 0
inferwatch_energy_per_output_token_joules{kind="total",model="m",route="chat",source="estimate"} 0.02
inferwatch_energy_per_output_token_joules{kind="dynamic",model="m",route="chat",source="estimate"} 0.01
inferwatch_energy_per_output_token_joules{kind="total",model="m",route="chat",source="nvml"} 9
"#;
        let s = parse_text(text);
        assert_eq!(figures_from_sidecar(&s), (Some(3.0), Some(8.0), Some(0.75)));
        assert_eq!(joules_per_output_token(&s), Some(0.02));
        assert_eq!(joules_per_output_token(&[]), None);
    }

    #[test]
    fn engine_metrics_through_the_engine_normalisation() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/engine/vllm.prom"
        ))
        .unwrap();
        assert_eq!(
            figures_from_engine(&text),
            Some((Some(7.0), Some(15.0), Some(0.93)))
        );
    }
}
