//! The demo's model server: the iris classifier run by ONNX Runtime (the same `ort` the ONNX
//! shadow uses) behind a KServe V2 / Open Inference Protocol REST endpoint on loopback — a
//! stand-in for MLServer or Triton, so the demo needs nothing but the library.
//!
//! Sessions live on a thread of their own (a `run` needs `&mut Session` and blocks), fed through
//! a bounded queue; after the drift it answers from the perturbed model, as a bad rollout would.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use ort::session::Session;
use ort::value::Tensor;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::iris::{FEATURES, MODEL, MODEL_NAME, PERTURBED_MODEL};
use super::DemoError;

/// Largest request body read: thousands of rows, far beyond what the demo sends.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Runs waiting for the model thread; past it a request gets 503 rather than queueing forever.
const QUEUE: usize = 1024;

/// One model run's outputs, as the KServe V2 response carries them.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub labels: Vec<i64>,
    /// Row-major [rows, 3].
    pub probabilities: Vec<f32>,
}

struct Job {
    x: Vec<f32>,
    rows: usize,
    perturbed: bool,
    reply: oneshot::Sender<Result<Output, String>>,
}

/// The sending side of the model thread (it exits when the last handle is dropped).
#[derive(Clone)]
pub struct Model {
    tx: std_mpsc::SyncSender<Job>,
}

impl Model {
    /// Load both models into sessions on one dedicated thread.
    pub fn start(env: &ort::environment::Environment) -> Result<Self, DemoError> {
        let mut live = session(env, MODEL)?;
        let mut perturbed = session(env, PERTURBED_MODEL)?;
        let (tx, rx) = std_mpsc::sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("inferwatch-demo-model".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let s = if job.perturbed {
                        &mut perturbed
                    } else {
                        &mut live
                    };
                    let _ = job.reply.send(run(s, job.x, job.rows));
                }
            })
            .map_err(|e| DemoError::Model(format!("cannot start the model thread: {e}")))?;
        Ok(Self { tx })
    }

    /// Classify `rows` rows of 4 features (row-major).
    pub async fn infer(&self, x: Vec<f32>, rows: usize, perturbed: bool) -> Result<Output, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Job {
                x,
                rows,
                perturbed,
                reply,
            })
            .map_err(|_| "model queue full".to_string())?;
        rx.await.map_err(|_| "model thread gone".to_string())?
    }
}

fn session(env: &ort::environment::Environment, bytes: &[u8]) -> Result<Session, DemoError> {
    let err = |e: ort::Error| DemoError::Model(format!("cannot load the iris model: {e}"));
    Session::builder(env)
        .map_err(err)?
        // One thread: the demo shares two cores with the sidecar and the traffic generator.
        .with_intra_threads(1)
        .map_err(|e| err(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| err(e.into()))?
        .commit_from_memory(bytes)
        .map_err(err)
}

fn run(session: &mut Session, x: Vec<f32>, rows: usize) -> Result<Output, String> {
    let input =
        Tensor::from_array((vec![rows as i64, FEATURES as i64], x)).map_err(|e| e.to_string())?;
    let outputs = session
        .run(ort::inputs!["X" => input])
        .map_err(|e| e.to_string())?;
    let labels = outputs
        .get("label")
        .ok_or("no label output")?
        .try_extract_tensor::<i64>()
        .map_err(|e| e.to_string())?
        .1
        .to_vec();
    let probabilities = outputs
        .get("probabilities")
        .ok_or("no probabilities output")?
        .try_extract_tensor::<f32>()
        .map_err(|e| e.to_string())?
        .1
        .to_vec();
    Ok(Output {
        labels,
        probabilities,
    })
}

/// Serve KServe V2 on `listener` until `shutdown` resolves; `drifted` switches the answers to
/// the perturbed model.
pub async fn serve(
    listener: TcpListener,
    model: Model,
    drifted: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()>,
) {
    crate::admin::serve_small(
        listener,
        move |req| handle(model.clone(), drifted.clone(), req),
        shutdown,
    )
    .await
}

/// Bind the model server on loopback (an ephemeral port: nothing outside the demo talks to it).
pub async fn bind() -> Result<(TcpListener, SocketAddr), DemoError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| DemoError::Model(format!("cannot bind the model server: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| DemoError::Model(e.to_string()))?;
    Ok((listener, addr))
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    reply(status, &json!({ "error": message.into() }))
}

async fn handle(
    model: Model,
    drifted: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let base = format!("/v2/models/{MODEL_NAME}");
    let path = req.uri().path().to_string();
    let resp = match (req.method(), path.as_str()) {
        (&Method::GET, "/v2/health/live") => reply(StatusCode::OK, &json!({"live": true})),
        (&Method::GET, "/v2/health/ready") => reply(StatusCode::OK, &json!({"ready": true})),
        (&Method::GET, p) if p == format!("{base}/ready") => {
            reply(StatusCode::OK, &json!({"name": MODEL_NAME, "ready": true}))
        }
        (&Method::GET, p) if p == base => reply(StatusCode::OK, &metadata()),
        (&Method::POST, p) if p == format!("{base}/infer") => {
            let perturbed = drifted.load(Ordering::Relaxed);
            infer(&model, req, perturbed).await
        }
        (_, p) if p == format!("{base}/infer") => error(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
        _ => error(StatusCode::NOT_FOUND, format!("no route {path}")),
    };
    Ok(resp)
}

/// The model metadata response (KServe V2 `GET /v2/models/{name}`).
pub fn metadata() -> Value {
    json!({
        "name": MODEL_NAME,
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, FEATURES]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        ],
    })
}

async fn infer(model: &Model, req: Request<Incoming>, perturbed: bool) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("cannot read body: {e}")),
    };
    let (id, x, rows) = match parse_request(&body) {
        Ok(parsed) => parsed,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match model.infer(x, rows, perturbed).await {
        Ok(out) => reply(StatusCode::OK, &response(id, rows, &out)),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// A KServe V2 JSON request with one FP32 tensor of shape [N, 4] (flat or nested data):
/// `(id, row-major values, N)`.
pub fn parse_request(body: &[u8]) -> Result<(Option<Value>, Vec<f32>, usize), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let input = v["inputs"]
        .as_array()
        .and_then(|a| a.first())
        .ok_or("expected inputs[0]")?;
    let mut x = Vec::new();
    flatten(&input["data"], &mut x)?;
    if x.is_empty() || x.len() % FEATURES != 0 {
        return Err(format!(
            "expected rows of {FEATURES} features, got {} values",
            x.len()
        ));
    }
    let rows = x.len() / FEATURES;
    if let Some(shape) = input["shape"].as_array() {
        let declared: Vec<u64> = shape.iter().filter_map(Value::as_u64).collect();
        if declared.iter().product::<u64>() != x.len() as u64 {
            return Err(format!(
                "shape {declared:?} does not match {} values",
                x.len()
            ));
        }
    }
    Ok((v.get("id").cloned(), x, rows))
}

/// Per-feature means of the iris data: what a missing (`"NaN"`) measurement is imputed with,
/// as serving pipelines with a mean imputer do, so the request is answered (and its NaN counted
/// by the sidecar) rather than refused.
const IMPUTE: [f32; FEATURES] = [5.84, 3.06, 3.76, 1.20];

fn flatten(v: &Value, out: &mut Vec<f32>) -> Result<(), String> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|i| flatten(i, out)),
        Value::Number(n) => {
            out.push(n.as_f64().ok_or("not a number")? as f32);
            Ok(())
        }
        Value::String(s) if s == "NaN" => {
            out.push(IMPUTE[out.len() % FEATURES]);
            Ok(())
        }
        other => Err(format!("data holds a non-number: {other}")),
    }
}

fn response(id: Option<Value>, rows: usize, out: &Output) -> Value {
    let mut v = json!({
        "model_name": MODEL_NAME,
        "model_version": "1",
        "outputs": [
            {"name": "label", "shape": [rows], "datatype": "INT64", "data": out.labels},
            {"name": "probabilities", "shape": [rows, 3], "datatype": "FP32", "data": out.probabilities},
        ],
    });
    if let Some(id) = id {
        v["id"] = id;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flat_and_nested_tensors() {
        let flat = br#"{"id":"a","inputs":[{"name":"X","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}"#;
        let (id, x, rows) = parse_request(flat).unwrap();
        assert_eq!((id, rows, x.len()), (Some(json!("a")), 2, 8));
        let nested =
            br#"{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[[1,2,3,4]]}]}"#;
        assert_eq!(parse_request(nested).unwrap().2, 1);
    }

    #[test]
    fn rejects_what_is_not_rows_of_four() {
        let bad = br#"{"inputs":[{"name":"X","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#;
        assert!(parse_request(bad).unwrap_err().contains("rows of 4"));
        let missing = br#"{"inputs":[{"data":[5.1,"NaN",1.4,0.2]}]}"#;
        assert_eq!(parse_request(missing).unwrap().1[1], IMPUTE[1]);
        let lying =
            br#"{"inputs":[{"name":"X","shape":[2,4],"datatype":"FP32","data":[1,2,3,4]}]}"#;
        assert!(parse_request(lying).unwrap_err().contains("does not match"));
        assert!(parse_request(b"{").is_err());
    }

    #[test]
    fn response_carries_both_outputs() {
        let out = Output {
            labels: vec![2],
            probabilities: vec![0.1, 0.2, 0.7],
        };
        let v = response(Some(json!(7)), 1, &out);
        assert_eq!(v["outputs"][0]["data"], json!([2]));
        assert_eq!(v["outputs"][1]["shape"], json!([1, 3]));
        assert_eq!(v["id"], json!(7));
    }
}
