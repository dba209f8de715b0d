//! Checks of each route's `[proxy.routes.prediction]` rule: JSON pointers, class labels and
//! feature bounds, judged against the route's protocol; and of `[proxy.routes.output]
//! json_schema_file` (read and compiled here, so the live path's modules never see a schema).
//! The rule's types are keys of a route entry (`routes::config`); interpreting them is this
//! module's job, and so is judging them.

use crate::config::validator::Validator;
use crate::routes::config::{PredictionConfig, PredictionKind, Protocol, RouteConfig};

use super::schema::JsonSchema;

/// Longest class label in `class_labels`.
pub const MAX_CLASS_LABEL_LEN: usize = 128;

/// The prediction rule of every route whose protocol was read (a badly typed protocol leaves a
/// stand-in that would make the rule look wrong).
pub fn validate(v: &mut Validator<'_>, routes: &[RouteConfig]) {
    for (i, route) in routes.iter().enumerate() {
        if v.clean(&[&format!("proxy.routes[{i}].protocol")]) {
            prediction(v, i, route.protocol, &route.prediction);
        }
        let schema = &route.output.json_schema_file;
        if !schema.is_empty() {
            if let Err(problem) = JsonSchema::load(std::path::Path::new(schema)) {
                v.report(
                    &format!("proxy.routes[{i}].output.json_schema_file"),
                    problem,
                );
            }
        }
    }
}

/// RFC 6901: empty or `/`-separated tokens in which `~` is only ever `~0` or `~1`. Here the
/// empty string means "not set", so the whole document is spelled `#` (its URI fragment form).
fn pointer_problem(pointer: &str) -> Option<String> {
    if pointer.is_empty() || pointer == "#" {
        return None;
    }
    if !pointer.starts_with('/') {
        return Some(format!(
            "invalid JSON pointer {pointer:?}, expected \"\" (not set), \"#\" (the whole document) or an RFC 6901 pointer starting with /"
        ));
    }
    let bytes = pointer.as_bytes();
    let bad_escape = bytes
        .iter()
        .enumerate()
        .any(|(k, &b)| b == b'~' && !matches!(bytes.get(k + 1), Some(b'0') | Some(b'1')));
    bad_escape.then(|| {
        format!("invalid JSON pointer {pointer:?}: `~` must be followed by 0 or 1 (RFC 6901)")
    })
}

fn prediction(v: &mut Validator<'_>, i: usize, protocol: Protocol, p: &PredictionConfig) {
    let at = |key: &str| format!("proxy.routes[{i}].prediction.{key}");
    let pointers = [
        ("model_pointer", &p.model_pointer),
        ("rows_pointer", &p.rows_pointer),
        ("class_pointer", &p.class_pointer),
        ("score_pointer", &p.score_pointer),
        ("value_pointer", &p.value_pointer),
    ];
    for (key, pointer) in pointers {
        if let Some(problem) = pointer_problem(pointer) {
            v.report(&at(key), problem);
        } else if !pointer.is_empty() && protocol != Protocol::Json {
            v.report(
                &at(key),
                format!(
                    "only used by protocol \"json\", this route's protocol is {:?}",
                    protocol.as_str()
                ),
            );
        }
    }
    if protocol == Protocol::Json
        && p.class_pointer.is_empty()
        && p.score_pointer.is_empty()
        && p.value_pointer.is_empty()
    {
        v.report(
            &format!("proxy.routes[{i}].prediction"),
            "protocol \"json\" needs at least one of class_pointer, score_pointer, value_pointer"
                .into(),
        );
    }
    if p.kind == PredictionKind::Regression && !p.class_labels.is_empty() {
        v.report(
            &at("class_labels"),
            "class labels make no sense with kind = \"regression\"".into(),
        );
    }
    for (k, label) in p.class_labels.iter().enumerate() {
        let path = format!("{}[{k}]", at("class_labels"));
        if label.is_empty() || label.len() > MAX_CLASS_LABEL_LEN {
            v.report(
                &path,
                format!(
                    "must be 1 to {MAX_CLASS_LABEL_LEN} bytes, got {}",
                    label.len()
                ),
            );
        } else if label.chars().any(char::is_control) {
            v.report(
                &path,
                format!("control characters in class label {label:?}"),
            );
        } else if let Some(first) = p.class_labels[..k].iter().position(|l| l == label) {
            v.report(
                &path,
                format!("duplicate class label {label:?} (first at class_labels[{first}])"),
            );
        }
    }
    for (k, b) in p.feature_bounds.iter().enumerate() {
        let path = format!("{}[{k}]", at("feature_bounds"));
        if b.min.is_nan() || b.max.is_nan() {
            v.report(&path, "min and max must be numbers, got NaN".into());
        } else if b.min > b.max {
            v.report(
                &path,
                format!("min ({}) must not be greater than max ({})", b.min, b.max),
            );
        }
        if let Some(first) = p.feature_bounds[..k]
            .iter()
            .position(|o| o.feature == b.feature)
        {
            v.report(
                &format!("{path}.feature"),
                format!(
                    "duplicate bounds for feature {} (first at feature_bounds[{first}])",
                    b.feature
                ),
            );
        }
    }
}
