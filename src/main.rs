//! The `inferwatch` command: CLI wiring only; everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use inferwatch::quality::arl;
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
    /// Run-length analysis of SPC alarm settings: pick limits by the false-alarm rate you accept.
    Spc {
        #[command(subcommand)]
        command: SpcCommand,
    },
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
