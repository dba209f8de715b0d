//! Logging set-up: tracing-subscriber writing `text` or `json` lines to stderr, filtered by
//! `RUST_LOG` when set, else by `log.level` from the config; the `[log]` section and its rule.

use serde::{Deserialize, Serialize};
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::validator::Validator;

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LogConfig {
    /// `text` (default) or `json` log lines.
    pub format: LogFormat,
    /// A tracing filter directive (`info`, `inferwatch=debug,hyper=warn`); `RUST_LOG` wins if set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

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

/// `log.level` must be a filter tracing-subscriber accepts.
pub fn validate(v: &mut Validator<'_>, l: &LogConfig) {
    let level = l.level.trim();
    if level.is_empty() {
        v.report(
            "log.level",
            "must not be empty, expected a level such as \"info\" or directives such as \"inferwatch=debug,hyper=warn\"".into(),
        );
    } else if let Err(e) = tracing_subscriber::EnvFilter::try_new(level) {
        v.report(
            "log.level",
            format!("invalid filter directive {:?}: {e}", l.level),
        );
    }
}
