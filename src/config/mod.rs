//! Typed configuration: plain data read from TOML + `INFERWATCH__SECTION__KEY` env overrides,
//! validated all at once so that every error is reported with its key path.
//!
//! Each component owns its section: the type, its defaults with their reasons and its rules live
//! in the component's `config` module (`proxy::config`, `routes::config`, `quality::config`, ...).
//! This module holds only what they share: reading file + env ([`load`]), the aggregate
//! [`Config`] that names every section, unknown-key detection with suggestions, the error types
//! and the one report ([`ConfigErrors`]), the [`Validator`](validator::Validator) the components
//! report through with its shared [`checks`], and the rules that need several sections
//! ([`validate()`]).
//!
//! The structs use `#[serde(default)]` on every section and no `deny_unknown_fields`: unknown keys
//! are collected with `serde_ignored` instead, because `deny_unknown_fields` stops at the first one
//! and an operator deserves the whole list in one go.

use serde::{Deserialize, Serialize};

use crate::admin::config::AdminConfig;
use crate::canary::config::{AccuracyConfig, ColdStartConfig, ProbeConfig};
use crate::energy::config::EnergyConfig;
use crate::engine::config::EngineConfig;
use crate::feedback::config::FeedbackConfig;
use crate::latency::config::LatencyConfig;
use crate::proxy::config::ProxyConfig;
use crate::quality::config::QualityConfig;
use crate::shadow::config::ShadowConfig;
use crate::system::config::SystemConfig;
use crate::tap::config::InspectionConfig;
use crate::telemetry::config::LogConfig;

pub mod checks;
mod error;
mod load;
mod validate;
pub mod validator;

pub use error::{ConfigError, ConfigErrors};
pub use load::{load, load_str, load_with_env};
pub use validate::validate;

/// The whole config file: one field per section, each section's type defined by the component
/// that reads it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// `[proxy]` and `[[proxy.routes]]`: the live path (`crate::proxy::config`,
    /// `crate::routes::config`).
    pub proxy: ProxyConfig,
    /// `[admin]`: `/metrics`, `/healthz`, `/readyz`, `/status` (`crate::admin::config`).
    pub admin: AdminConfig,
    /// `[latency]`: histograms and windowed quantiles (`crate::latency::config`).
    pub latency: LatencyConfig,
    /// `[inspection]`: the tap (`crate::tap::config`).
    pub inspection: InspectionConfig,
    /// `[energy]`: energy sources (`crate::energy::config`).
    pub energy: EnergyConfig,
    /// `[system]`: the model server process and the host (`crate::system::config`).
    pub system: SystemConfig,
    /// `[engine]`: the model server's own metrics (`crate::engine::config`).
    pub engine: EngineConfig,
    /// `[log]` (`crate::telemetry::config`).
    pub log: LogConfig,
    /// `[quality]`: SPC charts and drift tests (`crate::quality::config`).
    pub quality: QualityConfig,
    /// `[[canary]]`: golden-set probes (`crate::canary::config`).
    pub canary: Vec<ProbeConfig>,
    /// `[shadow]`: live traffic replayed to candidate models (`crate::shadow::config`).
    pub shadow: ShadowConfig,
    /// `[feedback]`: ground-truth labels joined to predictions (`crate::feedback::config`).
    pub feedback: FeedbackConfig,
    /// `[accuracy]`: windows of the accuracy and agreement ratios (`crate::canary::config`).
    pub accuracy: AccuracyConfig,
    /// `[cold_start]`: the first live request after an idle gap (`crate::canary::config`).
    pub cold_start: ColdStartConfig,
}
