//! The `inferwatch` command: CLI wiring only; everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use inferwatch::bench::{self, prom, report::ReportFile, run, sweep};
use inferwatch::quality::arl;
use inferwatch::{app, config, demo, telemetry};

#[derive(Parser)]
#[command(
    name = "inferwatch",
    version,
    about = "Sidecar proxy and Prometheus exporter for ML inference: tail latency, energy per inference, silent accuracy drift"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar daemon (proxy + admin server) until SIGTERM/SIGINT.
    Run {
        /// TOML config file; without it, defaults plus INFERWATCH__SECTION__KEY env overrides.
        #[arg(long, env = "INFERWATCH_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a config (file + env overrides); exit 0 if valid, 2 with every error listed.
    CheckConfig {
        /// TOML config file; without it, defaults plus env overrides are checked.
        #[arg(long, env = "INFERWATCH_CONFIG")]
        config: Option<PathBuf>,
    },
    /// MLPerf-style load generator against a target URL: server (open-loop Poisson),
    /// single-stream or offline scenario, early-stopping verdict, VALID/INVALID against a p99
    /// SLO; `--sweep` finds the highest QPS within the SLO. Exit 0 when VALID (sweep: a
    /// capacity was found), 1 when not, 2 on bad usage.
    Bench(Box<BenchArgs>),
    /// Capacity report from live data through the Prometheus HTTP API (also Thanos/Mimir): per
    /// route and model, peak and typical QPS per replica, p99 by load band, J/inference,
    /// headroom against the SLO and replicas needed for a target QPS.
    Report(Box<ReportArgs>),
    /// The embedded demo: a model server (iris, ONNX Runtime, KServe V2), the sidecar in front of
    /// it, traffic, and after --drift-after an injected drift, with a live summary. Needs the
    /// ONNX Runtime library (scripts/demo.sh sets it up).
    Demo(DemoArgs),
    /// Run-length analysis of SPC alarm settings: pick limits by the false-alarm rate you accept.
    Spc {
        #[command(subcommand)]
        command: SpcCommand,
    },
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Stop after this long and exit 0 (e.g. 300, 90s, 5m); default: until Ctrl-C/SIGTERM.
    #[arg(long)]
    duration: Option<String>,
    /// When to inject the drift (input shift and a bad model rollout), e.g. 120, 30s, 2m.
    #[arg(long, default_value = "120")]
    drift_after: String,
    /// Mean request rate of the demo's traffic (Poisson arrivals).
    #[arg(long, default_value_t = 50.0)]
    qps: f64,
    /// Where the sidecar's proxy listens.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: std::net::SocketAddr,
    /// Where the sidecar's admin server (/metrics, /status) listens.
    #[arg(long, default_value = "127.0.0.1:9464")]
    admin: std::net::SocketAddr,
    /// The ONNX Runtime library (libonnxruntime.so.<version>); default: $ORT_DYLIB_PATH, then
    /// /usr/local/lib and /usr/lib.
    #[arg(long)]
    onnx_library: Option<PathBuf>,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Target URL, e.g. http://127.0.0.1:8081/v2/models/m/infer (the sidecar's proxy port to
    /// measure through it, the model server to measure it alone).
    url: String,
    /// server (open loop, Poisson arrivals at --qps, latency from the scheduled send time),
    /// single-stream (one query at a time; reports p90) or offline (window of
    /// --concurrency-limit queries kept full; reports throughput).
    #[arg(long, default_value = "server", value_parser = ["server", "single-stream", "offline"])]
    scenario: String,
    /// Payload protocol of the target: picks the default request body, and `openai` turns on
    /// TTFT/TPOT measurement of streamed (SSE) responses.
    #[arg(long, default_value = "opaque", value_parser = ["kserve_v2", "openai", "tfserving", "json", "opaque"])]
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
    /// Seed of the Poisson arrival schedule: the same seed gives the same schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most queries in flight at once (default: server 4096, single-stream 1, offline 64).
    /// Server-scenario queries waiting for a slot keep their scheduled start time.
    #[arg(long)]
    concurrency_limit: Option<usize>,
    /// JSON Lines file of queries, cycled in order. Each line is a JSON body POSTed to the URL,
    /// or a record {"method","path","body","headers"} ("path" replaces the URL's path, a string
    /// "body" is sent as-is). Without it: a small valid body for --protocol (GET for opaque).
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
    #[arg(long, default_value_t = run::DEFAULT_MAX_ERROR_RATIO)]
    max_error_ratio: f64,
    /// Per-query timeout; a query over it counts as a failed query.
    #[arg(long, default_value = "60s")]
    timeout: String,
    /// A sidecar's /metrics URL (e.g. http://127.0.0.1:9464/metrics): after each run, joules
    /// per inference are read from it when an energy source is up.
    #[arg(long)]
    sidecar_metrics: Option<String>,
    /// Search the highest server-scenario QPS whose p99 meets --slo-p99: bracketing from --qps,
    /// then bisection; each step runs --duration and at least 662 queries.
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
    /// Write report.json, report.md and report.html (inline SVG charts) into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the summary as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// No progress bar or progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct ReportArgs {
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

#[derive(Subcommand)]
enum SpcCommand {
    /// Average and median run length of a chart setting: simulated with the daemon's own chart
    /// code, beside the exact value (closed form or Markov chain).
    Arl {
        #[command(flatten)]
        chart: ChartArgs,
        /// Step shift of the mean in sigma units, present from the first point (0 = in control).
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        shift: f64,
        /// Simulated run lengths.
        #[arg(long, default_value_t = 10_000)]
        runs: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Longest simulated run; longer ones are cut there and reported.
        #[arg(long, default_value_t = 10_000_000)]
        max_len: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Find the limit (L, or h for CUSUM) that gives a target in-control ARL.
    Calibrate {
        #[command(flatten)]
        chart: ChartArgs,
        /// The in-control average run length wanted (subgroups between false alarms).
        #[arg(long)]
        target: f64,
        /// Also simulate this many in-control runs at the limit found (0 = no simulation).
        #[arg(long, default_value_t = 0)]
        runs: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct ChartArgs {
    /// shewhart (rule 1), we (Western Electric rules 1-4), ewma, cusum.
    #[arg(long, value_parser = ["shewhart", "we", "ewma", "cusum"])]
    chart: String,
    /// Control limit in sigma units (Shewhart, WE rule 1, EWMA's L).
    #[arg(long, default_value_t = 3.0)]
    limit: f64,
    /// EWMA weight.
    #[arg(long, default_value_t = 0.1)]
    lambda: f64,
    /// EWMA limits: exact (time-varying, as the daemon's default) or asymptotic (as the
    /// published tables).
    #[arg(long, default_value = "exact", value_parser = ["exact", "asymptotic"])]
    ewma_limits: String,
    /// CUSUM reference value (sigma units).
    #[arg(long, default_value_t = 0.5)]
    k: f64,
    /// CUSUM decision interval (sigma units).
    #[arg(long, default_value_t = 5.0)]
    h: f64,
}

impl ChartArgs {
    fn spec(&self) -> arl::Spec {
        match self.chart.as_str() {
            "shewhart" => arl::Spec::Shewhart { limit: self.limit },
            "we" => arl::Spec::We { limit: self.limit },
            "ewma" => arl::Spec::Ewma {
                lambda: self.lambda,
                limit: self.limit,
                exact: self.ewma_limits == "exact",
            },
            _ => arl::Spec::Cusum {
                k: self.k,
                h: self.h,
            },
        }
    }

    fn family(&self) -> (arl::Family, f64) {
        match self.chart.as_str() {
            "shewhart" => (arl::Family::Shewhart, 0.0),
            "we" => (arl::Family::We, 0.0),
            "ewma" => (
                arl::Family::Ewma {
                    exact: self.ewma_limits == "exact",
                },
                self.lambda,
            ),
            _ => (arl::Family::Cusum, self.k),
        }
    }
}

fn spc(command: SpcCommand) -> ExitCode {
    let usage = |e: String| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_USAGE)
    };
    match command {
        SpcCommand::Arl {
            chart,
            shift,
            runs,
            seed,
            max_len,
            json,
        } => {
            let spec = chart.spec();
            if let Err(e) = spec.validate() {
                return usage(e);
            }
            if !shift.is_finite() || runs == 0 || max_len == 0 {
                return usage("--shift must be finite, --runs and --max-len at least 1".into());
            }
            let report = arl::arl_report(spec, shift, runs, seed, max_len);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                println!("{report}");
            }
            ExitCode::SUCCESS
        }
        SpcCommand::Calibrate {
            chart,
            target,
            runs,
            seed,
            json,
        } => {
            let (family, shape) = chart.family();
            let found = match arl::calibrate(family, shape, target) {
                Ok(c) => c,
                Err(e) => return usage(e),
            };
            let check = (runs > 0).then(|| arl::simulate(&found.spec, 0.0, runs, seed, 10_000_000));
            if json {
                let v =
                    serde_json::json!({"calibrated": found, "target": target, "simulated": check});
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                let name = if family == arl::Family::Cusum {
                    "h"
                } else {
                    "L"
                };
                println!(
                    "{}: {name} = {:.4} gives exact ARL0 {:.2} (target {target})",
                    found.spec, found.limit, found.exact_arl0
                );
                if let Some(s) = check {
                    println!(
                        "simulated ARL0 over {} runs: {:.2} (95% CI {:.2} .. {:.2}), median {}",
                        s.runs, s.arl, s.ci_low, s.ci_high, s.median
                    );
                }
            }
            ExitCode::SUCCESS
        }
    }
}

const EXIT_USAGE: u8 = 2;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn secs(flag: &str, v: &str) -> anyhow::Result<f64> {
    bench::parse_duration(v)
        .map(|d| d.as_secs_f64())
        .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

fn bench_config(a: &BenchArgs) -> anyhow::Result<run::BenchConfig> {
    let protocol: inferwatch::routes::config::Protocol =
        serde_json::from_value(serde_json::Value::String(a.protocol.clone()))?;
    let target = bench::client::Target::parse(&a.url)?;
    let mut cfg = run::BenchConfig::new(target, protocol, a.scenario.parse()?);
    cfg.qps = a.qps;
    cfg.duration = bench::parse_duration(&a.duration)?;
    cfg.min_queries = a.min_queries;
    cfg.warmup = bench::parse_duration(&a.warmup)?;
    cfg.seed = a.seed;
    cfg.concurrency_limit = a.concurrency_limit;
    if let Some(path) = &a.requests {
        cfg.requests = std::sync::Arc::new(bench::requests::load(&path.display().to_string())?);
    }
    cfg.slo_p99 = a
        .slo_p99
        .as_deref()
        .map(|v| secs("--slo-p99", v))
        .transpose()?;
    cfg.slo_ttft_p99 = a
        .slo_ttft_p99
        .as_deref()
        .map(|v| secs("--slo-ttft-p99", v))
        .transpose()?;
    cfg.slo_tpot_p99 = a
        .slo_tpot_p99
        .as_deref()
        .map(|v| secs("--slo-tpot-p99", v))
        .transpose()?;
    cfg.max_error_ratio = a.max_error_ratio;
    cfg.timeout = bench::parse_duration(&a.timeout)?;
    cfg.sidecar_metrics = a.sidecar_metrics.clone();
    cfg.progress = !a.quiet;
    cfg.validate()?;
    Ok(cfg)
}

fn bench_cmd(a: &BenchArgs) -> ExitCode {
    let cfg = match bench_config(a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            if a.sweep {
                let sc = sweep::SweepConfig {
                    base: cfg,
                    start_qps: a.qps,
                    min_qps: a.sweep_min_qps,
                    max_qps: a.sweep_max_qps,
                    tolerance: a.sweep_tolerance,
                    max_steps: a.sweep_max_steps,
                };
                let r = sweep::run_sweep(&sc).await?;
                let ok = r.capacity_qps.is_some();
                let text = sweep::render_sweep_text(&r);
                Ok((ReportFile::sweep(r), text, ok))
            } else {
                let r = run::run_bench(&cfg).await?;
                let ok = r.valid;
                let text = run::render_text(&r);
                Ok((ReportFile::bench(r), text, ok))
            }
        })
    });
    finish(result, a.out.as_deref(), a.json)
}

/// Print (text or JSON), write the report files, and pick the exit code.
fn finish(
    result: anyhow::Result<(ReportFile, String, bool)>,
    out: Option<&std::path::Path>,
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

fn report_config(a: &ReportArgs) -> anyhow::Result<prom::CapacityConfig> {
    let mut cfg = prom::CapacityConfig::new(&a.prometheus, bench::parse_duration(&a.range)?);
    cfg.end = a.end;
    cfg.step = a.step.as_deref().map(bench::parse_duration).transpose()?;
    cfg.rate_window = a
        .rate_window
        .as_deref()
        .map(bench::parse_duration)
        .transpose()?;
    cfg.slo_p99 = a
        .slo_p99
        .as_deref()
        .map(|v| secs("--slo-p99", v))
        .transpose()?;
    cfg.target_qps = a.target_qps;
    cfg.selector = a.selector.clone();
    cfg.replica_label = a.replica_label.clone();
    cfg.bands = a.bands;
    Ok(cfg)
}

fn report_cmd(a: &ReportArgs) -> ExitCode {
    let cfg = match report_config(a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let client = bench::client::http_client();
            let r = prom::capacity_report(&client, &cfg).await?;
            let text = prom::render_text(&r);
            let ok = !r.routes.is_empty();
            Ok((ReportFile::capacity(r), text, ok))
        })
    });
    finish(result, a.out.as_deref(), a.json)
}

fn demo_cmd(a: &DemoArgs) -> ExitCode {
    let opts = (|| -> anyhow::Result<demo::DemoOptions> {
        Ok(demo::DemoOptions {
            duration: a
                .duration
                .as_deref()
                .map(|v| bench::parse_duration(v).map_err(|e| anyhow::anyhow!("--duration: {e}")))
                .transpose()?,
            drift_after: bench::parse_duration(&a.drift_after)
                .map_err(|e| anyhow::anyhow!("--drift-after: {e}"))?,
            qps: a.qps,
            listen: a.listen,
            admin: a.admin,
            onnx_library: a.onnx_library.clone(),
        })
    })();
    let opts = match opts {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    telemetry::init(&telemetry::config::LogConfig {
        level: demo::log_level().into(),
        ..telemetry::config::LogConfig::default()
    });
    match runtime().map(|rt| rt.block_on(demo::run(opts))) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(demo::DemoError::Usage(e))) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_or_report(path: Option<&PathBuf>) -> Result<config::Config, ExitCode> {
    config::load(path.map(|p| p.as_path())).map_err(|errs| {
        let name = path.map_or("<defaults+env>".to_string(), |p| p.display().to_string());
        eprintln!("error: {} problem(s) in {name}", errs.0.len());
        for e in &errs.0 {
            eprintln!("  {e}");
        }
        ExitCode::from(EXIT_USAGE)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Spc { command } => spc(command),
        Command::Bench(args) => bench_cmd(&args),
        Command::Report(args) => report_cmd(&args),
        Command::Demo(args) => demo_cmd(&args),
        Command::CheckConfig { config } => match load_or_report(config.as_ref()) {
            Ok(_) => {
                let name = config.map_or("<defaults+env>".to_string(), |p| p.display().to_string());
                println!("config ok: {name}");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config } => {
            let cfg = match load_or_report(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            telemetry::init(&cfg.log);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(async move {
                let app = match app::App::build(cfg) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot build inferwatch");
                        return ExitCode::FAILURE;
                    }
                };
                let (proxy, admin) = match app.bind().await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start");
                        return ExitCode::FAILURE;
                    }
                };
                app.serve(proxy, admin, app::shutdown_signal()).await;
                ExitCode::SUCCESS
            })
        }
    }
}
