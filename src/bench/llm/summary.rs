//! The LLM figures of one run (`"llm"` in `--json` and `report.json`): throughput in requests
//! and tokens, goodput, and the distributions of TTFT, time to second token, ITL, TPOT, e2e and
//! tokens/s per user. The names are a contract (other tools' tests read them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::arrival::Arrival;
use super::record::RequestRecord;
use super::saturation::Saturation;
use crate::bench::stats::percentile;
use crate::metrics::slo_result;
use crate::routes::config::SloConfig;

/// p50/p90/p99 (LoadGen's index convention, as the rest of the bench) and the mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
    pub count: u64,
}

impl Dist {
    pub fn of(mut v: Vec<f64>) -> Option<Dist> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Dist {
            p50: percentile(&v, 0.50),
            p90: percentile(&v, 0.90),
            p99: percentile(&v, 0.99),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            count: v.len() as u64,
        })
    }
}

/// Token totals of the successful requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenTotals {
    pub mean: f64,
    pub total: u64,
}

/// The per-request SLO the run was judged by (seconds; absent bounds are not checked).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    pub ttft_s: Option<f64>,
    pub tpot_s: Option<f64>,
    pub e2e_s: Option<f64>,
}

impl Slo {
    pub fn of(c: &SloConfig) -> Option<Slo> {
        let b = |v: f64| (v > 0.0).then_some(v);
        c.is_set().then(|| Slo {
            ttft_s: b(c.ttft_secs),
            tpot_s: b(c.tpot_secs),
            e2e_s: b(c.e2e_secs),
        })
    }
}

/// One run's LLM figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmSummary {
    /// Requests issued, and those answered and read whole.
    pub requests: u64,
    pub completed_ok: u64,
    /// Successful requests per second, from the first scheduled send to the last completion.
    pub requests_per_s: f64,
    pub output_tokens_per_s: f64,
    /// Input and output tokens per second (input as [`LlmSummary::input_token_source`] says).
    pub total_tokens_per_s: f64,
    /// Requests per second that met every bound of the SLO (all successful ones without one).
    pub goodput_rps: f64,
    /// Share of issued requests that met the SLO.
    pub slo_attainment: f64,
    pub slo: Option<Slo>,
    /// Requests by result: `met`, `missed_ttft`, `missed_tpot`, `missed_e2e`, `failed`.
    pub slo_results: BTreeMap<String, u64>,
    pub ttft_s: Option<Dist>,
    pub ttst_s: Option<Dist>,
    /// Every gap between consecutive content chunks of every request, pooled.
    pub itl_s: Option<Dist>,
    pub tpot_s: Option<Dist>,
    pub e2e_s: Option<Dist>,
    pub tokens_per_s_per_user: Option<Dist>,
    pub input_tokens: TokenTotals,
    pub output_tokens: TokenTotals,
    /// `usage` when every output count came from the server's usage, else `chunks`.
    pub token_source: String,
    /// `usage` (`prompt_tokens`, which includes a chat template), `workload` (the prompt's
    /// tokens as built: servers that send no usage in streams) or `none`.
    pub input_token_source: String,
    /// The mean lengths the workload asked for, when the bench built the prompts.
    pub requested_input_tokens_mean: Option<f64>,
    pub requested_output_tokens_mean: Option<f64>,
    /// How prompt lengths were measured (the server's tokenizer or the approximation).
    pub tokenizer: Option<String>,
    /// The engine's queue and KV cache during the run, when its metrics were given.
    pub saturation: Option<Saturation>,
    /// Joules per output token from the sidecar, when an energy source is up.
    pub joules_per_output_token: Option<f64>,
    /// Open loop: how arrivals were spaced.
    pub arrival: Option<Arrival>,
    /// Closed loop: the number of users.
    #[serde(default)]
    pub users: Option<usize>,
    /// Where the prompts came from, when the bench built them.
    pub workload: Option<String>,
}

/// The summary of `recs` over a run that lasted `duration` seconds.
pub fn summarize(
    recs: &[RequestRecord],
    duration: f64,
    slo: &SloConfig,
    tokenizer: Option<String>,
) -> LlmSummary {
    let ok: Vec<&RequestRecord> = recs.iter().filter(|r| r.error.is_none()).collect();
    let per_s = |n: f64| if duration > 0.0 { n / duration } else { 0.0 };
    let mut slo_results = BTreeMap::new();
    for r in recs {
        *slo_results.entry(r.slo_result.clone()).or_insert(0u64) += 1;
    }
    let met = slo_results.get(slo_result::MET).copied().unwrap_or(0);
    let out: u64 = ok.iter().filter_map(|r| r.output_tokens).sum();
    let usage_in = ok.iter().all(|r| r.input_tokens.is_some()) && !ok.is_empty();
    let workload_in = ok.iter().all(|r| r.input_tokens_requested.is_some()) && !ok.is_empty();
    let (input_token_source, inp): (&str, u64) = if usage_in {
        ("usage", ok.iter().filter_map(|r| r.input_tokens).sum())
    } else if workload_in {
        (
            "workload",
            ok.iter().filter_map(|r| r.input_tokens_requested).sum(),
        )
    } else {
        ("none", 0)
    };
    let n_ok = ok.len().max(1) as f64;
    let col = |f: &dyn Fn(&RequestRecord) -> Option<f64>| ok.iter().filter_map(|r| f(r)).collect();
    let mean_of = |f: &dyn Fn(&RequestRecord) -> Option<u64>| {
        let v: Vec<u64> = recs.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<u64>() as f64 / v.len() as f64)
    };
    LlmSummary {
        requests: recs.len() as u64,
        completed_ok: ok.len() as u64,
        requests_per_s: per_s(ok.len() as f64),
        output_tokens_per_s: per_s(out as f64),
        total_tokens_per_s: per_s((out + inp) as f64),
        goodput_rps: per_s(met as f64),
        slo_attainment: if recs.is_empty() {
            0.0
        } else {
            met as f64 / recs.len() as f64
        },
        slo: Slo::of(slo),
        slo_results,
        ttft_s: Dist::of(col(&|r| r.ttft_s)),
        ttst_s: Dist::of(col(&|r| r.ttst_s)),
        itl_s: Dist::of(ok.iter().flat_map(|r| r.itl_s.iter().copied()).collect()),
        tpot_s: Dist::of(col(&|r| r.tpot_s)),
        e2e_s: Dist::of(col(&|r| Some(r.e2e_s))),
        tokens_per_s_per_user: Dist::of(col(&|r| r.tokens_per_s)),
        input_tokens: TokenTotals {
            mean: inp as f64 / n_ok,
            total: inp,
        },
        output_tokens: TokenTotals {
            mean: out as f64 / n_ok,
            total: out,
        },
        token_source: if !ok.is_empty()
            && ok
                .iter()
                .all(|r| r.token_source.as_deref() == Some("usage"))
        {
            "usage"
        } else {
            "chunks"
        }
        .into(),
        input_token_source: input_token_source.into(),
        requested_input_tokens_mean: mean_of(&|r| r.input_tokens_requested),
        requested_output_tokens_mean: mean_of(&|r| r.output_tokens_requested),
        tokenizer,
        saturation: None,
        joules_per_output_token: None,
        arrival: None,
        users: None,
        workload: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ttft: f64, tpot: f64, e2e: f64, out: u64, result: &str) -> RequestRecord {
        RequestRecord {
            index: 0,
            item: 0,
            scheduled_s: 0.0,
            sent_s: 0.0,
            done_s: e2e,
            error: (result == "failed").then(|| "status_5xx".into()),
            status: Some(200),
            input_tokens_requested: Some(10),
            output_tokens_requested: Some(out),
            input_tokens: None,
            output_tokens: Some(out),
            token_source: Some("chunks".into()),
            ttft_s: Some(ttft),
            ttst_s: Some(tpot),
            itl_s: vec![tpot; out.saturating_sub(1) as usize],
            tpot_s: Some(tpot),
            e2e_s: e2e,
            tokens_per_s: Some(out as f64 / (e2e - ttft)),
            finish_reason: Some("length".into()),
            slo_result: result.into(),
        }
    }

    #[test]
    fn throughput_goodput_and_distributions() {
        let recs = vec![
            rec(0.1, 0.01, 0.2, 11, "met"),
            rec(0.3, 0.01, 0.4, 11, "missed_ttft"),
            rec(0.1, 0.02, 0.3, 11, "met"),
            rec(0.0, 0.0, 1.0, 0, "failed"),
        ];
        let s = summarize(&recs, 2.0, &SloConfig::default(), None);
        assert_eq!((s.requests, s.completed_ok), (4, 3));
        assert_eq!(s.requests_per_s, 1.5);
        assert_eq!(s.goodput_rps, 1.0);
        assert_eq!(s.slo_attainment, 0.5);
        assert_eq!(s.output_tokens.total, 33);
        assert_eq!(s.output_tokens_per_s, 16.5);
        assert_eq!(s.input_token_source, "workload");
        assert_eq!(s.total_tokens_per_s, (33.0 + 30.0) / 2.0);
        assert_eq!(s.token_source, "chunks");
        let ttft = s.ttft_s.unwrap();
        assert_eq!((ttft.p50, ttft.p99, ttft.count), (0.1, 0.3, 3));
        assert_eq!(s.itl_s.unwrap().count, 30);
        // The contract's names, as peer tools read them.
        let v = serde_json::to_value(&s).unwrap();
        for k in [
            "requests_per_s",
            "output_tokens_per_s",
            "total_tokens_per_s",
            "goodput_rps",
            "token_source",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        for k in [
            "ttft_s",
            "ttst_s",
            "itl_s",
            "tpot_s",
            "e2e_s",
            "tokens_per_s_per_user",
        ] {
            for q in ["p50", "p90", "p99", "mean"] {
                assert!(v[k][q].is_number(), "{k}.{q}");
            }
        }
        for k in ["input_tokens", "output_tokens"] {
            assert!(v[k]["mean"].is_number() && v[k]["total"].is_number(), "{k}");
        }
    }
}
