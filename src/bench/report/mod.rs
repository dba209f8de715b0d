//! `--out DIR`: `report.json` (every step, every figure), `report.md`, and a self-contained
//! `report.html` with inline SVG charts, for a bench run, a sweep or a live capacity report;
//! for LLM runs also `requests.jsonl` (`requests-stepN.jsonl` per sweep step), one
//! [`crate::bench::llm::record::RequestRecord`] per request.
//!
//! - [`markdown`]: `report.md`, tables of every figure.
//! - [`html`]: `report.html`, the same text beside inline SVG charts.

pub mod html;
pub mod markdown;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::capacity::CapacityReport;
use super::summary::RunSummary;
use super::sweep::SweepResult;
use super::BenchError;

/// What `report.json` holds: exactly one of `bench`, `sweep`, `capacity`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportFile {
    /// `bench`, `sweep` or `capacity`.
    pub kind: String,
    pub inferwatch_version: String,
    pub generated_unix: f64,
    /// The command line that made it.
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bench: Option<RunSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityReport>,
}

impl ReportFile {
    fn new(kind: &str) -> Self {
        Self {
            kind: kind.into(),
            inferwatch_version: env!("CARGO_PKG_VERSION").into(),
            generated_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            command: std::env::args().collect(),
            bench: None,
            sweep: None,
            capacity: None,
        }
    }

    pub fn bench(run: RunSummary) -> Self {
        Self {
            bench: Some(run),
            ..Self::new("bench")
        }
    }

    pub fn sweep(sweep: SweepResult) -> Self {
        Self {
            sweep: Some(sweep),
            ..Self::new("sweep")
        }
    }

    pub fn capacity(c: CapacityReport) -> Self {
        Self {
            capacity: Some(c),
            ..Self::new("capacity")
        }
    }

    pub fn markdown(&self) -> String {
        markdown::document(self)
    }

    pub fn html(&self) -> String {
        html::page(self)
    }

    /// Write `report.json`, `report.md` and `report.html` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<(), BenchError> {
        let werr = |p: &Path, source| BenchError::Write {
            path: p.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| werr(dir, e))?;
        let json = serde_json::to_string_pretty(self).expect("report serializes");
        for (name, text) in [
            ("report.json", json),
            ("report.md", self.markdown()),
            ("report.html", self.html()),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| werr(&p, e))?;
        }
        // LLM runs: one record per request (a run's, or each sweep step's).
        let mut per_request = Vec::new();
        if let Some(b) = &self.bench {
            per_request.push(("requests.jsonl".to_string(), &b.records));
        }
        for st in self.sweep.iter().flat_map(|s| &s.steps) {
            per_request.push((
                format!("requests-step{}.jsonl", st.index),
                &st.summary.records,
            ));
        }
        for (name, records) in per_request.into_iter().filter(|(_, r)| !r.is_empty()) {
            let lines: String = records
                .iter()
                .map(|r| serde_json::to_string(r).expect("record serializes") + "\n")
                .collect();
            let p = dir.join(name);
            std::fs::write(&p, lines).map_err(|e| werr(&p, e))?;
        }
        Ok(())
    }
}
