//! The `inferwatch` command: CLI wiring only. It parses the command line, loads the config,
//! builds the app and waits for a signal (`run`), or dispatches to a subcommand whose flags and
//! body live with its module (`bench::cli`, `quality::cli`, `demo::cli`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use inferwatch::bench::cli::{bench_cmd, report_cmd, BenchArgs, ReportArgs};
use inferwatch::cli::{runtime, EXIT_USAGE};
use inferwatch::demo::cli::{demo_cmd, DemoArgs};
use inferwatch::quality::cli::{spc, SpcCommand};
use inferwatch::{app, config, telemetry};

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

/// The config file's name for messages.
fn config_name(path: Option<&PathBuf>) -> String {
    path.map_or("<defaults+env>".to_string(), |p| p.display().to_string())
}

/// Load the config, or print every problem and return the usage exit code.
fn load_or_report(path: Option<&PathBuf>) -> Result<config::Config, ExitCode> {
    config::load(path.map(|p| p.as_path())).map_err(|errs| {
        eprintln!(
            "error: {} problem(s) in {}",
            errs.0.len(),
            config_name(path)
        );
        for e in &errs.0 {
            eprintln!("  {e}");
        }
        ExitCode::from(EXIT_USAGE)
    })
}

/// Build the app from a loaded config exactly as `run` does (files read, models loaded,
/// metrics registered), or report why not in `load_or_report`'s format and return the usage
/// exit code. `check-config` runs this too, so it accepts exactly what `run` accepts.
fn build_or_report(cfg: config::Config, path: Option<&PathBuf>) -> Result<app::App, ExitCode> {
    app::App::build(cfg).map_err(|e| {
        eprintln!("error: 1 problem(s) in {}", config_name(path));
        eprintln!("  {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

/// `inferwatch check-config`: load and build, serve nothing.
fn check_config(path: Option<&PathBuf>) -> ExitCode {
    let cfg = match load_or_report(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(async { build_or_report(cfg, path).map(drop) }) {
        Ok(()) => {
            println!("config ok: {}", config_name(path));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `inferwatch run`: build the sidecar from its config, serve until SIGTERM/SIGINT, exit 0.
fn run(config: Option<&PathBuf>) -> ExitCode {
    let cfg = match load_or_report(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    telemetry::init(&cfg.log);
    let nofile = inferwatch::proxy::conns::raise_fd_limit();
    tracing::debug!(?nofile, "open-file limit");
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let app = match build_or_report(cfg, config) {
            Ok(a) => a,
            Err(code) => return code,
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

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run { config } => run(config.as_ref()),
        Command::CheckConfig { config } => check_config(config.as_ref()),
        Command::Bench(args) => bench_cmd(&args),
        Command::Report(args) => report_cmd(&args),
        Command::Demo(args) => demo_cmd(&args),
        Command::Spc { command } => spc(command),
    }
}
