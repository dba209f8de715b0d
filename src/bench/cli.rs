//! `inferwatch bench` and `inferwatch report`: their flags, the conversion of the flags to a
//! [`BenchConfig`] / [`CapacityConfig`], and the command bodies, which share one way to print the
//! result, write the report files and pick the exit code ([`finish`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::capacity::{self, CapacityConfig};
use super::client::{http_client, Target};
use super::config::{BenchConfig, Scenario, DEFAULT_MAX_ERROR_RATIO, DEFAULT_SLO_ATTAINMENT};
use super::llm::{self, arrival::Arrival};
use super::report::ReportFile;
use super::sweep::{self, SweepConfig};
use super::{parse_duration, requests};
use super::{run, text};
use crate::cli::{runtime, usage};
use crate::routes::config::Protocol;

/// `inferwatch bench`'s flags (the subcommand's about text is the doc of its `Command` variant).
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Target URL, e.g. http://127.0.0.1:8081/v2/models/m/infer (the sidecar's proxy port to
    /// measure through it, the model server to measure it alone).
    url: String,
    /// server (open loop, Poisson arrivals at --qps, latency from the scheduled send time),
    /// single-stream (one query at a time; reports p90) or offline (window of
    /// --concurrency-limit queries kept full; reports throughput).
    #[arg(long, default_value = "server", value_parser = ["server", "single-stream", "offline"])]
    scenario: String,
    /// Payload protocol of the target: picks the default request body, and `openai` turns on
    /// token workloads and figures (see the LLM section below: synthetic or dataset prompts,
    /// TTFT, ITL, TPOT, token throughput, goodput). `kserve_v2_grpc` speaks the Open
    /// Inference Protocol's gRPC API over h2c: the URL's path names the model
    /// (http://host:8081/iris), queries are `ModelInfer` calls, a non-OK grpc-status fails one.
    #[arg(long, default_value = "opaque", value_parser = ["kserve_v2", "kserve_v2_grpc", "openai", "tfserving", "json", "opaque"])]
    protocol: String,
    /// Server scenario: mean arrival rate (queries per second); with --sweep, the first rate tried.
    #[arg(long, default_value_t = 10.0)]
    qps: f64,
    /// Least measured time (e.g. 60s, 5m); the run also lasts until --min-queries are issued.
    #[arg(long, default_value = "60s")]
    duration: String,
    /// Least number of measured queries.
    #[arg(long, default_value_t = 0)]
    min_queries: u64,
    /// Time spent sending the same load before measuring, results dropped (e.g. 10s).
    #[arg(long, default_value = "0s")]
    warmup: String,
    /// Seed of the arrival schedule and of synthetic prompts and lengths: the same seed gives
    /// the same schedule and the same workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most queries in flight at once (default: server 4096, single-stream 1, offline 64).
    /// Server-scenario queries waiting for a slot keep their scheduled start time.
    #[arg(long)]
    concurrency_limit: Option<usize>,
    /// JSON Lines file of queries, cycled in order. Each line is a JSON body POSTed to the URL,
    /// or a record {"method","path","body","headers"} ("path" replaces the URL's path, a string
    /// "body" is sent as-is). Without it: a small valid body for --protocol (GET for opaque);
    /// for openai, the synthetic or --dataset workload.
    #[arg(long)]
    requests: Option<PathBuf>,
    /// p99 latency SLO (e.g. 50ms): the run is VALID only if its p99 is within it and early
    /// stopping can claim that at 99% confidence.
    #[arg(long)]
    slo_p99: Option<String>,
    /// p99 time-to-first-token bound for streaming (openai) targets (e.g. 500ms).
    #[arg(long)]
    slo_ttft_p99: Option<String>,
    /// p99 time-per-output-token bound for streaming (openai) targets (e.g. 50ms).
    #[arg(long)]
    slo_tpot_p99: Option<String>,
    /// Failed queries (connect errors, timeouts, 4xx/5xx, broken bodies) a VALID run may have,
    /// as a fraction of all queries.
    #[arg(long, default_value_t = DEFAULT_MAX_ERROR_RATIO)]
    max_error_ratio: f64,
    /// Per-query timeout; a query over it counts as a failed query.
    #[arg(long, default_value = "60s")]
    timeout: String,
    /// A sidecar's /metrics URL (e.g. http://127.0.0.1:9464/metrics): after each run, joules
    /// per inference (and per output token, openai) are read from it when an energy source is
    /// up; for openai without --engine-metrics, its inferwatch_engine_* gauges give the
    /// engine's saturation during each run.
    #[arg(long)]
    sidecar_metrics: Option<String>,
    /// Search the highest server-scenario QPS whose p99 meets --slo-p99: bracketing from --qps,
    /// then bisection; each step runs --duration and at least 662 queries. For openai the
    /// token SLOs judge steps too (--slo-ttft/--slo-tpot/--slo-e2e with --slo-attainment,
    /// --slo-ttft-p99, --slo-tpot-p99; --slo-p99 optional) and the answer is the passing step
    /// with the highest goodput.
    #[arg(long)]
    sweep: bool,
    /// Sweep: lowest rate tried before giving up.
    #[arg(long, default_value_t = 0.1)]
    sweep_min_qps: f64,
    /// Sweep: highest rate tried.
    #[arg(long, default_value_t = 100_000.0)]
    sweep_max_qps: f64,
    /// Sweep: stop when the failing rate is within this fraction above the passing one.
    #[arg(long, default_value_t = 0.05)]
    sweep_tolerance: f64,
    /// Sweep: most steps.
    #[arg(long, default_value_t = 16)]
    sweep_max_steps: usize,
    /// Write report.json, report.md and report.html (inline SVG charts) into this directory;
    /// with --protocol openai also requests.jsonl (one record per request) and workload.jsonl
    /// (the prompts sent, replayable with --dataset).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the summary as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// No progress bar or progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    llm: LlmArgs,
}

/// The flags of token workloads (`--protocol openai`).
#[derive(clap::Args)]
#[command(next_help_heading = "LLM workloads (--protocol openai)")]
pub struct LlmArgs {
    /// Prompts from a file: a ShareGPT JSON array ({"conversations": [{"from": "human",
    /// "value": ...}, {"from": "gpt", "value": ...}]}: the first human turn is the prompt, the
    /// gpt answer's length in tokens the wanted output length) or JSON Lines of {"prompt": ...,
    /// "output_tokens": N}. Without it (and without --requests): synthetic prompts.
    #[arg(long, conflicts_with = "requests")]
    dataset: Option<PathBuf>,
    /// Synthetic prompt length in tokens: MEAN[,STDDEV[,MIN[,MAX]]], normal, rounded and
    /// clipped. Sized with the server's tokenizer when it has an endpoint for it (llama.cpp,
    /// vLLM, TGI), else one token per word of a fixed vocabulary of common English words.
    #[arg(long, default_value = "128", value_name = "MEAN[,STDDEV[,MIN[,MAX]]]")]
    input_tokens: String,
    /// Wanted output length in tokens: MEAN[,STDDEV[,MIN[,MAX]]]; sent as max_tokens, and as
    /// min_tokens with ignore_eos so servers that honour them (vLLM; llama-cpp-python honours
    /// min_tokens) answer exactly that long.
    #[arg(long, default_value = "64", value_name = "MEAN[,STDDEV[,MIN[,MAX]]]")]
    output_tokens: String,
    /// The request's "model" field (default: the first model the server lists at /v1/models).
    #[arg(long)]
    model: Option<String>,
    /// Server scenario: how arrivals are spaced at --qps: poisson, gamma (see --burstiness) or
    /// constant.
    #[arg(long, default_value = "poisson", value_parser = ["poisson", "gamma", "constant"])]
    arrival: String,
    /// --arrival gamma: the gamma shape; 1 is Poisson, below 1 burstier, above 1 smoother (the
    /// gaps' coefficient of variation is 1/sqrt(F)).
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    burstiness: f64,
    /// Closed loop: N users, each sending its next request when its last one finished (latency
    /// from each request's own send). Replaces the open-loop rate.
    #[arg(long, conflicts_with_all = ["scenario", "concurrency_limit"], value_name = "N")]
    concurrency: Option<usize>,
    /// Sweep over closed-loop users instead of rate, e.g. 1,2,4,8: one step per level, judged
    /// by the SLOs; the answer is the passing step with the highest goodput.
    #[arg(long, conflicts_with_all = ["sweep", "concurrency"], value_name = "LIST")]
    sweep_concurrency: Option<String>,
    /// Per-request TTFT bound for goodput (e.g. 500ms): a request meets the SLO when it meets
    /// every bound given, classified as the sidecar classifies live requests.
    #[arg(long)]
    slo_ttft: Option<String>,
    /// Per-request time-per-output-token bound for goodput (e.g. 50ms).
    #[arg(long)]
    slo_tpot: Option<String>,
    /// Per-request end-to-end bound for goodput (e.g. 10s).
    #[arg(long)]
    slo_e2e: Option<String>,
    /// With per-request bounds: the least share of requests meeting them for a run to be
    /// VALID and a sweep step to pass.
    #[arg(long, default_value_t = DEFAULT_SLO_ATTAINMENT)]
    slo_attainment: f64,
    /// The model server's own /metrics (vLLM, SGLang, TGI, Triton, llama.cpp): requests waiting
    /// and running and KV-cache use are sampled each second while a step runs. Without it,
    /// --sidecar-metrics gives the same from the sidecar's inferwatch_engine_* gauges.
    #[arg(long)]
    engine_metrics: Option<String>,
}

/// `inferwatch report`'s flags.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// Base URL of the Prometheus HTTP API (Prometheus, Thanos Query, Mimir), e.g.
    /// http://prometheus:9090.
    #[arg(long)]
    prometheus: String,
    /// How far back to look (e.g. 7d, 24h, 30m).
    #[arg(long, default_value = "7d")]
    range: String,
    /// End of the range as unix seconds (default: now).
    #[arg(long)]
    end: Option<f64>,
    /// Query resolution (default: range / 500, at least 1s).
    #[arg(long)]
    step: Option<String>,
    /// rate() window (default: the larger of two steps and 1m; at least two scrape intervals).
    #[arg(long)]
    rate_window: Option<String>,
    /// p99 latency SLO (e.g. 50ms): gives the capacity per replica and the headroom.
    #[arg(long)]
    slo_p99: Option<String>,
    /// Fleet QPS to size for: gives the replicas needed.
    #[arg(long)]
    target_qps: Option<f64>,
    /// Extra PromQL label matchers for every query, e.g. 'namespace="prod",job="model"'.
    #[arg(long, default_value = "")]
    selector: String,
    /// The label that tells replicas (sidecars) apart.
    #[arg(long, default_value = "instance")]
    replica_label: String,
    /// Number of equal-width load bands between zero and the peak per-replica QPS.
    #[arg(long, default_value_t = 5)]
    bands: usize,
    /// Write report.json, report.md and report.html into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// A duration flag's value; an error names the flag.
pub fn duration(flag: &str, v: &str) -> anyhow::Result<Duration> {
    parse_duration(v).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

/// An optional duration flag in seconds (the SLO bounds); an error names the flag.
pub fn secs(flag: &str, v: Option<&str>) -> anyhow::Result<Option<f64>> {
    v.map(|v| duration(flag, v).map(|d| d.as_secs_f64()))
        .transpose()
}

/// The run settings the flags describe, validated.
pub fn bench_config(a: &BenchArgs) -> anyhow::Result<BenchConfig> {
    let (name, grpc) = match a.protocol.as_str() {
        "kserve_v2_grpc" => ("kserve_v2", true),
        other => (other, false),
    };
    let protocol: Protocol = serde_json::from_value(serde_json::Value::String(name.into()))?;
    let target = Target::parse(&a.url)?;
    let mut cfg = BenchConfig::new(target, protocol, a.scenario.parse()?);
    if grpc {
        cfg.grpc = true;
        let model = cfg.target.model_from_path().ok_or_else(|| {
            anyhow::anyhow!("--protocol kserve_v2_grpc: the URL's path names the model, e.g. http://127.0.0.1:8081/iris")
        })?;
        cfg.requests = Arc::new(vec![requests::default_grpc(&model)]);
    }
    cfg.qps = a.qps;
    cfg.duration = parse_duration(&a.duration)?;
    cfg.min_queries = a.min_queries;
    cfg.warmup = parse_duration(&a.warmup)?;
    cfg.seed = a.seed;
    cfg.concurrency_limit = a.concurrency_limit;
    if let Some(path) = &a.requests {
        cfg.requests = Arc::new(requests::load(&path.display().to_string())?);
    }
    cfg.slo_p99 = secs("--slo-p99", a.slo_p99.as_deref())?;
    cfg.slo_ttft_p99 = secs("--slo-ttft-p99", a.slo_ttft_p99.as_deref())?;
    cfg.slo_tpot_p99 = secs("--slo-tpot-p99", a.slo_tpot_p99.as_deref())?;
    cfg.max_error_ratio = a.max_error_ratio;
    cfg.timeout = parse_duration(&a.timeout)?;
    cfg.sidecar_metrics = a.sidecar_metrics.clone();
    cfg.progress = !a.quiet;
    let l = &a.llm;
    let llm_only = [
        ("--dataset", l.dataset.is_some()),
        ("--concurrency", l.concurrency.is_some()),
        ("--sweep-concurrency", l.sweep_concurrency.is_some()),
        ("--slo-ttft", l.slo_ttft.is_some()),
        ("--slo-tpot", l.slo_tpot.is_some()),
        ("--engine-metrics", l.engine_metrics.is_some()),
    ];
    if cfg.protocol != Protocol::Openai {
        if let Some((flag, _)) = llm_only.iter().find(|(_, set)| *set) {
            anyhow::bail!("{flag} needs --protocol openai");
        }
    }
    cfg.arrival = Arrival::from_flags(&l.arrival, l.burstiness)?;
    if let Some(n) = l.concurrency {
        anyhow::ensure!(n > 0, "--concurrency must be at least 1");
        cfg.scenario = Scenario::Offline;
        cfg.concurrency_limit = Some(n);
    }
    cfg.slo.ttft_secs = secs("--slo-ttft", l.slo_ttft.as_deref())?.unwrap_or(0.0);
    cfg.slo.tpot_secs = secs("--slo-tpot", l.slo_tpot.as_deref())?.unwrap_or(0.0);
    cfg.slo.e2e_secs = secs("--slo-e2e", l.slo_e2e.as_deref())?.unwrap_or(0.0);
    cfg.slo_attainment = l.slo_attainment;
    cfg.engine_metrics = l.engine_metrics.clone();
    cfg.validate()?;
    Ok(cfg)
}

/// The workload to prepare for `cfg` (OpenAI targets without --requests), if any.
fn workload_spec(a: &BenchArgs) -> anyhow::Result<Option<llm::WorkloadSpec>> {
    if a.protocol != "openai" || a.requests.is_some() {
        return Ok(None);
    }
    let l = &a.llm;
    Ok(Some(llm::WorkloadSpec {
        dataset: l.dataset.as_ref().map(|p| p.display().to_string()),
        input: l
            .input_tokens
            .parse()
            .map_err(|e| anyhow::anyhow!("--input-tokens: {e}"))?,
        output: l
            .output_tokens
            .parse()
            .map_err(|e| anyhow::anyhow!("--output-tokens: {e}"))?,
        model: l.model.clone(),
        seed: a.seed,
    }))
}

/// How many distinct items a run needs (it cycles through them after that).
fn items_needed(a: &BenchArgs, cfg: &BenchConfig) -> usize {
    if a.sweep || a.llm.sweep_concurrency.is_some() {
        return llm::MAX_ITEMS;
    }
    let secs = (cfg.duration + cfg.warmup).as_secs_f64();
    let n = match cfg.scenario {
        Scenario::Server => run::most_queries(secs, cfg.qps, cfg.min_queries),
        // A closed loop's count depends on the server: enough for a few minutes of a fast one.
        _ => cfg.min_queries.max(1024) as f64,
    };
    n.ceil() as usize
}

/// Prepare the LLM workload (when there is one) and put its requests into `cfg`; with `out`,
/// write the prompts to `out/workload.jsonl` (replayable with --dataset).
async fn prepare_workload(
    a: &BenchArgs,
    cfg: &mut BenchConfig,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let Some(spec) = workload_spec(a)? else {
        return Ok(());
    };
    let client = http_client();
    let w = llm::prepare(&client, &cfg.target, &spec, items_needed(a, cfg)).await?;
    if cfg.progress {
        eprintln!(
            "workload: {} items, {}; model {:?}; token counts: {}{}",
            w.items.len(),
            w.source,
            w.model,
            w.tokenizer,
            if w.skipped > 0 {
                format!(
                    "; {} conversations without a prompt and answer skipped",
                    w.skipped
                )
            } else {
                String::new()
            }
        );
    }
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)?;
        let lines: String = w
            .items
            .iter()
            .map(|it| {
                serde_json::json!({"prompt": it.prompt, "output_tokens": it.output_tokens,
                    "input_tokens": it.input_tokens})
                .to_string()
                    + "\n"
            })
            .collect();
        std::fs::write(dir.join("workload.jsonl"), lines)?;
    }
    cfg.requests = Arc::new(w.templates());
    cfg.workload = Some(Arc::new(w));
    Ok(())
}

/// `inferwatch bench`: one run, or a sweep with `--sweep`. Exit 0 when VALID (sweep: a capacity
/// was found), 1 when not, 2 on bad usage.
pub fn bench_cmd(a: &BenchArgs) -> ExitCode {
    let mut cfg = match bench_config(a) {
        Ok(c) => c,
        Err(e) => return usage(format_args!("{e:#}")),
    };
    let levels = match a
        .llm
        .sweep_concurrency
        .as_deref()
        .map(llm::sweep::parse_levels)
    {
        Some(Err(e)) => return usage(format_args!("{e}")),
        Some(Ok(l)) => Some(l),
        None => None,
    };
    if let Err(e) = workload_spec(a) {
        return usage(format_args!("{e:#}"));
    }
    let result = runtime().map_err(anyhow::Error::from).and_then(|rt| {
        rt.block_on(async {
            prepare_workload(a, &mut cfg, a.out.as_deref()).await?;
            if let Some(levels) = &levels {
                let r = llm::sweep::run_concurrency_sweep(&cfg, levels).await?;
                let ok = r.best_goodput.is_some();
                let text = text::sweep_text(&r);
                Ok((ReportFile::sweep(r), text, ok))
            } else if a.sweep {
                let sc = SweepConfig {
                    base: cfg,
                    start_qps: a.qps,
                    min_qps: a.sweep_min_qps,
                    max_qps: a.sweep_max_qps,
                    tolerance: a.sweep_tolerance,
                    max_steps: a.sweep_max_steps,
                };
                let r = sweep::run_sweep(&sc).await?;
                let ok = r.capacity_qps.is_some();
                let text = text::sweep_text(&r);
                Ok((ReportFile::sweep(r), text, ok))
            } else {
                let r = run::run_bench(&cfg).await?;
                let ok = r.valid;
                let text = text::run_text(&r);
                Ok((ReportFile::bench(r), text, ok))
            }
        })
    });
    finish(result, a.out.as_deref(), a.json)
}

/// The report settings the flags describe (validated when the report runs).
pub fn report_config(a: &ReportArgs) -> anyhow::Result<CapacityConfig> {
    let mut cfg = CapacityConfig::new(&a.prometheus, parse_duration(&a.range)?);
    cfg.end = a.end;
    cfg.step = a.step.as_deref().map(parse_duration).transpose()?;
    cfg.rate_window = a.rate_window.as_deref().map(parse_duration).transpose()?;
    cfg.slo_p99 = secs("--slo-p99", a.slo_p99.as_deref())?;
    cfg.target_qps = a.target_qps;
    cfg.selector = a.selector.clone();
    cfg.replica_label = a.replica_label.clone();
    cfg.bands = a.bands;
    Ok(cfg)
}

/// `inferwatch report`: exit 0 when the range held data for at least one route, 1 when not or
/// when Prometheus could not answer, 2 on bad usage.
pub fn report_cmd(a: &ReportArgs) -> ExitCode {
    let cfg = match report_config(a) {
        Ok(c) => c,
        Err(e) => return usage(format_args!("{e:#}")),
    };
    let result = runtime().map_err(anyhow::Error::from).and_then(|rt| {
        rt.block_on(async {
            let r = capacity::capacity_report(&http_client(), &cfg).await?;
            let text = text::capacity_text(&r);
            let ok = !r.routes.is_empty();
            Ok((ReportFile::capacity(r), text, ok))
        })
    });
    finish(result, a.out.as_deref(), a.json)
}

/// Print the result (text, or JSON with `json`), write the report files into `out`, and pick
/// the exit code: 0 when `ok`, 1 otherwise or on any error.
pub fn finish(
    result: anyhow::Result<(ReportFile, String, bool)>,
    out: Option<&Path>,
    json: bool,
) -> ExitCode {
    let (file, text, ok) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        let v = match (&file.bench, &file.sweep, &file.capacity) {
            (Some(b), _, _) => serde_json::to_string_pretty(b),
            (_, Some(s), _) => serde_json::to_string_pretty(s),
            (_, _, Some(c)) => serde_json::to_string_pretty(c),
            _ => Ok(String::new()),
        };
        println!("{}", v.unwrap_or_default());
    } else {
        print!("{text}");
    }
    if let Some(dir) = out {
        if let Err(e) = file.write(dir) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}/report.{{json,md,html}}", dir.display());
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
