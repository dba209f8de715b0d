//! `[[proxy.routes]]`: the routes the proxy counts traffic by, their payload protocol and the
//! `[proxy.routes.prediction]` rule the protocol adapters read answers with (keys of a route entry,
//! so their types live here and the live path never imports `protocol`), plus the rules on route
//! names, prefixes and models. The prediction rule's own checks are `protocol::config`'s.

use serde::{Deserialize, Serialize};

use crate::config::checks::is_name;
use crate::config::validator::Validator;

/// The route name for traffic no configured route matches (reserved: no route may take it).
pub const OTHER_ROUTE: &str = "other";

/// `[[proxy.routes]]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RouteConfig {
    /// Route label value: `[a-z0-9_]+`, unique, not `other`.
    pub name: String,
    /// Request path prefix, starting with `/`.
    pub path_prefix: String,
    /// Payload protocol: kserve_v2 | openai | tfserving | json | opaque.
    pub protocol: Protocol,
    /// The `model` label for this route's metrics until a protocol adapter names the model.
    pub model: String,
    /// `[proxy.routes.prediction]`: how the protocol adapter turns a payload into predictions.
    pub prediction: PredictionConfig,
    /// `[proxy.routes.slo]`: the bounds a request must meet to count as goodput.
    pub slo: SloConfig,
    /// `[proxy.routes.output]`: what an LLM answer on this route should look like.
    pub output: OutputConfig,
}

/// `[proxy.routes.output]` (OpenAI-compatible routes): the checks behind the output-quality
/// signals `refusal:<route>`, `valid_json:<route>` and `valid_schema:<route>`
/// (`output_tokens:<route>`, `truncated:<route>` and `empty:<route>` need no setting).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct OutputConfig {
    /// A regular expression (Rust `regex` syntax) an answer matches when the model refused;
    /// empty = no refusal signal.
    pub refusal_regex: String,
    /// Answers should be JSON documents (structured output): each one is a `valid_json`
    /// observation.
    pub expect_json: bool,
    /// A JSON Schema file answers should be valid against: each answer is a `valid_schema`
    /// observation (judged off the live path; the file is read and compiled at config load by
    /// `protocol::config`). Empty = no schema check.
    pub json_schema_file: String,
}

/// `[proxy.routes.slo]`: per-request bounds, any subset; 0 = not set (TOML has no null, and the
/// example file sets every key to its default). With any bound set, every finished request on
/// the route is classified in `inferwatch_slo_requests_total`: `met` (every bound), the first
/// bound it missed in the order a request lives them (`missed_ttft`, `missed_tpot`,
/// `missed_e2e`, also by a client that left past it), `failed` (no answer, or a non-2xx one), or
/// `aborted` (the client left before any bound passed).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SloConfig {
    /// Request start to the last response byte, in seconds.
    pub e2e_secs: f64,
    /// Request start to the first streamed content chunk (a plain answer's whole body), in
    /// seconds. OpenAI-compatible routes only.
    pub ttft_secs: f64,
    /// Time per output token after the first, in seconds (streams of two tokens or more).
    /// OpenAI-compatible routes only.
    pub tpot_secs: f64,
}

impl SloConfig {
    /// Whether any bound is set.
    pub fn is_set(&self) -> bool {
        self.e2e_secs > 0.0 || self.ttft_secs > 0.0 || self.tpot_secs > 0.0
    }
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            path_prefix: String::new(),
            protocol: Protocol::Opaque,
            model: "unknown".to_string(),
            prediction: PredictionConfig::default(),
            slo: SloConfig::default(),
            output: OutputConfig::default(),
        }
    }
}

/// `[proxy.routes.prediction]`: the rule that turns a route's outputs into predictions, and the
/// input checks. Empty strings mean "not set" (TOML has no null, and the example file sets every
/// key to its default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PredictionConfig {
    /// `auto` (class labels or several scores → classification, one number → regression),
    /// `classification` or `regression`.
    pub kind: PredictionKind,
    /// What the score outputs hold: `probabilities` (used as they are) or `logits` (softmax, or
    /// the logistic function for a single score).
    pub scores: ScoreKind,
    /// KServe V2 output tensor (or TF Serving named output) holding scores or the regression
    /// value. Empty: the first floating-point output.
    pub score_output: String,
    /// KServe V2 output tensor (or TF Serving named output) holding class labels (BYTES or
    /// integer, e.g. an sklearn `predict` output). Empty: the first BYTES or integer output.
    pub label_output: String,
    /// Class names by score index; empty: the index itself is the class.
    pub class_labels: Vec<String>,
    /// `json` routes: RFC 6901 pointers. `model_pointer` is read from the response, then the
    /// request. With `rows_pointer` (an array in the response), the other three are relative to
    /// each row; `#` means the row (or document) itself.
    pub model_pointer: String,
    pub rows_pointer: String,
    pub class_pointer: String,
    pub score_pointer: String,
    pub value_pointer: String,
    /// Per-feature bounds for the input anomaly check (tabular KServe V2 / TF Serving inputs).
    pub feature_bounds: Vec<FeatureBound>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PredictionKind {
    #[default]
    Auto,
    Classification,
    Regression,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    #[default]
    Probabilities,
    Logits,
}

/// Values of input feature `feature` (its column across the request's numeric inputs, counted
/// from 0) outside `[min, max]` count as `out_of_bounds` anomalies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct FeatureBound {
    pub feature: usize,
    pub min: f64,
    pub max: f64,
}

impl Default for FeatureBound {
    fn default() -> Self {
        Self {
            feature: 0,
            min: f64::NEG_INFINITY,
            max: f64::INFINITY,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    KserveV2,
    Openai,
    Tfserving,
    Json,
    #[default]
    Opaque,
}

impl Protocol {
    /// The name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::KserveV2 => "kserve_v2",
            Protocol::Openai => "openai",
            Protocol::Tfserving => "tfserving",
            Protocol::Json => "json",
            Protocol::Opaque => "opaque",
        }
    }
}

/// Route names (label values: `[a-z0-9_]+`, unique, not `other`), path prefixes (each reachable
/// behind the ones before it) and `model` labels.
pub fn validate(v: &mut Validator<'_>, routes: &[RouteConfig]) {
    let mut first_use: Vec<(&str, usize)> = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        let name_path = format!("proxy.routes[{i}].name");
        let name = route.name.as_str();
        if name.is_empty() {
            v.report(&name_path, "missing route name, expected [a-z0-9_]+".into());
        } else if !is_name(name) {
            v.report(
                &name_path,
                format!("invalid route name {name:?}, expected [a-z0-9_]+"),
            );
        } else if name == OTHER_ROUTE {
            v.report(
                &name_path,
                format!("route name {name:?} is reserved for unmatched traffic"),
            );
        } else if v.clean(&[&name_path]) {
            match first_use.iter().find(|(n, _)| *n == name) {
                Some((_, j)) => v.report(
                    &name_path,
                    format!("duplicate route name {name:?} (first used by proxy.routes[{j}])"),
                ),
                None => first_use.push((name, i)),
            }
        }

        let prefix_path = format!("proxy.routes[{i}].path_prefix");
        let prefix = route.path_prefix.as_str();
        if prefix.is_empty() {
            v.report(
                &prefix_path,
                "missing path_prefix, expected a path starting with /".into(),
            );
        } else if !prefix.starts_with('/') {
            v.report(
                &prefix_path,
                format!("path_prefix {prefix:?} must start with /"),
            );
        } else {
            let earlier = routes[..i].iter().enumerate().find(|(j, r)| {
                r.path_prefix.starts_with('/')
                    && v.clean(&[&format!("proxy.routes[{j}].path_prefix")])
                    && shadows(&r.path_prefix, prefix)
            });
            if let Some((j, r)) = earlier {
                v.report(
                    &prefix_path,
                    format!(
                        "route never matches: proxy.routes[{j}] (path_prefix {:?}) comes first and matches all its requests",
                        r.path_prefix
                    ),
                );
            }
        }

        validate_slo(v, i, route);
        validate_output(v, i, route);

        let model = route.model.as_str();
        if model.is_empty() {
            v.report(
                &format!("proxy.routes[{i}].model"),
                "missing model, expected 1 to 64 characters of [A-Za-z0-9_.:-]".into(),
            );
        } else if !is_model_label(model) {
            v.report(
                &format!("proxy.routes[{i}].model"),
                format!("invalid model {model:?}, expected 1 to 64 characters of [A-Za-z0-9_.:-]"),
            );
        }
    }
}

/// Bounds are finite and not negative; token bounds need token timings (an OpenAI-compatible
/// route), and any bound needs an inspected route (not `opaque`): requests are classified off
/// the live path, where their timings are read.
fn validate_slo(v: &mut Validator<'_>, i: usize, route: &RouteConfig) {
    let slo = &route.slo;
    let bounds = [
        ("e2e_secs", slo.e2e_secs),
        ("ttft_secs", slo.ttft_secs),
        ("tpot_secs", slo.tpot_secs),
    ];
    for (key, value) in bounds {
        let path = format!("proxy.routes[{i}].slo.{key}");
        if !value.is_finite() || value < 0.0 {
            v.report(
                &path,
                format!("invalid bound {value}, expected seconds >= 0 (0 = not set)"),
            );
        } else if value > 0.0 && key != "e2e_secs" && route.protocol != Protocol::Openai {
            v.report(
                &path,
                format!(
                    "{key} needs token timings, which only protocol = \"openai\" routes have (this route is {:?})",
                    route.protocol.as_str()
                ),
            );
        } else if value > 0.0 && route.protocol == Protocol::Opaque {
            v.report(
                &path,
                "an SLO needs an inspected route: set protocol (opaque routes are not read)".into(),
            );
        }
    }
}

/// Output checks read LLM answers: OpenAI-compatible routes only, and a regex that compiles.
fn validate_output(v: &mut Validator<'_>, i: usize, route: &RouteConfig) {
    let out = &route.output;
    let set = !out.refusal_regex.is_empty() || out.expect_json || !out.json_schema_file.is_empty();
    if set && route.protocol != Protocol::Openai {
        v.report(
            &format!("proxy.routes[{i}].output"),
            format!(
                "output checks read LLM answers: protocol must be \"openai\", got {:?}",
                route.protocol.as_str()
            ),
        );
    }
    if !out.refusal_regex.is_empty() {
        if let Err(e) = regex::Regex::new(&out.refusal_regex) {
            v.report(
                &format!("proxy.routes[{i}].output.refusal_regex"),
                format!("invalid regular expression: {e}"),
            );
        }
    }
}

fn is_model_label(model: &str) -> bool {
    (1..=64).contains(&model.len())
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Whether a request matching `later` always matches `earlier` first (equal prefixes, or `earlier`
/// covers `later` at a `/` boundary, so this holds whether prefixes match by string or by segment).
fn shadows(earlier: &str, later: &str) -> bool {
    later.starts_with(earlier)
        && (later.len() == earlier.len()
            || earlier.ends_with('/')
            || later[earlier.len()..].starts_with('/'))
}
