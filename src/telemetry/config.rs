//! `[log]`: the log line format and the filter, with their defaults, and the rule on the filter.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

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

/// `log.level` must be a filter tracing-subscriber accepts.
pub fn validate(v: &mut Validator<'_>, l: &LogConfig) {
    let level = l.level.trim();
    if level.is_empty() {
        v.report(
            "log.level",
            "must not be empty, expected a level such as \"info\" or directives such as \"inferwatch=debug,hyper=warn\"".into(),
        );
    } else if let Err(e) = EnvFilter::try_new(level) {
        v.report(
            "log.level",
            format!("invalid filter directive {:?}: {e}", l.level),
        );
    }
}
