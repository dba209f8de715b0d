//! `inferwatch demo`: its flags, turned into [`DemoOptions`], and the command body (logging set
//! up for the demo, the runtime, the exit code).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{log_level, run, DemoError, DemoOptions};
use crate::bench::cli::duration;
use crate::cli::{runtime, usage};
use crate::telemetry;
use crate::telemetry::config::LogConfig;

/// `inferwatch demo`'s flags (the subcommand's about text is the doc of its `Command` variant).
#[derive(clap::Args)]
pub struct DemoArgs {
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
    listen: SocketAddr,
    /// Where the sidecar's admin server (/metrics, /status) listens.
    #[arg(long, default_value = "127.0.0.1:9464")]
    admin: SocketAddr,
    /// The ONNX Runtime library (libonnxruntime.so.<version>); default: $ORT_DYLIB_PATH, then
    /// /usr/local/lib and /usr/lib.
    #[arg(long)]
    onnx_library: Option<PathBuf>,
}

impl DemoArgs {
    /// The demo's options; a bad duration names its flag.
    pub fn options(&self) -> anyhow::Result<DemoOptions> {
        Ok(DemoOptions {
            duration: self
                .duration
                .as_deref()
                .map(|v| duration("--duration", v))
                .transpose()?,
            drift_after: duration("--drift-after", &self.drift_after)?,
            qps: self.qps,
            listen: self.listen,
            admin: self.admin,
            onnx_library: self.onnx_library.clone(),
        })
    }
}

/// `inferwatch demo`: exit 0 when it ends (after `--duration`, or on Ctrl-C/SIGTERM), 2 on bad
/// usage, 1 when it cannot start.
pub fn demo_cmd(a: &DemoArgs) -> ExitCode {
    let opts = match a.options() {
        Ok(o) => o,
        Err(e) => return usage(format_args!("{e:#}")),
    };
    telemetry::init(&LogConfig {
        level: log_level().into(),
        ..LogConfig::default()
    });
    match runtime().map(|rt| rt.block_on(run(opts))) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(DemoError::Usage(e))) => usage(e),
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
