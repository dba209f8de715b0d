//! Reading joules per inference from a sidecar's `/metrics` (`inferwatch_energy_source_up`,
//! `inferwatch_energy_per_inference_joules`), so a sweep records energy beside latency.

use std::collections::BTreeMap;

use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};

use super::client::HttpClient;
use super::BenchError;
use crate::metrics::names;

/// Energy per inference as one sidecar reported it at the end of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnergyReading {
    /// Sources whose `inferwatch_energy_source_up` is 1.
    pub sources_up: Vec<String>,
    /// Mean of the `kind="total"` series from sources that are up; `None` if there are none.
    pub joules_per_inference: Option<f64>,
    /// Every `kind="total"` series: its labels, rendered, and its value.
    pub series: BTreeMap<String, f64>,
}

impl EnergyReading {
    pub fn describe(&self) -> String {
        match self.joules_per_inference {
            Some(j) => format!("{j:.4} J/inference ({})", self.sources_up.join(", ")),
            None if self.sources_up.is_empty() => "no energy source up".to_string(),
            None => format!("no J/inference yet ({})", self.sources_up.join(", ")),
        }
    }
}

/// A sample of the Prometheus text format: name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// Parse the Prometheus text exposition format (the subset a sidecar writes).
pub fn parse_text(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((head, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), BTreeMap::new()),
            Some((n, rest)) => (n.to_string(), parse_labels(rest.trim_end_matches('}'))),
        };
        out.push((name, labels, value));
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    while let Some((k, v)) = rest.split_once("=\"") {
        // Values may hold escaped quotes; walk to the closing unescaped one.
        let mut value = String::new();
        let mut chars = v.char_indices();
        let mut end = v.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(k.trim_start_matches(',').trim().to_string(), value);
        rest = &v[end..];
    }
    labels
}

/// The energy figures in a scrape.
pub fn energy_from(samples: &[Sample]) -> EnergyReading {
    let mut up = Vec::new();
    for (name, labels, v) in samples {
        if name == names::ENERGY_SOURCE_UP && *v == 1.0 {
            if let Some(s) = labels.get("source") {
                up.push(s.clone());
            }
        }
    }
    let mut series = BTreeMap::new();
    let mut used = Vec::new();
    for (name, labels, v) in samples {
        if name != names::ENERGY_PER_INFERENCE_JOULES
            || labels.get("kind").map(String::as_str) != Some("total")
        {
            continue;
        }
        let rendered = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        series.insert(rendered, *v);
        let source_up = labels.get("source").is_some_and(|s| up.contains(s));
        if source_up && v.is_finite() && *v > 0.0 {
            used.push(*v);
        }
    }
    EnergyReading {
        sources_up: up,
        joules_per_inference: (!used.is_empty())
            .then(|| used.iter().sum::<f64>() / used.len() as f64),
        series,
    }
}

/// GET a sidecar's `/metrics` and read its energy figures.
pub async fn energy(client: &HttpClient, url: &str) -> Result<EnergyReading, BenchError> {
    let text = get_text(client, url).await?;
    Ok(energy_from(&parse_text(&text)))
}

/// GET a URL and return its body as text; non-2xx is an error.
pub async fn get_text(client: &HttpClient, url: &str) -> Result<String, BenchError> {
    let err = |msg: String| BenchError::Http {
        url: url.to_string(),
        msg,
    };
    let uri: http::Uri = url.parse().map_err(|_| err("not a URL".into()))?;
    let req = http::Request::get(uri)
        .body(Full::default())
        .map_err(|e| err(e.to_string()))?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| err("timed out".into()))?
        .map_err(|e| err(e.to_string()))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| err(e.to_string()))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        return Err(err(format!(
            "status {status}: {}",
            text.chars().take(200).collect::<String>()
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_from_a_scrape() {
        let text = r#"
# HELP inferwatch_energy_source_up x
inferwatch_energy_source_up{source="estimate"} 1
inferwatch_energy_source_up{source="nvml"} 0
inferwatch_energy_per_inference_joules{kind="total",model="m",route="infer",source="estimate"} 0.5
inferwatch_energy_per_inference_joules{kind="dynamic",model="m",route="infer",source="estimate"} 0.2
inferwatch_energy_per_inference_joules{kind="total",model="m",route="b",source="nvml"} 9
"#;
        let e = energy_from(&parse_text(text));
        assert_eq!(e.sources_up, vec!["estimate".to_string()]);
        assert_eq!(e.joules_per_inference, Some(0.5));
        assert_eq!(e.series.len(), 2);
        let l = parse_labels(r#"a="x\"y",b="z""#);
        assert_eq!(l["a"], "x\"y");
        assert_eq!(l["b"], "z");
    }
}
