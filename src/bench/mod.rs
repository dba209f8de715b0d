//! Capacity planning: an MLPerf-style load generator (`inferwatch bench`), a QPS sweep under a
//! p99 latency SLO, and a capacity report from live Prometheus data (`inferwatch report`).
//!
//! - [`requests`]: the JSON Lines request file and per-protocol default bodies.
//! - [`client`]: one query over HTTP, timed; streamed OpenAI responses read with
//!   [`crate::protocol::sse`] for TTFT/TPOT.
//! - [`config`]: one run's settings ([`BenchConfig`], [`Scenario`]), defaults and validation.
//! - [`run`]: the scenarios (`server`, `single-stream`, `offline`) executed, queries recorded.
//! - [`summary`]: one run's figures and verdict from its records.
//! - [`text`]: terminal text for a run, a sweep and a capacity report.
//! - [`early_stop`]: MLPerf LoadGen's early-stopping rule, on [`crate::latency::upper_bound_rank`].
//! - [`sweep`]: bracketing and bisection for the highest QPS whose p99 meets the SLO.
//! - [`scrape`]: reading energy per inference from a sidecar's `/metrics`.
//! - [`prom`]: the Prometheus HTTP API client (`query_range`).
//! - [`histogram`]: `histogram_quantile` and pooled bucket rates.
//! - [`capacity`]: the live-data capacity report (`inferwatch report`) from those queries.
//! - [`report`] and [`svg`]: `report.json`, `report.md` and a self-contained `report.html`.
//! - [`cli`]: the `bench` and `report` subcommands' flags and bodies.
//! - [`progress`]: a progress bar on a terminal, plain lines otherwise.
//! - [`llm`]: token workloads for `--protocol openai` (datasets, synthetic lengths, arrival
//!   processes, closed loops) and their figures (token throughput, TTFT/ITL/TPOT, goodput).

pub mod capacity;
pub mod cli;
pub mod client;
pub mod config;
pub mod early_stop;
pub mod goodput;
pub mod histogram;
pub mod llm;
pub mod progress;
pub mod prom;
pub mod replicas;
pub mod report;
pub mod requests;
pub mod run;
pub mod scrape;
pub mod stats;
pub mod summary;
pub mod svg;
pub mod sweep;
pub mod text;
pub mod why;

use std::time::Duration;

pub use config::{BenchConfig, Scenario};
pub use run::run_bench;
pub use summary::RunSummary;
pub use sweep::{run_sweep, SweepConfig, SweepResult};

/// Everything that can stop a bench, a sweep or a report. Per-query failures are not errors
/// here: they are counted in the run's summary.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{path}:{line}: {msg}")]
    RequestFile {
        path: String,
        line: usize,
        msg: String,
    },
    /// A dataset record that is not of the expected shape (`record [i]: ...`).
    #[error("{path}: {msg}")]
    Dataset { path: String, msg: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid target URL {url:?}: {msg}")]
    Url { url: String, msg: String },
    #[error("invalid setting: {0}")]
    Setting(String),
    #[error("cannot reach {url}: {msg}")]
    Http { url: String, msg: String },
    #[error("Prometheus query failed ({query}): {msg}")]
    Prometheus { query: String, msg: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Parse a duration the way Prometheus writes them: `500ms`, `90s`, `15m`, `2h`, `7d`, `1w`,
/// or a combination such as `1h30m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, BenchError> {
    let bad = || BenchError::Setting(format!("{s:?} is not a duration (e.g. 90s, 15m, 7d)"));
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return if secs.is_finite() && secs >= 0.0 {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(bad())
        };
    }
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            "y" => 31_536_000.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// Format seconds for humans: `850µs`, `12.3ms`, `1.25s`.
pub fn fmt_secs(s: f64) -> String {
    if !s.is_finite() {
        "n/a".to_string()
    } else if s < 1e-3 {
        format!("{:.0}µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2}ms", s * 1e3)
    } else {
        format!("{s:.3}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("7x").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("-1").is_err());
    }
}
