//! KServe V2 / Open Inference Protocol over gRPC (`inference.GRPCInferenceService`): a
//! `kserve_v2` route whose request says `content-type: application/grpc` is read here.
//! `ModelInfer` is one request/response pair; a `ModelStreamInfer` stream is read as one
//! exchange whose predictions are all of its answers'. Tensors come as typed `contents` or as
//! `raw_input_contents` / `raw_output_contents` (little-endian by datatype, BYTES with 4-byte
//! length prefixes) and go through the same rule as the REST adapter's.
//!
//! The messages are written here from the protocol's field numbers
//! (`open_inference_grpc.proto`; Triton's `ModelStreamInferResponse` wrapper from its
//! `grpc_service.proto`); fields the adapter does not read (parameters, requested outputs) are
//! skipped by `prost` as unknown.

use super::grpc_frame::messages;
use super::kserve_v2::{inference, Decoded};
use super::tensor::{decode_binary, Matrix, Values};
use super::{DecodeError, Exchange, Inference, Rule};

/// The gRPC service path prefix of the Open Inference Protocol.
pub const SERVICE: &str = "/inference.GRPCInferenceService/";

pub use crate::metrics::is_grpc;

/// `ModelInferRequest`: fields 1 model_name, 2 model_version, 3 id, 5 inputs, 7 raw contents.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferRequest {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(string, tag = "2")]
    pub model_version: String,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(message, repeated, tag = "5")]
    pub inputs: Vec<InferTensor>,
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub raw_input_contents: Vec<Vec<u8>>,
}

/// `ModelInferResponse`: fields 1 model_name, 2 model_version, 3 id, 5 outputs, 6 raw contents.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferResponse {
    #[prost(string, tag = "1")]
    pub model_name: String,
    #[prost(string, tag = "2")]
    pub model_version: String,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<InferTensor>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub raw_output_contents: Vec<Vec<u8>>,
}

/// Triton's `ModelStreamInferResponse`: 1 error_message, 2 infer_response. (MLServer streams
/// bare `ModelInferResponse` messages instead; both are read.)
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelStreamInferResponse {
    #[prost(string, tag = "1")]
    pub error_message: String,
    #[prost(message, optional, tag = "2")]
    pub infer_response: Option<ModelInferResponse>,
}

/// `InferInputTensor` and `InferOutputTensor` share these fields: 1 name, 2 datatype,
/// 3 shape, 5 contents.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub datatype: String,
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
    #[prost(message, optional, tag = "5")]
    pub contents: Option<InferTensorContents>,
}

/// `InferTensorContents`: one repeated field per family of datatypes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferTensorContents {
    #[prost(bool, repeated, tag = "1")]
    pub bool_contents: Vec<bool>,
    #[prost(int32, repeated, tag = "2")]
    pub int_contents: Vec<i32>,
    #[prost(int64, repeated, tag = "3")]
    pub int64_contents: Vec<i64>,
    #[prost(uint32, repeated, tag = "4")]
    pub uint_contents: Vec<u32>,
    #[prost(uint64, repeated, tag = "5")]
    pub uint64_contents: Vec<u64>,
    #[prost(float, repeated, tag = "6")]
    pub fp32_contents: Vec<f32>,
    #[prost(double, repeated, tag = "7")]
    pub fp64_contents: Vec<f64>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub bytes_contents: Vec<Vec<u8>>,
}

/// Decode one gRPC exchange of the Open Inference Protocol. `Ok(None)` for the calls that are
/// not inferences (health, metadata, repository).
pub fn decode(ex: &Exchange<'_>, rule: &Rule) -> Result<Option<Inference>, DecodeError> {
    let method = ex.path_only().strip_prefix(SERVICE);
    let stream = match method {
        Some("ModelInfer") => false,
        Some("ModelStreamInfer") => true,
        _ => return Ok(None),
    };
    let encoding = |h: &http::HeaderMap| h.get("grpc-encoding").map(|v| v.as_bytes().to_vec());
    let (req_enc, resp_enc) = (encoding(ex.request_headers), encoding(ex.response_headers));
    let requests = messages(ex.request, req_enc.as_deref())?;
    let responses = messages(ex.response, resp_enc.as_deref())?;
    if requests.is_empty() || responses.is_empty() {
        return Err(DecodeError::Missing("gRPC message"));
    }
    if !stream && (requests.len() != 1 || responses.len() != 1) {
        return Err(DecodeError::Invalid(format!(
            "ModelInfer with {} request and {} response messages",
            requests.len(),
            responses.len()
        )));
    }
    let mut merged: Option<Inference> = None;
    for (req, resp) in requests.iter().zip(responses.iter()) {
        let req = prost::Message::decode(&**req).map_err(proto_error)?;
        let resp = if stream {
            stream_response(resp)?
        } else {
            prost::Message::decode(&**resp).map_err(proto_error)?
        };
        let one = pair(req, resp, rule)?;
        merged = Some(match merged {
            None => one,
            Some(mut all) => {
                merge(&mut all, one);
                all
            }
        });
    }
    Ok(merged)
}

fn proto_error(e: prost::DecodeError) -> DecodeError {
    DecodeError::Invalid(format!("protobuf: {e}"))
}

/// A stream's answer: a bare `ModelInferResponse` (MLServer) or Triton's wrapper. A bare
/// response has outputs at field 5; the wrapper has only fields 1 and 2.
fn stream_response(msg: &[u8]) -> Result<ModelInferResponse, DecodeError> {
    if let Ok(bare) = <ModelInferResponse as prost::Message>::decode(msg) {
        if !bare.outputs.is_empty() {
            return Ok(bare);
        }
    }
    let wrapped: ModelStreamInferResponse = prost::Message::decode(msg).map_err(proto_error)?;
    if !wrapped.error_message.is_empty() {
        return Err(DecodeError::Invalid(format!(
            "stream answer is an error: {}",
            wrapped.error_message
        )));
    }
    wrapped
        .infer_response
        .ok_or(DecodeError::Missing("infer_response"))
}

/// One request/response pair through the REST adapter's rule.
fn pair(
    req: ModelInferRequest,
    resp: ModelInferResponse,
    rule: &Rule,
) -> Result<Inference, DecodeError> {
    let inputs = tensors(req.inputs, req.raw_input_contents)?;
    let outputs = tensors(resp.outputs, resp.raw_output_contents)?;
    let model = (!resp.model_name.is_empty()).then_some(resp.model_name);
    inference(model, &req.model_name, &inputs, &outputs, rule)
}

/// Several pairs of one stream as one inference: every answer's predictions and the inputs'
/// rows (when the tensors agree in signature), the batch size being all rows.
fn merge(all: &mut Inference, one: Inference) {
    all.predictions.extend(one.predictions);
    all.batch = match (all.batch, one.batch) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    if let (Some(a), Some(b)) = (all.inputs.as_mut(), one.inputs) {
        if a.signature == b.signature && a.features == b.features && a.kept == b.kept {
            a.rows += b.rows;
            a.values.extend(b.values);
            a.nan += b.nan;
            a.inf += b.inf;
        }
    }
}

/// Tensors with their data: all typed `contents`, or all raw (one raw entry per tensor, in
/// order), as the protocol requires.
fn tensors(tensors: Vec<InferTensor>, raw: Vec<Vec<u8>>) -> Result<Vec<Decoded>, DecodeError> {
    if !raw.is_empty() && raw.len() != tensors.len() {
        return Err(DecodeError::Invalid(format!(
            "{} raw contents for {} tensors",
            raw.len(),
            tensors.len()
        )));
    }
    let mut raw = raw.into_iter();
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let values = match raw.next() {
            Some(bytes) => decode_binary(&t.name, &t.datatype, &bytes)?,
            None => typed(&t)?,
        };
        let matrix = Matrix::from_shape(&t.name, &t.shape, values)?;
        out.push(Decoded::whole(t.name, t.datatype, t.shape, matrix));
    }
    Ok(out)
}

/// Typed contents by datatype (FP16 and BF16 have no typed field: raw only).
fn typed(t: &InferTensor) -> Result<Values, DecodeError> {
    let Some(c) = &t.contents else {
        return Err(DecodeError::Invalid(format!(
            "tensor {:?} has no contents",
            t.name
        )));
    };
    let nums = |v: Vec<f64>| Ok(Values::Num(v));
    match t.datatype.as_str() {
        "BOOL" => nums(
            c.bool_contents
                .iter()
                .map(|&b| f64::from(u8::from(b)))
                .collect(),
        ),
        "INT8" | "INT16" | "INT32" => nums(c.int_contents.iter().map(|&x| f64::from(x)).collect()),
        "INT64" => nums(c.int64_contents.iter().map(|&x| x as f64).collect()),
        "UINT8" | "UINT16" | "UINT32" => {
            nums(c.uint_contents.iter().map(|&x| f64::from(x)).collect())
        }
        "UINT64" => nums(c.uint64_contents.iter().map(|&x| x as f64).collect()),
        "FP32" => nums(c.fp32_contents.iter().map(|&x| f64::from(x)).collect()),
        "FP64" => nums(c.fp64_contents.clone()),
        "BYTES" => Ok(Values::Str(
            c.bytes_contents
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect(),
        )),
        other => Err(DecodeError::Invalid(format!(
            "tensor {:?}: datatype {other} has no typed contents",
            t.name
        ))),
    }
}
