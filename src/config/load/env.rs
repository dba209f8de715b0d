//! `INFERWATCH__SECTION__KEY` environment overrides: which variables are ours, the dotted key
//! each sets, and two variables naming the same key (case aside) reported as a conflict.

use std::collections::{BTreeMap, HashMap};

use super::tree::{format_path, Seg};
use crate::config::error::{ConfigError, ConfigErrors};

/// Prefix of environment overrides: `INFERWATCH__PROXY__UPSTREAM` sets `proxy.upstream`.
pub const ENV_PREFIX: &str = "INFERWATCH";
/// Separator between the prefix and each key level in an environment override.
pub const ENV_SEPARATOR: &str = "__";

/// The process environment's `INFERWATCH__*` variables (any case).
pub(super) fn process_env() -> Result<HashMap<String, String>, ConfigErrors> {
    let mut env = HashMap::new();
    let mut errors = Vec::new();
    for (key, value) in std::env::vars_os() {
        let Ok(key) = key.into_string() else { continue };
        let Some(dotted) = env_key_path(&key) else {
            continue;
        };
        match value.into_string() {
            Ok(value) => {
                env.insert(key, value);
            }
            Err(_) => errors.push(ConfigError::new(
                dotted,
                format!("environment variable {key} is not valid unicode"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(env)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// `INFERWATCH__PROXY__MAX_IN_FLIGHT` → `proxy.max_in_flight`, the way the `config` crate maps it
/// (lowercased, prefix removed, separators to dots); `None` for variables that are not ours.
pub(super) fn env_key_path(var: &str) -> Option<String> {
    let lower = var.to_lowercase();
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_lowercase();
    let rest = lower.strip_prefix(&prefix)?;
    Some(rest.replace(ENV_SEPARATOR, "."))
}

/// Our environment variables, by the dotted key they set.
pub(super) struct EnvKeys {
    /// dotted key → (variable name, raw value); the alphabetically first name if several collide.
    pub(super) by_key: BTreeMap<String, (String, String)>,
    /// Keys set by more than one variable (names differing only in case): an error.
    pub(super) conflicts: Vec<ConfigError>,
}

impl EnvKeys {
    pub(super) fn new(env: &HashMap<String, String>) -> Self {
        let mut grouped: BTreeMap<String, Vec<(&String, &String)>> = BTreeMap::new();
        for (var, value) in env {
            if let Some(key) = env_key_path(var) {
                grouped.entry(key).or_default().push((var, value));
            }
        }
        let mut by_key = BTreeMap::new();
        let mut conflicts = Vec::new();
        for (key, mut vars) in grouped {
            vars.sort();
            if vars.len() > 1 {
                let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
                conflicts.push(ConfigError::new(
                    key.clone(),
                    format!(
                        "set by more than one environment variable ({}), keep one",
                        names.join(", ")
                    ),
                ));
            }
            let (var, value) = vars[0];
            by_key.insert(key, (var.clone(), value.clone()));
        }
        Self { by_key, conflicts }
    }

    pub(super) fn get(&self, path: &[Seg]) -> Option<&(String, String)> {
        self.by_key.get(&format_path(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_key_mapping() {
        assert_eq!(
            env_key_path("INFERWATCH__PROXY__MAX_IN_FLIGHT").as_deref(),
            Some("proxy.max_in_flight")
        );
        assert_eq!(
            env_key_path("inferwatch__Log__Level").as_deref(),
            Some("log.level")
        );
        assert_eq!(env_key_path("INFERWATCH_PROXY__X"), None);
        assert_eq!(env_key_path("PATH"), None);
    }
}
