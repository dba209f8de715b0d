//! Logging set-up: tracing-subscriber writing `text` or `json` lines to stderr, filtered by
//! `RUST_LOG` when set, else by `log.level` from the config.

pub mod config;

use tracing_subscriber::{fmt, EnvFilter};

use config::{LogConfig, LogFormat};

/// Install the global subscriber. Returns false if one was already installed (tests, embedding).
pub fn init(cfg: &LogConfig) -> bool {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: journald and log shippers get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
            .is_ok(),
        LogFormat::Text => builder.with_target(false).try_init().is_ok(),
    }
}
