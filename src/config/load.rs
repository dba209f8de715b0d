//! Loading: a TOML file and `INFERWATCH__SECTION__KEY` environment overrides, merged by the
//! `config` crate, then deserialized into [`Config`] and validated, collecting EVERY error with its
//! key path (`proxy.routes[1].name`) instead of stopping at the first.
//!
//! How every error is found in one go:
//! 1. a TOML syntax error stops everything (nothing after it can be trusted); it is reported with
//!    its line and column;
//! 2. the merged tree is deserialized with `serde_ignored` (every unknown key) wrapped around
//!    `serde_path_to_error` (the key path of the type error that stopped serde). The badly typed key
//!    is removed from the tree (every field has a default) and deserialization runs again, until it
//!    succeeds or [`MAX_TYPE_ERRORS`](deserialize::MAX_TYPE_ERRORS) have been found;
//! 3. the typed result is validated ([`validate`](super::validate())), skipping rules that involve a key whose type was
//!    wrong: its value is a stand-in default, and judging it would invent a problem.
//!
//! Order of the report: unknown keys, then type errors (each sorted by key path), then semantic
//! errors in the order of the config's fields.

mod deserialize;
mod env;
mod shape;
mod tree;

use std::collections::HashMap;
use std::path::Path;

use super::error::{ConfigError, ConfigErrors};
use super::validate::{validate, validate_skipping};
use super::Config;
use deserialize::deserialize_collecting;
use env::{env_key_path, process_env, EnvKeys, ENV_PREFIX, ENV_SEPARATOR};
use shape::Shape;
use tree::{format_path, parse_path, KeyPath, Node};

impl Config {
    /// `load_with_env` as an associated function, reachable from outside the crate (the `load`
    /// module itself is private to `config`).
    pub fn load_with_env(
        toml: Option<&str>,
        file_name: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigErrors> {
        load_with_env(toml, file_name, env)
    }

    /// `validate` as a method: every semantic problem of this config (empty = valid).
    pub fn validate(&self) -> Vec<ConfigError> {
        validate(self)
    }
}

/// Load from an optional TOML file plus the process environment (INFERWATCH__SECTION__KEY), then
/// validate. A file that is named but cannot be read is an error naming the path.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    let env = process_env()?;
    match path {
        None => load_with_env(None, None, &env),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                let message = match e.kind() {
                    std::io::ErrorKind::NotFound => "config file not found".to_string(),
                    std::io::ErrorKind::PermissionDenied => {
                        "config file not readable: permission denied".to_string()
                    }
                    std::io::ErrorKind::InvalidData => "config file is not valid utf-8".to_string(),
                    _ => format!("cannot read config file: {e}"),
                };
                ConfigErrors(vec![ConfigError::new(path.display().to_string(), message)])
            })?;
            load_with_env(Some(&text), Some(path), &env)
        }
    }
}

/// Same from a TOML string with NO process env (for tests).
pub fn load_str(toml: &str) -> Result<Config, ConfigErrors> {
    load_with_env(Some(toml), None, &HashMap::new())
}

/// The lower-level loader: an optional TOML text (`file_name` only names it in messages) and an
/// explicit environment map (only `INFERWATCH__*` entries are used), then validation.
pub fn load_with_env(
    toml: Option<&str>,
    file_name: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<Config, ConfigErrors> {
    let source = file_name
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<toml>".to_string());
    let env_keys = EnvKeys::new(env);
    let mut errors = env_keys.conflicts.clone();

    let mut builder = config::Config::builder();
    if let Some(text) = toml {
        builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
    }
    let ours: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| env_key_path(k).is_some())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .try_parsing(true)
            .source(Some(ours)),
    );
    let merged = match builder.build() {
        Ok(merged) => merged,
        Err(e) => {
            errors.push(build_error(e, &source));
            return Err(ConfigErrors(errors));
        }
    };

    let outcome = deserialize_collecting(Node::from(merged.cache), &env_keys);
    let at = |path: &KeyPath| {
        if path.is_empty() {
            source.clone()
        } else {
            format_path(path)
        }
    };

    let schema = Shape::of_config();
    // (position in the config, error): sorted by position at the end, so that the report reads
    // like the file (fields in declaration order, unknown keys after the known ones of their
    // table); at one position, unknown key before type error before semantic problems.
    let mut found: Vec<(Vec<(usize, String)>, ConfigError)> = Vec::new();
    let mut unknown = outcome.unknown;
    unknown.sort();
    unknown.dedup();
    for path in &unknown {
        let message = match schema.suggest(path) {
            Some(known) => format!("unknown key, did you mean `{known}`?"),
            None => "unknown key".to_string(),
        };
        found.push((schema.position(path), ConfigError::new(at(path), message)));
    }
    for (path, message) in &outcome.type_errors {
        found.push((
            schema.position(path),
            ConfigError::new(at(path), message.clone()),
        ));
    }
    if let Some(config) = &outcome.config {
        let skip: Vec<String> = outcome.tainted.iter().map(|p| format_path(p)).collect();
        for error in validate_skipping(config, &skip) {
            found.push((schema.position(&parse_path(&error.path)), error));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, mut error) in found {
        if let Some((var, _)) = env_keys.by_key.get(&error.path) {
            error.message.push_str(&format!(" (from {var})"));
        }
        errors.push(error);
    }

    match outcome.config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors(errors)),
    }
}

/// A `config` crate build error: for TOML syntax errors, `file:line:column: what is wrong`.
fn build_error(e: config::ConfigError, source: &str) -> ConfigError {
    match e {
        config::ConfigError::FileParse { cause, .. } => syntax_error(&cause.to_string(), source),
        other => ConfigError::new(source, other.to_string()),
    }
}

/// Turns the `toml` crate's multi-line report
/// ```text
/// TOML parse error at line 3, column 9
///   |
/// 3 | listen = = "x"
///   |          ^
/// string values must be quoted, expected literal string
/// ```
/// into one line: `file:3:9: string values must be quoted, expected literal string`.
fn syntax_error(report: &str, source: &str) -> ConfigError {
    let mut lines = report.lines();
    let first = lines.next().unwrap_or_default();
    let position = first
        .strip_prefix("TOML parse error at line ")
        .and_then(|rest| rest.split_once(", column "))
        .and_then(|(line, column)| Some((line.parse::<u32>().ok()?, column.parse::<u32>().ok()?)));
    let Some((line, column)) = position else {
        return ConfigError::new(source, format!("invalid toml: {}", one_line(report)));
    };
    // Skip the source excerpt (lines starting with a gutter `|`), keep the explanation.
    let explanation: Vec<&str> = lines
        .filter(|l| {
            let t = l.trim_start();
            let gutter = t
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            !(t.is_empty() || gutter.starts_with('|'))
        })
        .map(str::trim)
        .collect();
    let message = if explanation.is_empty() {
        "invalid toml".to_string()
    } else {
        format!("invalid toml: {}", explanation.join("; "))
    };
    ConfigError::new(format!("{source}:{line}:{column}"), message)
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(result: Result<Config, ConfigErrors>) -> Vec<String> {
        result.expect_err("expected errors").lines()
    }

    #[test]
    fn empty_is_default() {
        assert_eq!(load_str("").unwrap(), Config::default());
    }

    #[test]
    fn array_element_type_errors_keep_their_indices() {
        let got = lines(load_str(
            "[latency]\nquantiles = [0.5, \"p90\", 0.99, true]\n",
        ));
        assert_eq!(
            got,
            vec![
                "latency.quantiles[1]: invalid type: string \"p90\", expected a number",
                "latency.quantiles[3]: invalid type: boolean `true`, expected a number",
            ]
        );
    }

    #[test]
    fn type_error_of_a_whole_section() {
        let got = lines(load_str("proxy = 5\n[admin]\nlisten = \"0.0.0.0:8081\"\n"));
        // proxy.listen is a stand-in default, so no listener conflict is invented.
        assert_eq!(
            got,
            vec!["proxy: invalid type: integer `5`, expected a table"]
        );
    }
}
