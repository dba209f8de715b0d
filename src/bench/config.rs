//! The settings of one bench run: the scenario and everything the `bench` flags set, with the
//! defaults the CLI uses and their validation.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::Target;
use super::llm::arrival::Arrival;
use super::llm::Workload;
use super::requests::RequestTemplate;
use super::BenchError;
use crate::routes::config::{Protocol, SloConfig};

/// How queries are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Server,
    SingleStream,
    Offline,
}

impl FromStr for Scenario {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Self, BenchError> {
        match s {
            "server" => Ok(Scenario::Server),
            "single-stream" => Ok(Scenario::SingleStream),
            "offline" => Ok(Scenario::Offline),
            _ => Err(BenchError::Setting(format!(
                "scenario {s:?}: use server, single-stream or offline"
            ))),
        }
    }
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Server => "server",
            Scenario::SingleStream => "single-stream",
            Scenario::Offline => "offline",
        }
    }

    /// The percentile MLPerf reports for the scenario.
    pub fn target_percentile(self) -> f64 {
        match self {
            Scenario::SingleStream => 0.90,
            _ => 0.99,
        }
    }

    /// Default queries in flight: the server scenario must not throttle itself (that would be
    /// coordinated omission again), offline needs a window big enough to fill a batching server.
    pub fn default_concurrency(self) -> usize {
        match self {
            Scenario::Server => 4096,
            Scenario::SingleStream => 1,
            Scenario::Offline => 64,
        }
    }
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub target: Target,
    pub protocol: Protocol,
    /// Speak gRPC (`--protocol kserve_v2_grpc`): an h2c client, and a query fails on a non-OK
    /// `grpc-status` as it does on a 5xx.
    pub grpc: bool,
    pub scenario: Scenario,
    /// Server scenario arrival rate.
    pub qps: f64,
    pub duration: Duration,
    pub min_queries: u64,
    pub warmup: Duration,
    pub seed: u64,
    /// `None`: the scenario's default.
    pub concurrency_limit: Option<usize>,
    pub requests: Arc<Vec<RequestTemplate>>,
    /// p99 latency SLO, seconds.
    pub slo_p99: Option<f64>,
    /// p99 time-to-first-token bound for streaming targets, seconds.
    pub slo_ttft_p99: Option<f64>,
    /// p99 time-per-output-token bound for streaming targets, seconds.
    pub slo_tpot_p99: Option<f64>,
    /// Failed queries tolerated in a valid run, as a fraction of all.
    pub max_error_ratio: f64,
    pub timeout: Duration,
    /// A sidecar's `/metrics` URL to read joules per inference from after the run.
    pub sidecar_metrics: Option<String>,
    /// Draw a progress bar / progress lines on stderr.
    pub progress: bool,
    /// Server scenario with a p99 SLO: end the run as soon as its p99 is certain to be over the
    /// SLO (see `run::certain_failure`), instead of sending and awaiting every scheduled query.
    /// `--sweep` sets it: a step past saturation otherwise runs for minutes.
    pub stop_when_certain: bool,
    /// Server scenario: how arrivals are spaced at `qps` (Poisson unless `--arrival` says).
    pub arrival: Arrival,
    /// Per-request bounds (`--slo-ttft`, `--slo-tpot`, `--slo-e2e`): each request is classified
    /// by the sidecar's goodput rule; goodput is the rate of those meeting every bound.
    pub slo: SloConfig,
    /// Sweeps with per-request bounds: the least share of a step's requests that must meet
    /// them for the step to pass.
    pub slo_attainment: f64,
    /// The LLM workload behind `requests` (one template per item), for the lengths asked.
    pub workload: Option<Arc<Workload>>,
    /// The engine's own `/metrics` URL, sampled for saturation while an LLM run goes.
    pub engine_metrics: Option<String>,
    /// The request (index into `requests`, cycled) a run starts with. The measured phase starts
    /// after the warmup's requests and each sweep step after the previous one's, so a server's
    /// prefix cache does not see a prompt again until the workload cycles.
    pub first_item: u64,
}

impl BenchConfig {
    /// A config with the defaults the CLI uses, for `target`.
    pub fn new(target: Target, protocol: Protocol, scenario: Scenario) -> Self {
        Self {
            target,
            protocol,
            grpc: false,
            scenario,
            qps: 10.0,
            duration: Duration::from_secs(60),
            min_queries: 0,
            warmup: Duration::ZERO,
            seed: 1,
            concurrency_limit: None,
            requests: Arc::new(vec![super::requests::default_for(protocol)]),
            slo_p99: None,
            slo_ttft_p99: None,
            slo_tpot_p99: None,
            max_error_ratio: DEFAULT_MAX_ERROR_RATIO,
            timeout: Duration::from_secs(60),
            sidecar_metrics: None,
            progress: false,
            stop_when_certain: false,
            arrival: Arrival::Poisson,
            slo: SloConfig::default(),
            slo_attainment: DEFAULT_SLO_ATTAINMENT,
            workload: None,
            engine_metrics: None,
            first_item: 0,
        }
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency_limit
            .unwrap_or_else(|| self.scenario.default_concurrency())
            .max(1)
    }

    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Setting(m.to_string()));
        if self.scenario == Scenario::Server && !(self.qps.is_finite() && self.qps > 0.0) {
            return bad("--qps must be a positive number");
        }
        if self.duration.is_zero() && self.min_queries == 0 {
            return bad("--duration or --min-queries must be above zero");
        }
        if !(0.0..=1.0).contains(&self.max_error_ratio) {
            return bad("--max-error-ratio must be within 0..1");
        }
        for (name, v) in [
            ("--slo-p99", self.slo_p99),
            ("--slo-ttft-p99", self.slo_ttft_p99),
            ("--slo-tpot-p99", self.slo_tpot_p99),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                return Err(BenchError::Setting(format!("{name} must be positive")));
            }
        }
        for (name, v) in [
            ("--slo-ttft", self.slo.ttft_secs),
            ("--slo-tpot", self.slo.tpot_secs),
            ("--slo-e2e", self.slo.e2e_secs),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(BenchError::Setting(format!("{name} must be positive")));
            }
        }
        if !(self.slo_attainment > 0.0 && self.slo_attainment <= 1.0) {
            return bad("--slo-attainment must be within (0, 1]");
        }
        if self.requests.is_empty() {
            return bad("no requests to send");
        }
        Ok(())
    }
}

/// One failure in a thousand: a stray reset in a long run should not void it, a failing
/// server should.
pub const DEFAULT_MAX_ERROR_RATIO: f64 = 0.001;

/// A step meets a per-request SLO when 99% of its requests do: the same percentile the p99
/// bounds (`--slo-p99`, `--slo-ttft-p99`) use, so the two kinds of SLO agree.
pub const DEFAULT_SLO_ATTAINMENT: f64 = 0.99;
