//! KServe V2 / Open Inference Protocol over REST (`POST /v2/models/{name}[/versions/{v}]/infer`):
//! input and output tensors decoded by `datatype` and `shape`, JSON or the binary tensor
//! extension (`Inference-Header-Content-Length`, as Triton and `tritonclient` use it).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::tensor::{
    decode_binary, is_integer_datatype, is_numeric_datatype, parse_lenient, parse_lenient_borrowed,
    Flat, Matrix, Values,
};
use super::{DecodeError, Exchange, Inference, InputSignature, Inputs, Rule};

/// Header giving the length of the JSON part when binary tensors follow it.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

#[derive(Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
struct Request<D> {
    #[serde(default = "Vec::new")]
    inputs: Vec<Tensor<D>>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    model_name: Option<String>,
    #[serde(default)]
    outputs: Vec<Tensor<Flat>>,
}

/// A tensor with its `data` parsed whole (`D` = [`Flat`]), or kept as the JSON text it came as
/// (`&RawValue`: checked as JSON, not yet read) for the datatype and shape, which may come after
/// it, to decide how much of it to read.
#[derive(Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
struct Tensor<D> {
    name: String,
    #[serde(default)]
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(default = "Option::default")]
    data: Option<D>,
}

/// A tensor's `data`, parsed or not.
enum Data<'a> {
    Parsed(Flat),
    Raw(&'a RawValue),
}

impl From<Flat> for Data<'_> {
    fn from(f: Flat) -> Self {
        Data::Parsed(f)
    }
}

impl<'a> From<&'a RawValue> for Data<'a> {
    fn from(r: &'a RawValue) -> Self {
        Data::Raw(r)
    }
}

#[derive(Deserialize, Default)]
struct Parameters {
    #[serde(default)]
    binary_data_size: Option<u64>,
}

/// A decoded tensor, whichever transport it came by (JSON, the binary extension, or gRPC's
/// typed or raw contents in `kserve_v2_grpc`).
pub(super) struct Decoded {
    pub(super) name: String,
    pub(super) datatype: String,
    pub(super) shape: Vec<i64>,
    /// `rows` rows of the tensor: every column, or (an input whose later columns nobody reads)
    /// only the first `matrix.width` of each row's `width`.
    pub(super) matrix: Matrix,
    /// Elements per row in the tensor.
    pub(super) width: usize,
    /// NaN and infinite values among every element, read or not.
    pub(super) nan: u64,
    pub(super) inf: u64,
}

impl Decoded {
    /// A tensor decoded whole.
    pub(super) fn whole(name: String, datatype: String, shape: Vec<i64>, matrix: Matrix) -> Self {
        let (mut nan, mut inf) = (0, 0);
        if let Values::Num(v) = &matrix.values {
            for x in v {
                if x.is_nan() {
                    nan += 1;
                } else if x.is_infinite() {
                    inf += 1;
                }
            }
        }
        Self {
            name,
            datatype,
            shape,
            width: matrix.width,
            matrix,
            nan,
            inf,
        }
    }
}

/// `(model, version)` when the path is an infer call.
pub fn infer_path(path: &str) -> Option<(&str, Option<&str>)> {
    let rest = path.split("/v2/models/").nth(1)?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [model, "infer"] if !model.is_empty() => Some((model, None)),
        [model, "versions", v, "infer"] if !model.is_empty() => Some((model, Some(v))),
        _ => None,
    }
}

/// Decode a KServe V2 exchange: REST (JSON, binary extension), or gRPC when the request says
/// `content-type: application/grpc` (see [`super::kserve_v2_grpc`]).
pub fn decode(ex: &Exchange<'_>, rule: &Rule) -> Result<Option<Inference>, DecodeError> {
    if super::kserve_v2_grpc::is_grpc(ex.request_headers) {
        return super::kserve_v2_grpc::decode(ex, rule);
    }
    let Some((path_model, _version)) = infer_path(ex.path_only()) else {
        return Ok(None);
    };
    let (json, binary) = split_body(ex.request, ex.request_headers)?;
    let mut fixed = None;
    let inputs = match rule.read_columns {
        // Everything is read: parse every tensor whole, as it comes.
        None => {
            let request: Request<Flat> = parse_lenient_borrowed(json, &mut fixed)?;
            tensors_of(request.inputs, binary, None)?
        }
        Some(read) => {
            let request: Request<&RawValue> = parse_lenient_borrowed(json, &mut fixed)?;
            tensors_of(request.inputs, binary, Some(read))?
        }
    };
    let (json, binary) = split_body(ex.response, ex.response_headers)?;
    let response: Response = parse_lenient(json)?;
    let outputs = tensors_of(response.outputs, binary, None)?;
    inference(
        response.model_name.filter(|m| !m.is_empty()),
        path_model,
        &inputs,
        &outputs,
        rule,
    )
    .map(Some)
}

/// What a request's input tensors and its response's output tensors say, the same whichever
/// transport carried them: predictions by the route's rule, batch size, the input table.
pub(super) fn inference(
    model: Option<String>,
    fallback_model: &str,
    inputs: &[Decoded],
    outputs: &[Decoded],
    rule: &Rule,
) -> Result<Inference, DecodeError> {
    let labels = pick(outputs, &rule.cfg.label_output, |t| {
        t.datatype == "BYTES" || (is_integer_datatype(&t.datatype) && t.datatype != "BOOL")
    })?;
    let scores = pick(outputs, &rule.cfg.score_output, |t| is_float(&t.datatype))?;
    let predictions = rule.predictions(labels.map(|t| &t.matrix), scores.map(|t| &t.matrix))?;
    let batch = inputs
        .first()
        .map(|t| t.matrix.rows)
        .or((!predictions.is_empty()).then_some(predictions.len()));
    Ok(Inference {
        model: Some(model.unwrap_or_else(|| fallback_model.to_string())),
        predictions,
        batch,
        inputs: (!inputs.is_empty()).then(|| inputs_of(inputs, rule.read_columns)),
        ..Inference::default()
    })
}

/// Splits a body into its JSON part and the binary tensor data after it.
fn split_body<'a>(
    body: &'a [u8],
    headers: &http::HeaderMap,
) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
    match headers.get(HEADER_LENGTH) {
        None => Ok((body, &[])),
        Some(v) => {
            let n: usize = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| DecodeError::Invalid(format!("bad {HEADER_LENGTH} header")))?;
            if n > body.len() {
                return Err(DecodeError::Invalid(format!(
                    "{HEADER_LENGTH} {n} is longer than the body ({})",
                    body.len()
                )));
            }
            Ok(body.split_at(n))
        }
    }
}

/// The tensors of one body. `read`: how many leading columns of the input table (see
/// [`inputs_of`]) anything reads; `None` for all. Columns past it are scanned and checked but
/// not parsed (see [`super::scan`]).
fn tensors_of<'a, D: Into<Data<'a>>>(
    tensors: Vec<Tensor<D>>,
    binary: &[u8],
    read: Option<usize>,
) -> Result<Vec<Decoded>, DecodeError> {
    let mut offset = 0usize;
    // Rows of the first numeric tensor, and the table columns before this tensor.
    let mut table: Option<usize> = None;
    let mut columns = 0usize;
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let size = t.parameters.as_ref().and_then(|p| p.binary_data_size);
        let dims = Matrix::dims(&t.shape);
        // Columns of this tensor anything reads: numeric inputs in the table, up to `read`.
        let take = match (read, dims) {
            (None, _) => None,
            (Some(_), _) if !is_numeric_datatype(&t.datatype) => Some(0),
            (Some(_), None) => Some(0),
            (Some(read), Some((_, rows, width))) => {
                let rows0 = *table.get_or_insert(rows);
                Some(if rows0 == rows {
                    let take = width.min(read.saturating_sub(columns));
                    columns += width;
                    take
                } else {
                    0
                })
            }
        };
        let decoded = match (size, t.data.map(Into::into), take) {
            (Some(size), data, _) => {
                // Data beside binary data is not read, but must still be tensor data.
                if let Some(Data::Raw(raw)) = data {
                    super::scan::scan(raw.get().as_bytes(), 1, 0)?;
                }
                let size = usize::try_from(size)
                    .ok()
                    .filter(|s| {
                        offset
                            .checked_add(*s)
                            .is_some_and(|end| end <= binary.len())
                    })
                    .ok_or_else(|| {
                        DecodeError::Invalid(format!(
                            "tensor {:?}: binary_data_size runs past the body",
                            t.name
                        ))
                    })?;
                let raw = &binary[offset..offset + size];
                offset += size;
                let values = decode_binary(&t.name, &t.datatype, raw)?;
                let matrix = Matrix::from_shape(&t.name, &t.shape, values)?;
                Decoded::whole(t.name, t.datatype, t.shape, matrix)
            }
            (None, Some(Data::Parsed(flat)), _) => {
                let values = flat.into_values(&t.name, &t.datatype)?;
                let matrix = Matrix::from_shape(&t.name, &t.shape, values)?;
                Decoded::whole(t.name, t.datatype, t.shape, matrix)
            }
            (None, Some(Data::Raw(raw)), take) => {
                let (_, rows, width) = dims.unwrap_or((0, 0, 0));
                let take = take.unwrap_or(width).min(width);
                let scanned = super::scan::scan(raw.get().as_bytes(), width, take)?;
                let values = scanned.flat.into_values(&t.name, &t.datatype)?;
                if dims.map(|d| d.0) != Some(scanned.count) {
                    return Err(DecodeError::Shape {
                        tensor: t.name,
                        shape: t.shape,
                        elements: scanned.count,
                    });
                }
                Decoded {
                    name: t.name,
                    datatype: t.datatype,
                    shape: t.shape,
                    matrix: Matrix {
                        rows,
                        width: take,
                        values,
                    },
                    width,
                    nan: scanned.nan,
                    inf: scanned.inf,
                }
            }
            (None, None, _) => {
                return Err(DecodeError::Invalid(format!(
                    "tensor {:?} has no data",
                    t.name
                )))
            }
        };
        out.push(decoded);
    }
    Ok(out)
}

fn is_float(datatype: &str) -> bool {
    matches!(datatype, "FP16" | "BF16" | "FP32" | "FP64")
}

fn pick<'a>(
    tensors: &'a [Decoded],
    name: &str,
    auto: impl Fn(&Decoded) -> bool,
) -> Result<Option<&'a Decoded>, DecodeError> {
    if name.is_empty() {
        Ok(tensors.iter().find(|t| auto(t)))
    } else {
        tensors
            .iter()
            .find(|t| t.name == name)
            .map(Some)
            .ok_or_else(|| DecodeError::Invalid(format!("no output tensor named {name:?}")))
    }
}

/// The numeric inputs as a table: columns of every numeric input with as many rows as the first,
/// of which the first `read` (all for `None`) are kept in `values`.
fn inputs_of(tensors: &[Decoded], read: Option<usize>) -> Inputs {
    let signature = tensors
        .iter()
        .map(|t| InputSignature {
            name: t.name.clone(),
            datatype: t.datatype.clone(),
            shape: t.shape.iter().skip(1).copied().collect(),
        })
        .collect();
    let numeric: Vec<&Decoded> = tensors
        .iter()
        .filter(|t| is_numeric_datatype(&t.datatype))
        .collect();
    let nan = numeric.iter().map(|t| t.nan).sum();
    let inf = numeric.iter().map(|t| t.inf).sum();
    let rows = numeric.first().map_or(0, |t| t.matrix.rows);
    let table: Vec<&Decoded> = numeric
        .into_iter()
        .filter(|t| t.matrix.rows == rows)
        .collect();
    let features: usize = table.iter().map(|t| t.width).sum();
    // Each table tensor's kept columns: the table's first `read`, as far as decoded.
    let mut left = read.unwrap_or(usize::MAX);
    let takes: Vec<usize> = table
        .iter()
        .map(|t| {
            let take = t.matrix.width.min(left);
            left = left.saturating_sub(t.width);
            take
        })
        .collect();
    let kept: usize = takes.iter().sum();
    let mut values = Vec::with_capacity(rows * kept);
    for r in 0..rows {
        for (t, &take) in table.iter().zip(&takes) {
            if let Some(row) = t.matrix.row_num(r) {
                values.extend_from_slice(&row[..take]);
            }
        }
    }
    Inputs {
        signature,
        rows,
        features,
        kept,
        values,
        nan,
        inf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::OwnedExchange;
    use crate::routes::config::{PredictionConfig, ScoreKind};

    const IRIS_REQUEST: &str = r#"{"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}], "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}"#;

    fn run(req: &str, resp: &str, rule: &Rule) -> Result<Option<Inference>, DecodeError> {
        decode(
            &OwnedExchange::simple(
                "/v2/models/iris/versions/1/infer",
                req.as_bytes(),
                resp.as_bytes(),
            )
            .view(),
            rule,
        )
    }

    #[test]
    fn paths() {
        assert_eq!(infer_path("/v2/models/iris/infer"), Some(("iris", None)));
        assert_eq!(
            infer_path("/v2/models/iris/versions/v3/infer"),
            Some(("iris", Some("v3")))
        );
        assert_eq!(infer_path("/v2/models/iris/ready"), None);
        assert_eq!(infer_path("/v2/models/iris"), None);
        assert_eq!(infer_path("/v2/health/ready"), None);
    }

    #[test]
    fn sklearn_labels_and_probabilities() {
        let resp = r#"{"model_name": "iris", "model_version": "1", "outputs": [
            {"name": "predict", "shape": [2, 1], "datatype": "INT64", "data": [0, 2]},
            {"name": "predict_proba", "shape": [2, 3], "datatype": "FP64", "data": [0.97, 0.02, 0.01, 0.0, 0.1, 0.9]}]}"#;
        let inf = run(IRIS_REQUEST, resp, &Rule::default()).unwrap().unwrap();
        assert_eq!(inf.model.as_deref(), Some("iris"));
        assert_eq!(inf.batch, Some(2));
        let classes: Vec<_> = inf
            .predictions
            .iter()
            .map(|p| p.class.clone().unwrap())
            .collect();
        assert_eq!(classes, ["0", "2"]);
        assert_eq!(inf.predictions[0].confidence, Some(0.97));
        let inputs = inf.inputs.unwrap();
        assert_eq!((inputs.rows, inputs.features), (2, 4));
        assert_eq!(inputs.signature[0].shape, vec![4]);
        assert_eq!(inputs.values[4], 6.7);
    }

    #[test]
    fn logits_with_named_output_and_class_names() {
        let resp = r#"{"model_name": "net", "outputs": [
            {"name": "embedding", "shape": [1, 2], "datatype": "FP32", "data": [[9, 9]]},
            {"name": "logits", "shape": [1, 3], "datatype": "FP32", "data": [[0.0, 2.0, 0.0]]}]}"#;
        let rule = Rule::from(PredictionConfig {
            score_output: "logits".into(),
            scores: ScoreKind::Logits,
            class_labels: vec!["a".into(), "b".into(), "c".into()],
            ..PredictionConfig::default()
        });
        let inf = run(IRIS_REQUEST, resp, &rule).unwrap().unwrap();
        let p = &inf.predictions[0];
        assert_eq!(p.class.as_deref(), Some("b"));
        let e2 = 2f64.exp();
        assert!((p.confidence.unwrap() - e2 / (e2 + 2.0)).abs() < 1e-12);
        let missing = Rule::from(PredictionConfig {
            score_output: "nope".into(),
            ..PredictionConfig::default()
        });
        assert!(run(IRIS_REQUEST, resp, &missing).is_err());
    }

    #[test]
    fn regression_and_bytes_labels() {
        let resp =
            r#"{"outputs": [{"name": "y", "shape": [2], "datatype": "FP32", "data": [1.5, -3]}]}"#;
        let inf = run(IRIS_REQUEST, resp, &Rule::default()).unwrap().unwrap();
        assert_eq!(inf.model.as_deref(), Some("iris"));
        assert_eq!(inf.predictions[1].value, Some(-3.0));
        let resp = r#"{"outputs": [{"name": "label", "shape": [2, 1], "datatype": "BYTES", "data": ["setosa", "virginica"]}]}"#;
        let inf = run(IRIS_REQUEST, resp, &Rule::default()).unwrap().unwrap();
        assert_eq!(inf.predictions[1].class.as_deref(), Some("virginica"));
    }

    #[test]
    fn binary_tensor_extension() {
        let json = br#"{"model_name":"iris","outputs":[{"name":"predict_proba","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
        let mut body = json.to_vec();
        body.extend_from_slice(&0.25f32.to_le_bytes());
        body.extend_from_slice(&0.75f32.to_le_bytes());
        let mut ex = OwnedExchange::simple("/v2/models/iris/infer", IRIS_REQUEST.as_bytes(), &body);
        ex.response_headers
            .insert(HEADER_LENGTH, json.len().to_string().parse().unwrap());
        let inf = decode(&ex.view(), &Rule::default()).unwrap().unwrap();
        assert_eq!(inf.predictions[0].class.as_deref(), Some("1"));
        assert_eq!(inf.predictions[0].confidence, Some(0.75));
        ex.response_headers
            .insert(HEADER_LENGTH, (body.len() + 1).to_string().parse().unwrap());
        assert!(decode(&ex.view(), &Rule::default()).is_err());
    }

    #[test]
    fn nan_inputs_and_bad_shapes() {
        let req = r#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [NaN, Infinity, 1]}]}"#;
        let resp = r#"{"outputs": [{"name": "y", "shape": [1], "datatype": "FP64", "data": [1]}]}"#;
        let inputs = run(req, resp, &Rule::default())
            .unwrap()
            .unwrap()
            .inputs
            .unwrap();
        assert_eq!((inputs.nan, inputs.inf), (1, 1));
        let bad =
            r#"{"outputs": [{"name": "y", "shape": [2, 2], "datatype": "FP64", "data": [1]}]}"#;
        assert!(matches!(
            run(req, bad, &Rule::default()),
            Err(DecodeError::Shape { .. })
        ));
        assert!(run("{", resp, &Rule::default()).is_err());
        assert!(run(
            req,
            r#"{"outputs": [{"name": "y", "datatype": "FP64"}]}"#,
            &Rule::default()
        )
        .is_err());
    }
}
