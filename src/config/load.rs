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
//!    succeeds or [`MAX_TYPE_ERRORS`] have been found;
//! 3. the typed result is validated ([`validate`]), skipping rules that involve a key whose type was
//!    wrong: its value is a stand-in default, and judging it would invent a problem.
//!
//! Order of the report: unknown keys, then type errors (each sorted by key path), then semantic
//! errors in the order of the config's fields.

mod energy;
mod tree;
mod validate;

pub use validate::validate;

use super::{Config, RouteConfig};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use tree::{format_path, KeyPath, Node, Seg};

/// Prefix of environment overrides: `INFERWATCH__PROXY__UPSTREAM` sets `proxy.upstream`.
pub const ENV_PREFIX: &str = "INFERWATCH";
/// Separator between the prefix and each key level in an environment override.
pub const ENV_SEPARATOR: &str = "__";
/// Type errors collected before giving up (each costs one more deserialization pass).
pub const MAX_TYPE_ERRORS: usize = 100;

/// One problem in the config, at a key path such as `proxy.routes[1].name` (or, for a file that
/// cannot be read or parsed, the file's name, with `:line:column` where known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config, in report order. Displays one `path: message` per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// Each error as its `path: message` line.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

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

/// The process environment's `INFERWATCH__*` variables (any case).
fn process_env() -> Result<HashMap<String, String>, ConfigErrors> {
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
fn env_key_path(var: &str) -> Option<String> {
    let lower = var.to_lowercase();
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_lowercase();
    let rest = lower.strip_prefix(&prefix)?;
    Some(rest.replace(ENV_SEPARATOR, "."))
}

/// Our environment variables, by the dotted key they set.
struct EnvKeys {
    /// dotted key → (variable name, raw value); the alphabetically first name if several collide.
    by_key: BTreeMap<String, (String, String)>,
    /// Keys set by more than one variable (names differing only in case): an error.
    conflicts: Vec<ConfigError>,
}

impl EnvKeys {
    fn new(env: &HashMap<String, String>) -> Self {
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

    fn get(&self, path: &[Seg]) -> Option<&(String, String)> {
        self.by_key.get(&format_path(path))
    }
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
        for error in validate::validate_skipping(config, &skip) {
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

/// What the deserialization passes found.
struct Outcome {
    /// The typed config with every badly typed key defaulted; `None` if even that failed.
    config: Option<Config>,
    unknown: Vec<KeyPath>,
    type_errors: Vec<(KeyPath, String)>,
    /// Keys whose values were removed or replaced with stand-ins.
    tainted: Vec<KeyPath>,
}

/// One deserialization pass: the config or the first type error (path, message), plus every
/// unknown key seen on the way.
fn attempt(tree: &Node) -> (Result<Config, (KeyPath, String)>, Vec<KeyPath>) {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result: Result<Config, _> = {
        let de = serde_path_to_error::Deserializer::new(tree.clone(), &mut track);
        serde_ignored::deserialize(de, |path| unknown.push(ignored_path(&path)))
    };
    match result {
        Ok(config) => (Ok(config), unknown),
        Err(e) => (Err((tracked_path(&track.path()), e.to_string())), unknown),
    }
}

/// Whether a pass over `tree` gets past `path`: it succeeds, or fails somewhere else.
fn passes(tree: &Node, path: &KeyPath) -> bool {
    match attempt(tree).0 {
        Ok(_) => true,
        Err((p, _)) => !p.starts_with(path),
    }
}

fn deserialize_collecting(mut tree: Node, env: &EnvKeys) -> Outcome {
    let mut type_errors = Vec::new();
    let mut tainted = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..MAX_TYPE_ERRORS {
        let (result, seen) = attempt(&tree);
        unknown = seen;
        let (path, message) = match result {
            Ok(config) => {
                return Outcome {
                    config: Some(config),
                    unknown,
                    type_errors,
                    tainted,
                }
            }
            Err(error) => error,
        };
        // `try_parsing` turned an env value such as `5` or `true` into a number or a bool; if the
        // key wants a string, the variable's raw text is what the operator meant.
        if let Some((_, raw)) = env.get(&path) {
            if !matches!(tree.get(&path), Some(Node::Str(_))) {
                let mut retry = tree.clone();
                if let Some(node) = retry.get_mut(&path) {
                    *node = Node::Str(raw.clone());
                    if passes(&retry, &path) {
                        tree = retry;
                        continue;
                    }
                }
            }
        }
        let shown = tree.get(&path).cloned();
        type_errors.push((path.clone(), polish(&message, shown.as_ref())));
        match drop_value(&mut tree, &path) {
            Some(dropped) => tainted.push(dropped),
            None => {
                return Outcome {
                    config: None,
                    unknown,
                    type_errors,
                    tainted,
                }
            }
        }
    }
    type_errors.push((
        Vec::new(),
        format!("too many type errors, stopped after {MAX_TYPE_ERRORS}"),
    ));
    Outcome {
        config: None,
        unknown,
        type_errors,
        tainted,
    }
}

/// Takes the badly typed value at `path` out of the tree so that the next pass gets past it: a table
/// key is removed (its field falls back to its default); an array element is replaced by the first
/// stand-in its element type accepts, so that later indices keep their meaning. If neither works the
/// parent goes. Returns the path that was dropped, `None` if nothing could be.
fn drop_value(tree: &mut Node, path: &KeyPath) -> Option<KeyPath> {
    let mut path = path.clone();
    loop {
        match path.last()? {
            Seg::Key(_) => {
                if tree.remove_key(&path) {
                    return Some(path);
                }
            }
            Seg::Index(_) => {
                let stand_ins = [
                    Node::Table(BTreeMap::new()),
                    Node::Int(1),
                    Node::Float(1.0),
                    Node::Str(String::new()),
                    Node::Bool(false),
                ];
                for stand_in in stand_ins {
                    let mut retry = tree.clone();
                    let Some(node) = retry.get_mut(&path) else {
                        break;
                    };
                    *node = stand_in;
                    if passes(&retry, &path) {
                        *tree = retry;
                        return Some(path);
                    }
                }
            }
        }
        path.pop();
    }
}

/// Rewrites serde's wording for config authors: TOML words (table, array) and plain types.
fn polish(message: &str, value: Option<&Node>) -> String {
    if message == "invalid socket address syntax" {
        let got = value.map(|v| format!(" {v}")).unwrap_or_default();
        return format!("invalid socket address{got}, expected ip:port such as \"0.0.0.0:8081\"");
    }
    let mut m = message.to_string();
    for (from, to) in [
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("invalid type: map,", "invalid type: table,"),
        ("invalid type: sequence,", "invalid type: array,"),
        ("invalid type: unit value,", "invalid type: empty value,"),
    ] {
        m = m.replace(from, to);
    }
    if let Some(i) = m.find("expected struct ") {
        m.truncate(i);
        m.push_str("expected a table");
    }
    m
}

fn tracked_path(path: &serde_path_to_error::Path) -> KeyPath {
    use serde_path_to_error::Segment;
    let mut out = Vec::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push(Seg::Index(*index)),
            Segment::Map { key } => out.push(Seg::Key(key.clone())),
            Segment::Enum { .. } => {}
            Segment::Unknown => break,
        }
    }
    out
}

fn ignored_path(path: &serde_ignored::Path<'_>) -> KeyPath {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut KeyPath) {
        use serde_ignored::Path as P;
        match path {
            P::Root => {}
            P::Seq { parent, index } => {
                walk(parent, out);
                out.push(Seg::Index(*index));
            }
            P::Map { parent, key } => {
                walk(parent, out);
                out.push(Seg::Key(key.clone()));
            }
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                walk(parent, out)
            }
        }
    }
    let mut out = Vec::new();
    walk(path, &mut out);
    out
}

/// Parses a dotted path with indices (`proxy.routes[1].name`) as the validator writes them (bare
/// keys only).
fn parse_path(path: &str) -> KeyPath {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut pieces = part.split('[');
        if let Some(key) = pieces.next() {
            if !key.is_empty() {
                out.push(Seg::Key(key.to_string()));
            }
        }
        for index in pieces {
            match index.trim_end_matches(']').parse() {
                Ok(i) => out.push(Seg::Index(i)),
                Err(_) => out.push(Seg::Key(index.to_string())),
            }
        }
    }
    out
}

/// The known keys of [`Config`] in declaration order: the defaults serialized (with one route so
/// that route keys are known too, and every optional key set) and read back keeping the order of every table.
enum Shape {
    Leaf,
    Array(Vec<Shape>),
    Table(Vec<(String, Shape)>),
}

impl<'de> serde::Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ShapeVisitor;
        impl<'de> serde::de::Visitor<'de> for ShapeVisitor {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_unit<E>(self) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Shape, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Shape::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Shape, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Shape::Table(entries))
            }
        }
        deserializer.deserialize_any(ShapeVisitor)
    }
}

impl Shape {
    fn of_config() -> Shape {
        let mut sample = Config::default();
        sample.proxy.routes.push(RouteConfig::default());
        // Optional keys are left out of the defaults when unset; set them so they are known.
        sample.energy.nvml_idle_watts = Some(0.0);
        sample.energy.rapl_idle_watts = Some(0.0);
        sample.energy.estimate_idle_watts = Some(0.0);
        // One chart and one drift test, so their keys are known (suggestions, report order).
        sample.quality.charts.push(Default::default());
        sample.quality.drift.push(Default::default());
        // One probe and one shadow target with an input, likewise.
        sample.canary.push(Default::default());
        let mut target = crate::config::ShadowTargetConfig::default();
        target.inputs.push(Default::default());
        sample.shadow.targets.push(target);
        serde_json::to_string(&sample)
            .ok()
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or(Shape::Leaf)
    }

    fn child(&self, seg: &Seg) -> Option<(usize, &Shape)> {
        match (seg, self) {
            (Seg::Key(key), Shape::Table(entries)) => entries
                .iter()
                .enumerate()
                .find(|(_, (k, _))| k == key)
                .map(|(i, (_, shape))| (i, shape)),
            (Seg::Index(i), Shape::Array(items)) => items.first().map(|shape| (*i, shape)),
            _ => None,
        }
    }

    /// Sort key of `path`: each step's declaration index (array steps: the index itself); keys
    /// that are not known sort after the known ones, by name.
    fn position(&self, path: &[Seg]) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut shape = Some(self);
        for seg in path {
            let step = shape.and_then(|s| s.child(seg));
            out.push(match (seg, step) {
                (_, Some((i, _))) => (i, String::new()),
                (Seg::Index(i), None) => (*i, String::new()),
                (Seg::Key(key), None) => (usize::MAX, key.clone()),
            });
            shape = step.map(|(_, s)| s);
        }
        out
    }

    /// The known key closest to the unknown one at the end of `path`, if one is close enough
    /// (case, `-` for `_`, and up to one edit per three characters are forgiven).
    fn suggest(&self, path: &[Seg]) -> Option<String> {
        let (Seg::Key(unknown), parent) = path.split_last()? else {
            return None;
        };
        let mut shape = self;
        for seg in parent {
            shape = shape.child(seg)?.1;
        }
        let Shape::Table(known) = shape else {
            return None;
        };
        let wanted = unknown.to_lowercase().replace('-', "_");
        known
            .iter()
            .filter_map(|(k, _)| {
                let distance = edit_distance(&wanted, k);
                (distance <= (k.chars().count() / 3).max(1)).then_some((distance, k))
            })
            .min()
            .map(|(_, k)| k.clone())
    }
}

/// Edit distance between two strings by characters, counting a swap of two neighbours as one
/// edit (optimal string alignment), so that `modle` is one edit from `model`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * width + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (d[(i - 1) * width + j] + 1)
                    .min(d[i * width + j - 1] + 1)
                    .min(d[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * width + b.len()]
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
    fn edit_distance_basics() {
        assert_eq!(edit_distance("listen", "listen"), 0);
        assert_eq!(edit_distance("listn", "listen"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("modle", "model"), 1);
    }

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

    #[test]
    fn suggestions() {
        let schema = Shape::of_config();
        let path =
            |keys: &[&str]| -> KeyPath { keys.iter().map(|k| Seg::Key(k.to_string())).collect() };
        assert_eq!(schema.suggest(&path(&["proxxy"])).as_deref(), Some("proxy"));
        assert_eq!(
            schema
                .suggest(&path(&["proxy", "max-in-flight"]))
                .as_deref(),
            Some("max_in_flight")
        );
        assert_eq!(schema.suggest(&path(&["log", "colour"])), None);
        let route_key = vec![
            Seg::Key("proxy".into()),
            Seg::Key("routes".into()),
            Seg::Index(3),
            Seg::Key("modle".into()),
        ];
        assert_eq!(schema.suggest(&route_key).as_deref(), Some("model"));
    }

    #[test]
    fn positions_follow_declaration_order() {
        let schema = Shape::of_config();
        let key = |p: &str| schema.position(&parse_path(p));
        assert!(key("proxy.upstream") < key("proxy.routes[0].name"));
        assert!(key("proxy.routes[2].name") < key("proxy.routes[10].name"));
        assert!(key("proxy.routes[0].model") < key("proxy.connect_timeout_secs"));
        assert!(key("proxy.pool_idle_timeout_secs") < key("proxy.zzz"));
        assert!(key("proxy.zzz") < key("admin.listen"));
        assert!(key("log.level") < key("aaa"));
    }

    #[test]
    fn parse_path_round_trips() {
        for p in [
            "proxy.routes[1].name",
            "latency.quantiles[0]",
            "admin",
            "a.b.c",
        ] {
            assert_eq!(format_path(&parse_path(p)), p);
        }
    }
}
