//! The `inferwatch` command: CLI wiring only; everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
