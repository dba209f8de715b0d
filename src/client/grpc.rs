//! Unary gRPC calls of the Open Inference Protocol over h2c, off the live path: the client the
//! load generator, canary probes and HTTP shadow targets share to send `ModelInfer`, the JSON
//! form of a `ModelInferRequest` golden rows are written in, and how a call's result is read
//! (its `grpc-status`, in a trailers-only answer's headers or in the trailers).

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use prost::Message;
use serde::Deserialize;
use serde_json::Value;

use super::send::{HttpClient, Reply};
use crate::protocol::grpc_frame::frame;
use crate::protocol::kserve_v2_grpc::{InferTensor, InferTensorContents, ModelInferRequest};

pub use crate::protocol::kserve_v2_grpc::{is_grpc, SERVICE};

/// The path of a unary `ModelInfer` call.
pub fn model_infer_path() -> String {
    format!("{SERVICE}ModelInfer")
}

/// A pooled client speaking HTTP/2 with prior knowledge (h2c), as gRPC servers expect; calls to
/// one server share one connection's streams.
pub fn h2c(connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector)
}

/// Set the headers a gRPC request needs (content type, `te: trailers`).
pub fn request_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(header::TE, HeaderValue::from_static("trailers"));
}

/// Whether a gRPC call succeeded: HTTP 200 and `grpc-status: 0` (in the trailers, or in the
/// headers of a trailers-only answer). `Err` says what it was instead.
pub fn result(reply: &Reply) -> Result<(), String> {
    if !reply.status.is_success() {
        return Err(format!("status {}", reply.status));
    }
    let from = |h: &HeaderMap| h.get("grpc-status").map(|v| v.as_bytes().to_vec());
    let Some(code) = from(&reply.trailers).or_else(|| from(&reply.headers)) else {
        return Err("gRPC answer without a grpc-status".into());
    };
    if code.trim_ascii() == b"0" {
        return Ok(());
    }
    let message = reply
        .trailers
        .get("grpc-message")
        .or_else(|| reply.headers.get("grpc-message"))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    Err(format!(
        "grpc-status {}: {message}",
        String::from_utf8_lossy(&code)
    ))
}

/// The JSON form of a `ModelInferRequest`:
/// `{"model_name": "iris", "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4],
/// "data": [5.1, 3.5, 1.4, 0.2]}]}`. Each input gives `data` (a flat or nested array, as in the
/// REST protocol, sent as the datatype's typed contents) or `contents` (the typed fields by
/// their protobuf names, e.g. `{"fp32_contents": [...]}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRequest {
    model_name: String,
    #[serde(default)]
    model_version: String,
    #[serde(default)]
    id: String,
    inputs: Vec<JsonTensor>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTensor {
    name: String,
    datatype: String,
    shape: Vec<i64>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    contents: Option<JsonContents>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct JsonContents {
    bool_contents: Vec<bool>,
    int_contents: Vec<i32>,
    int64_contents: Vec<i64>,
    uint_contents: Vec<u32>,
    uint64_contents: Vec<u64>,
    fp32_contents: Vec<f32>,
    fp64_contents: Vec<f64>,
    bytes_contents: Vec<String>,
}

/// A `ModelInferRequest` from its JSON form, encoded and framed as the body of a unary call.
pub fn body_from_json(v: &Value) -> Result<Bytes, String> {
    let req = request_from_json(v)?;
    Ok(Bytes::from(frame(&req.encode_to_vec())))
}

/// A `ModelInferRequest` from its JSON form (see [`JsonRequest`]).
pub fn request_from_json(v: &Value) -> Result<ModelInferRequest, String> {
    let j = JsonRequest::deserialize(v).map_err(|e| format!("gRPC request: {e}"))?;
    if j.model_name.is_empty() {
        return Err("gRPC request: model_name is empty".into());
    }
    if j.inputs.is_empty() {
        return Err("gRPC request: no inputs".into());
    }
    let mut inputs = Vec::with_capacity(j.inputs.len());
    for t in j.inputs {
        let contents = match (t.data, t.contents) {
            (Some(data), None) => typed(&t.name, &t.datatype, &data)?,
            (None, Some(c)) => InferTensorContents {
                bool_contents: c.bool_contents,
                int_contents: c.int_contents,
                int64_contents: c.int64_contents,
                uint_contents: c.uint_contents,
                uint64_contents: c.uint64_contents,
                fp32_contents: c.fp32_contents,
                fp64_contents: c.fp64_contents,
                bytes_contents: c
                    .bytes_contents
                    .into_iter()
                    .map(String::into_bytes)
                    .collect(),
            },
            _ => {
                return Err(format!(
                    "gRPC request: input {:?} needs exactly one of data and contents",
                    t.name
                ))
            }
        };
        inputs.push(InferTensor {
            name: t.name,
            datatype: t.datatype,
            shape: t.shape,
            contents: Some(contents),
        });
    }
    Ok(ModelInferRequest {
        model_name: j.model_name,
        model_version: j.model_version,
        id: j.id,
        inputs,
        raw_input_contents: Vec::new(),
    })
}

/// `data` (flattened row-major) as the typed contents field of `datatype`.
fn typed(name: &str, datatype: &str, data: &Value) -> Result<InferTensorContents, String> {
    let mut flat = Vec::new();
    flatten(data, &mut flat);
    let bad = |what: &str| format!("gRPC request: input {name:?} ({datatype}): {what}");
    let nums = || -> Result<Vec<f64>, String> {
        flat.iter()
            .map(|v| v.as_f64().ok_or_else(|| bad("data must be numbers")))
            .collect()
    };
    let ints = || -> Result<Vec<i64>, String> {
        flat.iter()
            .map(|v| v.as_i64().ok_or_else(|| bad("data must be integers")))
            .collect()
    };
    let mut c = InferTensorContents::default();
    match datatype {
        "BOOL" => {
            c.bool_contents = flat
                .iter()
                .map(|v| v.as_bool().ok_or_else(|| bad("data must be booleans")))
                .collect::<Result<_, _>>()?;
        }
        "INT8" | "INT16" | "INT32" => {
            c.int_contents = ints()?
                .into_iter()
                .map(|x| i32::try_from(x).map_err(|_| bad("value out of range")))
                .collect::<Result<_, _>>()?;
        }
        "INT64" => c.int64_contents = ints()?,
        "UINT8" | "UINT16" | "UINT32" => {
            c.uint_contents = ints()?
                .into_iter()
                .map(|x| u32::try_from(x).map_err(|_| bad("value out of range")))
                .collect::<Result<_, _>>()?;
        }
        "UINT64" => {
            c.uint64_contents = ints()?
                .into_iter()
                .map(|x| u64::try_from(x).map_err(|_| bad("value out of range")))
                .collect::<Result<_, _>>()?;
        }
        "FP32" => c.fp32_contents = nums()?.into_iter().map(|x| x as f32).collect(),
        "FP64" => c.fp64_contents = nums()?,
        "BYTES" => {
            c.bytes_contents = flat
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(|s| s.as_bytes().to_vec())
                        .ok_or_else(|| bad("data must be strings"))
                })
                .collect::<Result<_, _>>()?;
        }
        _ => return Err(bad("this datatype has no typed contents; use raw bytes")),
    }
    Ok(c)
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::grpc_frame::messages;
    use http::StatusCode;

    #[test]
    fn json_form_encodes_typed_contents() {
        let v = serde_json::json!({"model_name": "iris", "inputs": [
            {"name": "x", "datatype": "FP64", "shape": [2, 2], "data": [[1, 2.5], [3, 4]]},
            {"name": "s", "datatype": "BYTES", "shape": [1], "contents": {"bytes_contents": ["a"]}}
        ]});
        let body = body_from_json(&v).unwrap();
        let msgs = messages(&body, None).unwrap();
        let req = ModelInferRequest::decode(&*msgs[0]).unwrap();
        assert_eq!(req.model_name, "iris");
        let c = req.inputs[0].contents.as_ref().unwrap();
        assert_eq!(c.fp64_contents, vec![1.0, 2.5, 3.0, 4.0]);
        assert_eq!(
            req.inputs[1].contents.as_ref().unwrap().bytes_contents,
            vec![b"a".to_vec()]
        );
        for bad in [
            serde_json::json!({"model_name": "m", "inputs": []}),
            serde_json::json!({"model_name": "m", "inputs": [{"name": "x", "datatype": "INT32", "shape": [1], "data": [1.5]}]}),
            serde_json::json!({"model_name": "m", "inputs": [{"name": "x", "datatype": "FP16", "shape": [1], "data": [1]}]}),
            serde_json::json!({"model_name": "m", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}),
            serde_json::json!({"model_name": "m", "oops": 1, "inputs": []}),
        ] {
            assert!(request_from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_from_trailers_or_trailers_only_headers() {
        let reply = |headers: &[(&'static str, &'static str)],
                     trailers: &[(&'static str, &'static str)]| {
            let map = |kv: &[(&'static str, &'static str)]| {
                let mut m = HeaderMap::new();
                for (k, v) in kv {
                    m.insert(*k, HeaderValue::from_static(v));
                }
                m
            };
            Reply {
                status: StatusCode::OK,
                headers: map(headers),
                trailers: map(trailers),
                body: Bytes::new(),
            }
        };
        assert!(result(&reply(&[], &[("grpc-status", "0")])).is_ok());
        let e = result(&reply(
            &[("grpc-status", "5"), ("grpc-message", "no model")],
            &[],
        ));
        assert_eq!(e.unwrap_err(), "grpc-status 5: no model");
        assert!(result(&reply(&[], &[])).is_err());
    }
}
