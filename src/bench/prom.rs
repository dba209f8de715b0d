//! The Prometheus HTTP API client: one `/api/v1/query_range` call turned into a matrix of
//! series (Prometheus, Thanos Query and Mimir answer the same API).

use std::collections::BTreeMap;

use serde_json::Value;

use super::client::HttpClient;
use super::scrape::get_text;
use super::BenchError;

/// One series of a range query: labels and (time, value) points.
pub type Matrix = Vec<(BTreeMap<String, String>, Vec<(f64, f64)>)>;

/// Encode a query parameter as `application/x-www-form-urlencoded`, as Prometheus decodes it.
pub fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Run one `query_range` and return its matrix.
pub async fn query_range(
    client: &HttpClient,
    base: &str,
    query: &str,
    start: f64,
    end: f64,
    step: f64,
) -> Result<Matrix, BenchError> {
    let url = format!(
        "{base}/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step}",
        encode(query)
    );
    let perr = |msg: String| BenchError::Prometheus {
        query: query.to_string(),
        msg,
    };
    let text = get_text(client, &url).await?;
    let v: Value = serde_json::from_str(&text).map_err(|e| perr(e.to_string()))?;
    if v["status"] != "success" {
        return Err(perr(format!("{}: {}", v["errorType"], v["error"])));
    }
    let mut out = Vec::new();
    for s in v["data"]["result"].as_array().into_iter().flatten() {
        let labels = s["metric"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let points = s["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let t = p[0].as_f64()?;
                let v = parse_value(p[1].as_str()?)?;
                Some((t, v))
            })
            .collect();
        out.push((labels, points));
    }
    Ok(out)
}

/// A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN` or a number); NaN is no value.
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => None,
        v => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        assert_eq!(
            encode("rate(x{a=\"b\"}[5m])"),
            "rate%28x%7Ba%3D%22b%22%7D%5B5m%5D%29"
        );
    }
}
