//! TF Serving REST (`/v1/models/{m}[/versions/{v}|/labels/{l}]:predict|:classify|:regress`):
//! row (`instances` / `predictions`) and columnar (`inputs` / `outputs`) formats, named outputs
//! for multi-head signatures, and the `result` of the Classify and Regress APIs.

use serde_json::{Map, Value};

use super::tensor::{parse_lenient, special_float, Matrix, Values};
use super::{DecodeError, Exchange, Inference, InputSignature, Inputs, Prediction, Rule};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Predict,
    Classify,
    Regress,
}

/// `(model, verb)` when the path is one of the three inference calls.
pub fn infer_path(path: &str) -> Option<(&str, Verb)> {
    let rest = path.split("/v1/models/").nth(1)?;
    let (target, verb) = rest.rsplit_once(':')?;
    let verb = match verb {
        "predict" => Verb::Predict,
        "classify" => Verb::Classify,
        "regress" => Verb::Regress,
        _ => return None,
    };
    let model = target.split('/').next().filter(|m| !m.is_empty())?;
    Some((model, verb))
}

/// Output names tried, in order, when the route does not name one.
const LABEL_KEYS: [&str; 5] = ["classes", "class_ids", "labels", "label", "class"];
const SCORE_KEYS: [&str; 6] = [
    "probabilities",
    "scores",
    "probs",
    "logits",
    "predictions",
    "outputs",
];

pub fn decode(ex: &Exchange<'_>, rule: &Rule) -> Result<Option<Inference>, DecodeError> {
    let Some((model, verb)) = infer_path(ex.path_only()) else {
        return Ok(None);
    };
    let request: Value = parse_lenient(ex.request)?;
    let response: Value = parse_lenient(ex.response)?;
    let rows = request_rows(&request, verb)?;
    let predictions = match verb {
        Verb::Predict => {
            let out = response
                .get("predictions")
                .or_else(|| response.get("outputs"))
                .ok_or(DecodeError::Missing("predictions or outputs"))?;
            predict_rows(&columns_to_rows(out)?, rule)?
        }
        Verb::Classify => classify_results(result(&response)?, rule)?,
        Verb::Regress => result(&response)?
            .iter()
            .map(|v| Prediction {
                value: first_number(v),
                ..Prediction::default()
            })
            .collect(),
    };
    let batch = (!rows.is_empty()).then_some(rows.len());
    Ok(Some(Inference {
        model: Some(model.to_string()),
        predictions,
        batch,
        inputs: (!rows.is_empty()).then(|| inputs_of(&rows)),
        tokens: None,
    }))
}

fn result(response: &Value) -> Result<&Vec<Value>, DecodeError> {
    response
        .get("result")
        .and_then(Value::as_array)
        .ok_or(DecodeError::Missing("result"))
}

/// The request's examples as rows: `instances`, `inputs`, or the Classify/Regress `examples`.
fn request_rows(request: &Value, verb: Verb) -> Result<Vec<Value>, DecodeError> {
    let found = match verb {
        Verb::Predict => request.get("instances").or_else(|| request.get("inputs")),
        Verb::Classify | Verb::Regress => request.get("examples"),
    };
    match found {
        None => Err(DecodeError::Missing("instances or inputs")),
        Some(v) => columns_to_rows(v),
    }
}

/// Row format stays as it is; the columnar format (`{"name": [rows...]}`) becomes one object
/// per row; a bare columnar array is already rows.
fn columns_to_rows(v: &Value) -> Result<Vec<Value>, DecodeError> {
    match v {
        Value::Array(rows) => Ok(rows.clone()),
        Value::Object(columns) => {
            let mut n = None;
            for (name, col) in columns {
                let len = col.as_array().map(Vec::len).ok_or_else(|| {
                    DecodeError::Invalid(format!("column {name:?} is not an array"))
                })?;
                if *n.get_or_insert(len) != len {
                    return Err(DecodeError::Invalid(format!(
                        "column {name:?} has {len} rows, not {}",
                        n.unwrap_or(0)
                    )));
                }
            }
            Ok((0..n.unwrap_or(0))
                .map(|r| {
                    Value::Object(
                        columns
                            .iter()
                            .map(|(k, col)| (k.clone(), col[r].clone()))
                            .collect::<Map<String, Value>>(),
                    )
                })
                .collect())
        }
        _ => Err(DecodeError::Invalid(
            "expected an array of rows or an object of columns".into(),
        )),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => special_float(s),
        _ => None,
    }
}

fn first_number(v: &Value) -> Option<f64> {
    match v {
        Value::Array(a) => a.first().and_then(first_number),
        other => number(other),
    }
}

/// Every number in `v`, depth first (strings spelling NaN or Infinity included).
fn numbers(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| numbers(x, out)),
        Value::Object(o) if !o.contains_key("b64") => o.values().for_each(|x| numbers(x, out)),
        other => {
            if let Some(x) = number(other) {
                out.push(x)
            }
        }
    }
}

fn label_of(v: &Value, rule: &Rule) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => n.as_f64().map(|x| rule.numeric_class(x)),
        Value::Array(a) => a.first().and_then(|x| label_of(x, rule)),
        _ => None,
    }
}

fn named<'a>(o: &'a Map<String, Value>, configured: &str, auto: &[&str]) -> Option<&'a Value> {
    if configured.is_empty() {
        auto.iter().find_map(|k| o.get(*k))
    } else {
        o.get(configured)
    }
}

/// `predictions` rows: a number, an array of scores, a label, or an object of named outputs.
fn predict_rows(rows: &[Value], rule: &Rule) -> Result<Vec<Prediction>, DecodeError> {
    let mut labels = Vec::new();
    let mut scores = Vec::new();
    let mut width = None;
    for row in rows {
        let (label, score) = match row {
            Value::Object(o) => (
                named(o, &rule.cfg.label_output, &LABEL_KEYS),
                named(o, &rule.cfg.score_output, &SCORE_KEYS),
            ),
            Value::String(_) => (Some(row), None),
            _ => (None, Some(row)),
        };
        if let Some(l) = label {
            labels.push(label_of(l, rule).ok_or_else(|| {
                DecodeError::Invalid("class label is not a string or number".into())
            })?);
        }
        if let Some(s) = score {
            let before = scores.len();
            numbers(s, &mut scores);
            let w = scores.len() - before;
            if *width.get_or_insert(w) != w {
                return Err(DecodeError::Invalid("rows of different widths".into()));
            }
        }
    }
    let n = rows.len();
    let matrix = |values: Values, width| Matrix {
        rows: n,
        width,
        values,
    };
    if !labels.is_empty() && labels.len() != n {
        return Err(DecodeError::Invalid("some rows have no class label".into()));
    }
    if width.is_some() && scores.len() != n * width.unwrap_or(0) {
        return Err(DecodeError::Invalid("some rows have no scores".into()));
    }
    let labels = (!labels.is_empty()).then(|| matrix(Values::Str(labels), 1));
    let scores = width.map(|w| matrix(Values::Num(scores), w));
    rule.predictions(labels.as_ref(), scores.as_ref())
}

/// Classify API: per example, `[[label, score], ...]`; the best-scoring label wins.
fn classify_results(rows: &[Value], rule: &Rule) -> Result<Vec<Prediction>, DecodeError> {
    let bad = || DecodeError::Invalid("classify result rows must be [[label, score], ...]".into());
    rows.iter()
        .map(|row| {
            let pairs = row.as_array().ok_or_else(bad)?;
            let mut labels = Vec::with_capacity(pairs.len());
            let mut scores = Vec::with_capacity(pairs.len());
            for p in pairs {
                match p.as_array().map(Vec::as_slice) {
                    Some([l, s]) => {
                        labels.push(label_of(l, rule).ok_or_else(bad)?);
                        scores.push(number(s).ok_or_else(bad)?);
                    }
                    _ => return Err(bad()),
                }
            }
            let (class, confidence) = match scores.as_slice() {
                [] => (None, None),
                [s] => (labels.pop(), Some(*s)),
                _ => match rule.classify(&scores) {
                    Some((i, c)) => (labels.get(i).cloned(), Some(c)),
                    None => (None, None),
                },
            };
            Ok(Prediction {
                class,
                confidence,
                value: None,
            })
        })
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(s) if special_float(s).is_some() => "number",
        Value::String(_) => "string",
        Value::Array(a) => a.first().map_or("empty", kind),
        Value::Object(o) if o.contains_key("b64") => "b64",
        Value::Object(_) => "object",
    }
}

fn dims(v: &Value, out: &mut Vec<i64>) {
    if let Value::Array(a) = v {
        out.push(a.len() as i64);
        if let Some(first) = a.first() {
            dims(first, out);
        }
    }
}

fn signature_of(row: &Value) -> Vec<InputSignature> {
    let one = |name: &str, v: &Value| {
        let mut shape = Vec::new();
        dims(v, &mut shape);
        InputSignature {
            name: name.to_string(),
            datatype: kind(v).to_string(),
            shape,
        }
    };
    match row {
        Value::Object(o) if !o.contains_key("b64") => o.iter().map(|(k, v)| one(k, v)).collect(),
        other => vec![one("", other)],
    }
}

fn inputs_of(rows: &[Value]) -> Inputs {
    let mut values = Vec::new();
    let mut features = None;
    let mut uniform = true;
    let (mut nan, mut inf) = (0, 0);
    let mut row_values = Vec::new();
    for row in rows {
        row_values.clear();
        numbers(row, &mut row_values);
        nan += row_values.iter().filter(|x| x.is_nan()).count() as u64;
        inf += row_values.iter().filter(|x| x.is_infinite()).count() as u64;
        if *features.get_or_insert(row_values.len()) != row_values.len() {
            uniform = false;
        }
        values.extend_from_slice(&row_values);
    }
    let features = if uniform { features.unwrap_or(0) } else { 0 };
    if !uniform {
        values.clear();
    }
    Inputs {
        signature: rows.first().map(signature_of).unwrap_or_default(),
        rows: if uniform { rows.len() } else { 0 },
        features,
        kept: features,
        values,
        nan,
        inf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::OwnedExchange;

    fn run(path: &str, req: &str, resp: &str, rule: &Rule) -> Inference {
        decode(
            &OwnedExchange::simple(path, req.as_bytes(), resp.as_bytes()).view(),
            rule,
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn paths() {
        assert_eq!(
            infer_path("/v1/models/half_plus_two:predict"),
            Some(("half_plus_two", Verb::Predict))
        );
        assert_eq!(
            infer_path("/v1/models/m/versions/3:classify"),
            Some(("m", Verb::Classify))
        );
        assert_eq!(infer_path("/v1/models/m/metadata"), None);
        assert_eq!(infer_path("/v1/models/m"), None);
    }

    #[test]
    fn row_format_scores_and_regression() {
        let inf = run(
            "/v1/models/iris:predict",
            r#"{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, NaN]]}"#,
            r#"{"predictions": [[0.9, 0.05, 0.05], [0.1, 0.2, 0.7]]}"#,
            &Rule::default(),
        );
        assert_eq!(inf.model.as_deref(), Some("iris"));
        assert_eq!(inf.batch, Some(2));
        assert_eq!(inf.predictions[1].class.as_deref(), Some("2"));
        assert_eq!(inf.predictions[1].confidence, Some(0.7));
        let inputs = inf.inputs.unwrap();
        assert_eq!((inputs.rows, inputs.features, inputs.nan), (2, 4, 1));
        assert_eq!(inputs.signature[0].shape, vec![4]);

        let inf = run(
            "/v1/models/half_plus_two:predict",
            r#"{"instances": [1.0, 2.0, 5.0]}"#,
            r#"{"predictions": [2.5, 3.0, 4.5]}"#,
            &Rule::default(),
        );
        assert_eq!(inf.predictions[2].value, Some(4.5));
        assert_eq!(inf.predictions[2].class, None);
    }

    #[test]
    fn named_and_columnar_outputs() {
        let inf = run(
            "/v1/models/m:predict",
            r#"{"inputs": {"a": [1, 2], "b": [[3, 4], [5, 6]]}}"#,
            r#"{"outputs": {"classes": [["cat"], ["dog"]], "probabilities": [[0.8, 0.2], [0.3, 0.7]]}}"#,
            &Rule::default(),
        );
        assert_eq!(inf.batch, Some(2));
        assert_eq!(inf.predictions[1].class.as_deref(), Some("dog"));
        assert_eq!(inf.predictions[1].confidence, Some(0.7));
        let inputs = inf.inputs.unwrap();
        assert_eq!(inputs.features, 3);
        assert_eq!(inputs.values, vec![1.0, 3.0, 4.0, 2.0, 5.0, 6.0]);
    }

    #[test]
    fn classify_and_regress() {
        let inf = run(
            "/v1/models/m:classify",
            r#"{"examples": [{"x": 1}, {"x": 2}]}"#,
            r#"{"result": [[["a", 0.1], ["b", 0.9]], [["a", 0.6], ["b", 0.4]]]}"#,
            &Rule::default(),
        );
        assert_eq!(inf.predictions[0].class.as_deref(), Some("b"));
        assert_eq!(inf.predictions[1].confidence, Some(0.6));
        let inf = run(
            "/v1/models/m:regress",
            r#"{"examples": [{"x": 1}]}"#,
            r#"{"result": [[3.5]]}"#,
            &Rule::default(),
        );
        assert_eq!(inf.predictions[0].value, Some(3.5));
    }

    #[test]
    fn bad_payloads() {
        let rule = Rule::default();
        let bad = |req: &str, resp: &str| {
            decode(
                &OwnedExchange::simple("/v1/models/m:predict", req.as_bytes(), resp.as_bytes())
                    .view(),
                &rule,
            )
            .is_err()
        };
        assert!(bad("{", "{}"));
        assert!(bad(r#"{"instances": [1]}"#, r#"{"nothing": 1}"#));
        assert!(bad(
            r#"{"instances": [1]}"#,
            r#"{"predictions": [[1, 2], [3]]}"#
        ));
        assert!(bad(
            r#"{"inputs": {"a": [1], "b": [1, 2]}}"#,
            r#"{"predictions": [1]}"#
        ));
    }
}
