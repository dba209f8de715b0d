//! Loading and validation (in progress).
use super::Config;
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError { pub path: String, pub message: String }
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);
pub fn load(_path: Option<&std::path::Path>) -> Result<Config, ConfigErrors> { Ok(Config::default()) }
pub fn load_str(_toml: &str) -> Result<Config, ConfigErrors> { Ok(Config::default()) }
