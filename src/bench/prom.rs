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

/// Each series' count over exactly `[start, end]`: its value at `end` less its value at `start`
/// (a series that did not exist yet started at 0: the sidecar creates a label set at its first
/// request), or, where the counter reset in between (a restart), Prometheus' `increase`.
/// Summing a trailing rate at each step undercounts a range that outlasts the traffic;
/// `increase` alone misses what a new series counted before its first scrape. `selector` is a
/// counter with its matchers; `__name__` is dropped from the labels.
pub async fn counts_over(
    client: &HttpClient,
    base: &str,
    selector: &str,
    start: f64,
    end: f64,
    step: f64,
) -> Result<Vec<(BTreeMap<String, String>, f64)>, BenchError> {
    let at = |q: String, t: f64| async move {
        query_range(client, base, &q, t, t, step).await.map(|m| {
            m.into_iter()
                .filter_map(|(mut l, p)| {
                    l.remove("__name__");
                    p.last().map(|&(_, v)| (l, v))
                })
                .collect::<BTreeMap<_, _>>()
        })
    };
    let range_ms = ((end - start) * 1000.0).round().max(1.0) as u64;
    let at_end = at(selector.to_string(), end).await?;
    let at_start = at(selector.to_string(), start).await?;
    let increased = at(format!("increase({selector}[{range_ms}ms])"), end).await?;
    Ok(at_end
        .into_iter()
        .filter_map(|(labels, v_end)| {
            let delta = v_end - at_start.get(&labels).copied().unwrap_or(0.0);
            let n = if delta >= 0.0 {
                delta
            } else {
                increased.get(&labels).copied().unwrap_or(0.0)
            };
            n.is_finite().then_some((labels, n))
        })
        .collect())
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
