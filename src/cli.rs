//! What the `inferwatch` subcommands share: the usage exit code, how a usage error is printed,
//! and the runtime a subcommand's body runs on. Each subcommand's flags and body live with its
//! module (`bench::cli`, `quality::cli`, `demo::cli`); `main.rs` only dispatches.

use std::fmt::Display;
use std::process::ExitCode;

/// Exit status for bad usage (invalid flags or config), the same as clap's own.
pub const EXIT_USAGE: u8 = 2;

/// Print `error: {e}` on stderr and return the usage exit status.
pub fn usage(e: impl Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_USAGE)
}

/// The multi-threaded runtime every async subcommand runs on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
