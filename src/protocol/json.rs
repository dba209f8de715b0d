//! Generic JSON: any request/response whose prediction sits at known places, named in config by
//! RFC 6901 JSON pointers (`class_pointer`, `score_pointer`, `value_pointer`, optionally per row
//! of the array at `rows_pointer`). Lookup is serde_json's own `Value::pointer`.

use serde_json::Value;

use crate::routes::config::ScoreKind;

use super::tensor::{parse_lenient, special_float};
use super::{DecodeError, Exchange, Inference, Prediction, Rule};

/// The value `pointer` names in `doc`: `None` when the pointer is not set (""), the document
/// itself for `#` (the pointer's URI fragment form), else RFC 6901 lookup.
pub fn lookup<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
    match pointer {
        "" => None,
        "#" => Some(doc),
        p => doc.pointer(p),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok().or_else(|| special_float(s)),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn required<'a>(
    row: &'a Value,
    pointer: &str,
    what: &str,
) -> Result<Option<&'a Value>, DecodeError> {
    if pointer.is_empty() {
        return Ok(None);
    }
    lookup(row, pointer)
        .map(Some)
        .ok_or_else(|| DecodeError::Invalid(format!("nothing at {what} {pointer:?}")))
}

pub fn decode(ex: &Exchange<'_>, rule: &Rule) -> Result<Option<Inference>, DecodeError> {
    // A body-less request (a health check, a metadata GET) is not an inference.
    if ex.request.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let response: Value = parse_lenient(ex.response)?;
    let rows: Vec<&Value> = match required(&response, &rule.cfg.rows_pointer, "rows_pointer")? {
        None => vec![&response],
        Some(Value::Array(rows)) => rows.iter().collect(),
        Some(_) => {
            return Err(DecodeError::Invalid(format!(
                "rows_pointer {:?} is not an array",
                rule.cfg.rows_pointer
            )))
        }
    };
    let predictions = rows
        .iter()
        .map(|row| prediction(row, rule))
        .collect::<Result<Vec<_>, _>>()?;
    // The model named in the response, else in the request (where OpenAI-style bodies have it).
    let model = lookup(&response, &rule.cfg.model_pointer)
        .and_then(model_name)
        .or_else(|| {
            if rule.cfg.model_pointer.is_empty() {
                return None;
            }
            let request: Value = parse_lenient(ex.request).ok()?;
            lookup(&request, &rule.cfg.model_pointer).and_then(model_name)
        });
    Ok(Some(Inference {
        model,
        batch: Some(predictions.len()),
        predictions,
        inputs: None,
        tokens: None,
    }))
}

fn model_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn prediction(row: &Value, rule: &Rule) -> Result<Prediction, DecodeError> {
    let class = required(row, &rule.cfg.class_pointer, "class_pointer")?;
    let score = required(row, &rule.cfg.score_pointer, "score_pointer")?;
    let value = required(row, &rule.cfg.value_pointer, "value_pointer")?;
    let mut p = Prediction::default();
    if let Some(c) = class {
        p.class = Some(match c {
            Value::String(s) => s.clone(),
            Value::Number(n) => rule.numeric_class(n.as_f64().unwrap_or(f64::NAN)),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(DecodeError::Invalid(format!(
                    "class at {:?} is not a string or number",
                    rule.cfg.class_pointer
                )))
            }
        });
    }
    match score {
        None => {}
        Some(Value::Array(scores)) => {
            let scores: Vec<f64> = scores
                .iter()
                .map(number)
                .collect::<Option<_>>()
                .ok_or_else(|| DecodeError::Invalid("scores must be numbers".into()))?;
            if let Some((idx, confidence)) = rule.classify(&scores) {
                p.confidence = Some(confidence);
                if p.class.is_none() {
                    p.class = Some(rule.class_name(idx));
                }
            }
        }
        Some(s) => {
            let x =
                number(s).ok_or_else(|| DecodeError::Invalid("score must be a number".into()))?;
            if p.class.is_some() {
                // The score of the class named at class_pointer.
                p.confidence = Some(match rule.cfg.scores {
                    ScoreKind::Probabilities => x,
                    ScoreKind::Logits => 1.0 / (1.0 + (-x).exp()),
                });
            } else if let Some((idx, confidence)) = rule.classify(&[x]) {
                // A lone score is a binary classifier's score of class 1.
                p.class = Some(rule.class_name(idx));
                p.confidence = Some(confidence);
            }
        }
    }
    if let Some(v) = value {
        p.value =
            Some(number(v).ok_or_else(|| DecodeError::Invalid("value must be a number".into()))?);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::OwnedExchange;
    use crate::routes::config::PredictionConfig;

    fn rule(rows: &str, class: &str, score: &str, value: &str) -> Rule {
        Rule::from(PredictionConfig {
            rows_pointer: rows.into(),
            class_pointer: class.into(),
            score_pointer: score.into(),
            value_pointer: value.into(),
            model_pointer: "/model".into(),
            ..PredictionConfig::default()
        })
    }

    fn run(rule: &Rule, req: &str, resp: &str) -> Result<Option<Inference>, DecodeError> {
        decode(
            &OwnedExchange::simple("/predict", req.as_bytes(), resp.as_bytes()).view(),
            rule,
        )
    }

    #[test]
    fn single_document_with_class_and_score() {
        let r = rule("", "/result/label", "/result/score", "");
        let inf = run(
            &r,
            r#"{"model": "fraud-v2"}"#,
            r#"{"result": {"label": "fraud", "score": 0.93}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(inf.model.as_deref(), Some("fraud-v2"));
        assert_eq!(inf.predictions[0].class.as_deref(), Some("fraud"));
        assert_eq!(inf.predictions[0].confidence, Some(0.93));
        assert_eq!(inf.batch, Some(1));
    }

    #[test]
    fn rows_with_score_arrays_and_values() {
        let mut r = rule("/predictions", "", "/probs", "/price");
        r.cfg.class_labels = vec!["neg".into(), "pos".into()];
        let inf = run(
            &r,
            r#"{"x": 1}"#,
            r#"{"model": "m", "predictions": [{"probs": [0.2, 0.8], "price": 3}, {"probs": [0.9, 0.1], "price": 4.5}]}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(inf.batch, Some(2));
        assert_eq!(inf.predictions[0].class.as_deref(), Some("pos"));
        assert_eq!(inf.predictions[1].confidence, Some(0.9));
        assert_eq!(inf.predictions[1].value, Some(4.5));
        let r = rule("/predictions", "", "", "#");
        let inf = run(&r, "{}", r#"{"predictions": [1.5, 2.5]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(inf.predictions[1].value, Some(2.5));
    }

    #[test]
    fn missing_fields_and_empty_requests() {
        let r = rule("", "/label", "", "");
        assert!(run(&r, "{}", r#"{"other": 1}"#).is_err());
        assert!(run(&r, "{}", "not json").is_err());
        assert_eq!(run(&r, "", "whatever").unwrap(), None);
        let r = rule("/rows", "/label", "", "");
        assert!(run(&r, "{}", r#"{"rows": {"label": 1}}"#).is_err());
    }
}
