//! Golden sets: JSON Lines of requests with known answers, and the checks that judge an
//! [`Answer`] against them.
//!
//! One line per golden row:
//! ```json
//! {"request": {"inputs": [...]}, "expect": {"class": "2"}}
//! {"path": "/v1/chat/completions", "request": {...}, "expect": {"regex": "(?i)paris"}}
//! {"request": {...}, "expect": {"value": [[0.1, 0.9]], "pointer": "/outputs/1/data", "abs_tolerance": 0.01}}
//! ```
//! `request` is the body (a JSON value sent as JSON, or a string sent as is); `path` overrides the
//! probe's. A gRPC row gives `grpc` instead of `request`: the JSON form of a `ModelInferRequest`
//! (`{"model_name": "iris", "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4],
//! "data": [5.1, 3.5, 1.4, 0.2]}]}`, or typed `contents` such as `{"fp32_contents": [...]}`
//! instead of `data`), sent over h2c as a unary `ModelInfer` call to
//! `/inference.GRPCInferenceService/ModelInfer` (no `path`); a non-OK `grpc-status` is an
//! error. `expect` holds one or more checks, all of which must pass:
//! - `class`: the predicted class of the first row, or an array with one class per row;
//! - `top_k` (with `class`): the class is among the `top_k` highest scores of its row, the
//!   scores read at `pointer` (a row, or rows of a batch);
//! - `value`: a number or a (nested) array compared element-wise with tolerance against the
//!   numbers at `pointer` in the response, or without `pointer` the rows' predicted values;
//! - `text` (exact after trimming) or `regex` against the generated text (OpenAI-compatible
//!   answers), or against the string at `pointer`;
//! - `json_schema`: the generated text (or the string at `pointer`) is a JSON document valid
//!   against this JSON Schema (structured output); given inline as an object, or as a string: a
//!   schema file, relative to the golden set's folder. A value at `pointer` that is not a string
//!   is judged as it is;
//! - `abs_tolerance`, `rel_tolerance`: this row's tolerances instead of the probe's.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::client::answer::{close, flatten_numbers, Answer};
use crate::protocol::json::lookup;
use crate::protocol::schema::JsonSchema;
use crate::protocol::Rule;

/// Most rows in one golden set: a round sends every row, one at a time.
pub const MAX_ROWS: usize = 10_000;

/// One golden row, ready to send and judge.
#[derive(Debug, Clone)]
pub struct GoldenRow {
    /// 1-based line in the file, for log lines.
    pub line: usize,
    pub path: Option<String>,
    pub body: Bytes,
    /// A gRPC `ModelInfer` call: `body` is the framed `ModelInferRequest`.
    pub grpc: bool,
    pub expect: Expect,
}

/// What a golden row's answer must be.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub classes: Option<Vec<String>>,
    pub top_k: Option<usize>,
    pub values: Option<Vec<f64>>,
    pub pointer: Option<String>,
    pub text: Option<String>,
    pub regex: Option<Regex>,
    pub json_schema: Option<Arc<JsonSchema>>,
    pub abs_tolerance: Option<f64>,
    pub rel_tolerance: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    request: Option<Value>,
    #[serde(default)]
    grpc: Option<Value>,
    expect: RawExpect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    class: Option<Value>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    pointer: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    json_schema: Option<Value>,
    #[serde(default)]
    abs_tolerance: Option<f64>,
    #[serde(default)]
    rel_tolerance: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    #[error("cannot read golden set {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Row {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: no golden rows")]
    Empty { path: String },
    #[error("{path}: more than {MAX_ROWS} golden rows")]
    TooMany { path: String },
}

/// Load and check a golden set; `default_path` is the probe's `path` (rows without their own
/// need it).
pub fn load(file: &Path, default_path: &str) -> Result<Vec<GoldenRow>, GoldenError> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|source| GoldenError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_in(&text, &shown, default_path, file.parent())
}

/// Parse golden rows from JSON Lines text (blank lines and lines starting with `#` skipped);
/// schema files are relative to the working directory.
pub fn parse(text: &str, shown: &str, default_path: &str) -> Result<Vec<GoldenRow>, GoldenError> {
    parse_in(text, shown, default_path, None)
}

/// [`parse`], with schema files relative to `folder` (the golden set's).
fn parse_in(
    text: &str,
    shown: &str,
    default_path: &str,
    folder: Option<&Path>,
) -> Result<Vec<GoldenRow>, GoldenError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let bad = |message: String| GoldenError::Row {
            path: shown.to_string(),
            line: line_no,
            message,
        };
        if rows.len() == MAX_ROWS {
            return Err(GoldenError::TooMany {
                path: shown.to_string(),
            });
        }
        let raw: RawRow = serde_json::from_str(t).map_err(|e| bad(e.to_string()))?;
        let grpc = raw.grpc.is_some();
        if grpc && (raw.request.is_some() || raw.path.is_some()) {
            return Err(bad(
                "a gRPC row gives `grpc` alone, without `request` or `path`".into(),
            ));
        }
        if raw.path.is_none() && default_path.is_empty() && !grpc {
            return Err(bad("no `path` here and the probe sets none".into()));
        }
        if let Some(p) = &raw.path {
            if !p.starts_with('/') {
                return Err(bad(format!("path must start with /, got {p:?}")));
            }
        }
        let body = match (raw.request, raw.grpc) {
            (_, Some(g)) => crate::client::grpc::body_from_json(&g).map_err(bad)?,
            (Some(Value::String(s)), None) => Bytes::from(s),
            (Some(other), None) => {
                Bytes::from(serde_json::to_vec(&other).map_err(|e| bad(e.to_string()))?)
            }
            (None, None) => return Err(bad("a row needs `request` (or `grpc`)".into())),
        };
        let e = raw.expect;
        let classes = match e.class {
            None => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(class_string)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        bad("class must be a string, a number or an array of them".into())
                    })?,
            ),
            Some(v) => Some(vec![class_string(&v).ok_or_else(|| {
                bad("class must be a string, a number or an array of them".into())
            })?]),
        };
        let values = match e.value {
            None => None,
            Some(v) => {
                let mut out = Vec::new();
                if !flatten_numbers(&v, &mut out) {
                    return Err(bad(
                        "value must be a number or a (nested) array of numbers".into()
                    ));
                }
                Some(out)
            }
        };
        let regex = match e.regex {
            None => None,
            Some(r) => Some(Regex::new(&r).map_err(|err| bad(format!("regex: {err}")))?),
        };
        let json_schema = match e.json_schema {
            None => None,
            Some(Value::String(file)) => {
                let file = folder.map_or_else(|| Path::new(&file).to_path_buf(), |d| d.join(&file));
                Some(JsonSchema::load(&file).map_err(|err| bad(format!("json_schema: {err}")))?)
            }
            Some(schema) => Some(
                JsonSchema::compile(&schema).map_err(|err| bad(format!("json_schema: {err}")))?,
            ),
        }
        .map(Arc::new);
        if e.top_k.is_some() && (classes.is_none() || e.pointer.is_none()) {
            return Err(bad("top_k needs class and pointer (the scores)".into()));
        }
        if e.top_k == Some(0) {
            return Err(bad("top_k must be at least 1".into()));
        }
        for (name, t) in [
            ("abs_tolerance", e.abs_tolerance),
            ("rel_tolerance", e.rel_tolerance),
        ] {
            if t.is_some_and(|t| !(t >= 0.0 && t.is_finite())) {
                return Err(bad(format!("{name} must be a finite number >= 0")));
            }
        }
        let expect = Expect {
            classes,
            top_k: e.top_k,
            values,
            pointer: e.pointer,
            text: e.text,
            regex,
            json_schema,
            abs_tolerance: e.abs_tolerance,
            rel_tolerance: e.rel_tolerance,
        };
        if expect.classes.is_none()
            && expect.values.is_none()
            && expect.text.is_none()
            && expect.regex.is_none()
            && expect.json_schema.is_none()
        {
            return Err(bad(
                "expect has no check (class, value, text, regex or json_schema)".into(),
            ));
        }
        rows.push(GoldenRow {
            line: line_no,
            path: raw.path,
            body,
            grpc,
            expect,
        });
    }
    if rows.is_empty() {
        return Err(GoldenError::Empty {
            path: shown.to_string(),
        });
    }
    Ok(rows)
}

/// A class written as a string or an integer (as `numeric_class` would show it).
fn class_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => i.to_string(),
            None => n.to_string(),
        }),
        _ => None,
    }
}

impl Expect {
    /// Whether `answer` is right; `Err` says why not in words (for debug logs).
    pub fn check(
        &self,
        answer: &Answer,
        rule: &Rule,
        default_abs: f64,
        default_rel: f64,
    ) -> Result<(), String> {
        let abs = self.abs_tolerance.unwrap_or(default_abs);
        let rel = self.rel_tolerance.unwrap_or(default_rel);
        let at_pointer = match &self.pointer {
            None => None,
            Some(p) => Some(
                answer
                    .json
                    .as_ref()
                    .and_then(|doc| lookup(doc, p))
                    .ok_or_else(|| format!("nothing at {p:?} in the answer"))?,
            ),
        };
        if let Some(want) = &self.classes {
            match (self.top_k, at_pointer) {
                (Some(k), Some(scores)) => top_k(want, k, scores, rule)?,
                _ => {
                    let got: Vec<Option<&str>> = answer
                        .predictions
                        .iter()
                        .map(|p| p.class.as_deref())
                        .collect();
                    let rows_ok = if want.len() == 1 {
                        !got.is_empty()
                    } else {
                        got.len() == want.len()
                    };
                    if !rows_ok || want.iter().zip(&got).any(|(w, g)| Some(w.as_str()) != *g) {
                        return Err(format!("class {got:?}, expected {want:?}"));
                    }
                }
            }
        }
        if let Some(want) = &self.values {
            let got: Vec<f64> = match at_pointer {
                Some(v) => {
                    let mut out = Vec::new();
                    if !flatten_numbers(v, &mut out) {
                        return Err("the answer at pointer is not numbers".into());
                    }
                    out
                }
                None => answer
                    .predictions
                    .iter()
                    .map(|p| p.value.unwrap_or(f64::NAN))
                    .collect(),
            };
            if got.len() != want.len() {
                return Err(format!("{} numbers, expected {}", got.len(), want.len()));
            }
            if let Some((i, (g, w))) = got
                .iter()
                .zip(want)
                .enumerate()
                .find(|(_, (g, w))| !close(**g, **w, abs, rel))
            {
                return Err(format!("element {i}: {g}, expected {w}"));
            }
        }
        if self.text.is_some() || self.regex.is_some() {
            let text = match at_pointer {
                Some(v) if self.classes.is_none() && self.values.is_none() => {
                    v.as_str().map(str::to_string)
                }
                _ => answer.text.clone(),
            }
            .ok_or("the answer has no text")?;
            if let Some(want) = &self.text {
                if text.trim() != want.trim() {
                    return Err(format!("text {text:?}, expected {want:?}"));
                }
            }
            if let Some(re) = &self.regex {
                if !re.is_match(&text) {
                    return Err(format!("text {text:?} does not match {:?}", re.as_str()));
                }
            }
        }
        if let Some(schema) = &self.json_schema {
            match at_pointer {
                Some(v) if !v.is_string() && self.classes.is_none() && self.values.is_none() => {
                    if !schema.is_valid(v) {
                        return Err(
                            "the value at pointer is not valid against the JSON Schema".into()
                        );
                    }
                }
                Some(Value::String(s)) if self.classes.is_none() && self.values.is_none() => {
                    schema.check_text(s)?
                }
                _ => schema.check_text(answer.text.as_deref().ok_or("the answer has no text")?)?,
            }
        }
        Ok(())
    }
}

/// Each wanted class among the `k` best scores of its row (`scores`: one row, or one per class).
fn top_k(want: &[String], k: usize, scores: &Value, rule: &Rule) -> Result<(), String> {
    let mut flat = Vec::new();
    if !flatten_numbers(scores, &mut flat) || flat.is_empty() {
        return Err("the scores at pointer are not numbers".into());
    }
    if flat.len() % want.len() != 0 {
        return Err(format!(
            "{} scores do not split into {} rows",
            flat.len(),
            want.len()
        ));
    }
    let width = flat.len() / want.len();
    for (row, w) in flat.chunks(width).zip(want) {
        let mut idx: Vec<usize> = (0..row.len()).collect();
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        if !idx.iter().take(k).any(|&i| rule.class_name(i) == *w) {
            let top: Vec<String> = idx.iter().take(k).map(|&i| rule.class_name(i)).collect();
            return Err(format!("{w:?} not in the top {k}: {top:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Prediction;

    fn answer(classes: &[&str], json: Value) -> Answer {
        Answer {
            predictions: classes
                .iter()
                .map(|c| Prediction {
                    class: Some(c.to_string()),
                    ..Prediction::default()
                })
                .collect(),
            text: Some("The capital is Paris.".into()),
            json: Some(json),
        }
    }

    #[test]
    fn rows_and_checks() {
        let text = r##"
# a comment
{"request": {"x": 1}, "expect": {"class": 2}}
{"path": "/b", "request": "raw", "expect": {"class": ["0", "2"]}}
{"request": {}, "expect": {"class": "b", "top_k": 2, "pointer": "/scores"}}
{"request": {}, "expect": {"value": [[0.5, 0.25]], "pointer": "/out", "abs_tolerance": 0.01}}
{"request": {}, "expect": {"regex": "(?i)paris"}}
{"request": {}, "expect": {"text": "nope"}}
"##;
        let rows = parse(text, "g.jsonl", "/a").unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[0].line, 3);
        assert_eq!(&rows[1].body[..], b"raw");
        let mut rule = Rule::default();
        rule.cfg.class_labels = vec!["a".into(), "b".into(), "c".into()];
        let doc = serde_json::json!({"scores": [0.5, 0.2, 0.3], "out": [0.505, 0.25]});
        let ok = |i: usize, a: &Answer| rows[i].expect.check(a, &rule, 1e-6, 1e-4);
        assert!(ok(0, &answer(&["2"], doc.clone())).is_ok());
        assert!(ok(0, &answer(&["1"], doc.clone())).is_err());
        assert!(ok(1, &answer(&["0", "2"], doc.clone())).is_ok());
        assert!(ok(1, &answer(&["0"], doc.clone())).is_err());
        // "b" (0.2) is third of three: not in the top 2.
        assert!(ok(2, &answer(&[], doc.clone())).is_err());
        let doc2 = serde_json::json!({"scores": [0.1, 0.5, 0.4]});
        assert!(ok(2, &answer(&[], doc2)).is_ok());
        assert!(ok(3, &answer(&[], doc.clone())).is_ok());
        assert!(ok(4, &answer(&[], doc.clone())).is_ok());
        assert!(ok(5, &answer(&[], doc)).is_err());
    }

    #[test]
    fn grpc_rows_need_no_path_and_take_no_request() {
        let g = r#"{"model_name": "iris", "inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}"#;
        let rows = parse(
            &format!("{{\"grpc\": {g}, \"expect\": {{\"class\": 1}}}}"),
            "g",
            "",
        )
        .unwrap();
        assert!(rows[0].grpc && rows[0].path.is_none());
        assert_eq!(rows[0].body[0], 0, "a framed, uncompressed gRPC message");
        for bad in [
            format!("{{\"grpc\": {g}, \"request\": {{}}, \"expect\": {{\"class\": 1}}}}"),
            format!("{{\"grpc\": {g}, \"path\": \"/x\", \"expect\": {{\"class\": 1}}}}"),
            r#"{"grpc": {"model_name": "m", "inputs": []}, "expect": {"class": 1}}"#.into(),
            r#"{"expect": {"class": 1}}"#.into(),
        ] {
            let e = parse(&bad, "g", "/a").unwrap_err().to_string();
            assert!(e.starts_with("g:1: "), "{e}");
        }
    }

    #[test]
    fn json_schema_rows_inline_or_from_a_file_beside_the_golden_set() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("city.json"),
            r#"{"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}"#,
        )
        .unwrap();
        let golden = dir.path().join("g.jsonl");
        std::fs::write(
            &golden,
            concat!(
                r#"{"request": {}, "expect": {"json_schema": "city.json"}}"#,
                "\n",
                r#"{"request": {}, "expect": {"json_schema": {"type": "array"}, "pointer": "/out"}}"#,
                "\n",
            ),
        )
        .unwrap();
        let rows = load(&golden, "/v1/chat/completions").unwrap();
        let rule = Rule::default();
        let text = |t: &str| Answer {
            predictions: Vec::new(),
            text: Some(t.into()),
            json: Some(serde_json::json!({"out": [1], "s": "[2]"})),
        };
        let check = |i: usize, a: &Answer| rows[i].expect.check(a, &rule, 0.0, 0.0);
        assert!(check(0, &text(r#"{"city": "Paris"}"#)).is_ok());
        let e = check(0, &text(r#"{"town": "Paris"}"#)).unwrap_err();
        assert!(e.starts_with("not valid against the JSON Schema"), "{e}");
        let e = check(0, &text("Paris")).unwrap_err();
        assert!(e.starts_with("the answer is not JSON"), "{e}");
        // A value at pointer is judged as it is.
        assert!(check(1, &text("")).is_ok());
        let mut object = text("");
        object.json = Some(serde_json::json!({"out": {"a": 1}}));
        assert!(check(1, &object).is_err());
        // A schema that is not one, or a file that is not there, names the row.
        let e = parse(
            r#"{"request": {}, "expect": {"json_schema": {"type": 5}}}"#,
            "g",
            "/a",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("g:1: json_schema: invalid JSON Schema"),
            "{e}"
        );
        let e = parse(
            r#"{"request": {}, "expect": {"json_schema": "nope.json"}}"#,
            "g",
            "/a",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("g:1: json_schema: cannot read nope.json"),
            "{e}"
        );
    }

    #[test]
    fn bad_rows_name_their_line() {
        let e = parse("{\"request\": 1}\n", "g.jsonl", "/a").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("g.jsonl:1: missing field `expect`"),
            "{e}"
        );
        let e = parse("{\"request\": 1, \"expect\": {}}", "g.jsonl", "/a").unwrap_err();
        assert_eq!(
            e.to_string(),
            "g.jsonl:1: expect has no check (class, value, text, regex or json_schema)"
        );
        let e = parse("{\"request\": 1, \"expect\": {\"class\": 1}}", "g", "").unwrap_err();
        assert_eq!(e.to_string(), "g:1: no `path` here and the probe sets none");
        assert!(parse("\n# nothing\n", "g", "/a").is_err());
    }
}
