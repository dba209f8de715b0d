//! A local ONNX model as a shadow target: ONNX Runtime loaded at run time (`ort` with
//! `load-dynamic`), one session per worker thread on threads of its own — never the proxy's or
//! tokio's — fed through a bounded queue. The request's numeric input columns become the model's
//! inputs; the configured outputs are read by the live route's prediction rule.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Mutex;

use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::config::ShadowTargetConfig;
use crate::client::Answer;
use crate::protocol::tensor::{Matrix, Values};
use crate::protocol::{Inputs, Rule};

/// Where the library is looked for when neither `shadow.onnx_library` nor `ORT_DYLIB_PATH` says.
pub const SEARCH_PATH: &[&str] = &[
    "/usr/local/lib/libonnxruntime.so",
    "/usr/lib/libonnxruntime.so",
    "/usr/lib/x86_64-linux-gnu/libonnxruntime.so",
    "/usr/lib/aarch64-linux-gnu/libonnxruntime.so",
];

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("shadow.onnx_library: ONNX Runtime library not found (an onnx shadow target is configured): set shadow.onnx_library or the ORT_DYLIB_PATH environment variable to libonnxruntime.so.<version> (e.g. from `pip install onnxruntime`: onnxruntime/capi/); also searched {}", SEARCH_PATH.join(", "))]
    NotFound,
    #[error("{setting}: {path} does not exist (an onnx shadow target is configured; point it at libonnxruntime.so.<version>)")]
    Missing { setting: &'static str, path: String },
    #[error("{setting}: cannot load ONNX Runtime from {path}: {message}")]
    Load {
        setting: &'static str,
        path: String,
        message: String,
    },
    #[error("shadow.targets[{index}].model_path: cannot load ONNX model {path}: {message}")]
    Model {
        index: usize,
        path: String,
        message: String,
    },
    #[error(
        "shadow.targets[{index}].{key}: the model has no {what} named {name:?} (it has {known})"
    )]
    Name {
        index: usize,
        key: String,
        what: &'static str,
        name: String,
        known: String,
    },
    #[error("shadow.targets[{index}]: cannot start ONNX worker thread: {source}")]
    Thread {
        index: usize,
        source: std::io::Error,
    },
}

/// Which library to open, and the setting that named it (for error messages).
pub fn library(configured: &str) -> Result<(PathBuf, &'static str), OnnxError> {
    let (path, setting) = if !configured.is_empty() {
        (PathBuf::from(configured), "shadow.onnx_library")
    } else if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        (PathBuf::from(p), "ORT_DYLIB_PATH")
    } else {
        return SEARCH_PATH
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .map(|p| (p, "shadow.onnx_library (search path)"))
            .ok_or(OnnxError::NotFound);
    };
    if !path.exists() {
        return Err(OnnxError::Missing {
            setting,
            path: path.display().to_string(),
        });
    }
    Ok((path, setting))
}

/// The process's one ONNX Runtime environment, once made: `ort` refuses to build a second one
/// (even after the first is dropped), and the demo's model server and an App's shadow both need
/// one.
static ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

/// Open ONNX Runtime once per process and make the environment for sessions; later calls (the
/// library still has to be found) share the first library and environment.
pub fn environment(configured: &str) -> Result<ort::environment::Environment, OnnxError> {
    let (path, setting) = library(configured)?;
    let mut shared = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = shared.as_ref() {
        return Ok(env.clone());
    }
    let load = |message: String| OnnxError::Load {
        setting,
        path: path.display().to_string(),
        message,
    };
    let builder = ort::init_from(&path).map_err(|e| load(e.to_string()))?;
    let env = builder
        .with_name("inferwatch")
        .build()
        .map_err(|e| load(e.to_string()))?;
    *shared = Some(env.clone());
    Ok(env)
}

/// How a model input is filled: request columns `[offset, offset + width)`, as `ty`.
#[derive(Debug, Clone)]
struct InputPlan {
    name: String,
    /// The request tensor; empty: every numeric column.
    tensor: String,
    ty: TensorElementType,
}

/// One run: the request's inputs in, an answer (or why not) out. The permit is held until the
/// worker is done, so a run that outlives its timeout still counts against `max_in_flight`.
pub struct OnnxJob {
    pub inputs: Inputs,
    pub reply: oneshot::Sender<Result<Answer, String>>,
    pub permit: OwnedSemaphorePermit,
}

/// The sending side of a target's worker threads.
pub struct OnnxPool {
    tx: std_mpsc::SyncSender<OnnxJob>,
}

impl OnnxPool {
    /// Load the model once per worker thread (sessions are not shared: `run` needs `&mut`),
    /// checking the configured input and output names against the model.
    pub fn start(
        env: &ort::environment::Environment,
        index: usize,
        target: &ShadowTargetConfig,
        rule: Rule,
    ) -> Result<Self, OnnxError> {
        let mut sessions = Vec::new();
        for _ in 0..target.threads.max(1) {
            sessions.push(load_session(env, index, &target.model_path)?);
        }
        let first = &sessions[0];
        let known = |outlets: &[ort::value::Outlet]| {
            outlets
                .iter()
                .map(|o| o.name().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut plan = Vec::new();
        let model_inputs = first.inputs();
        let wanted: Vec<(String, String)> = if target.inputs.is_empty() {
            model_inputs
                .first()
                .map(|i| vec![(i.name().to_string(), String::new())])
                .unwrap_or_default()
        } else {
            target
                .inputs
                .iter()
                .map(|i| (i.name.clone(), i.tensor.clone()))
                .collect()
        };
        for (j, (name, tensor)) in wanted.into_iter().enumerate() {
            let Some(outlet) = model_inputs.iter().find(|o| o.name() == name) else {
                return Err(OnnxError::Name {
                    index,
                    key: format!("inputs[{j}].name"),
                    what: "input",
                    name,
                    known: known(model_inputs),
                });
            };
            let ty = match outlet.dtype() {
                ValueType::Tensor { ty, .. } => *ty,
                _ => TensorElementType::Float32,
            };
            plan.push(InputPlan { name, tensor, ty });
        }
        for (key, name) in [
            ("label_output", &target.label_output),
            ("score_output", &target.score_output),
        ] {
            if !name.is_empty() && !first.outputs().iter().any(|o| o.name() == name) {
                return Err(OnnxError::Name {
                    index,
                    key: key.into(),
                    what: "output",
                    name: name.clone(),
                    known: known(first.outputs()),
                });
            }
        }
        // Room for every run max_in_flight allows; the semaphore bounds it first.
        let (tx, rx) = std_mpsc::sync_channel::<OnnxJob>(target.max_in_flight.max(1));
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for (n, mut session) in sessions.into_iter().enumerate() {
            let rx = rx.clone();
            let plan = plan.clone();
            let rule = rule.clone();
            let labels = target.label_output.clone();
            let scores = target.score_output.clone();
            std::thread::Builder::new()
                .name(format!("inferwatch-onnx-{}-{n}", target.name))
                .spawn(move || loop {
                    // One worker takes the next job; the lock is held only while waiting.
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let out = run(&mut session, &plan, &labels, &scores, &rule, &job.inputs);
                    let _ = job.reply.send(out);
                    drop(job.permit);
                })
                .map_err(|source| OnnxError::Thread { index, source })?;
        }
        Ok(Self { tx })
    }

    /// Queue one run without waiting; gives the job back when the queue is full.
    pub fn submit(&self, job: OnnxJob) -> Result<(), OnnxJob> {
        self.tx.try_send(job).map_err(|e| match e {
            std_mpsc::TrySendError::Full(j) | std_mpsc::TrySendError::Disconnected(j) => j,
        })
    }
}

fn load_session(
    env: &ort::environment::Environment,
    index: usize,
    path: &str,
) -> Result<Session, OnnxError> {
    let err = |message: String| OnnxError::Model {
        index,
        path: path.to_string(),
        message,
    };
    if !Path::new(path).exists() {
        return Err(err("no such file".into()));
    }
    Session::builder(env)
        .map_err(|e| err(e.to_string()))?
        // One thread per session: parallelism comes from `threads` sessions, and ONNX Runtime's
        // own pool would otherwise spin on every core beside the model server.
        .with_intra_threads(1)
        .map_err(|e| err(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| err(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| err(e.to_string()))
}

/// The request columns of `tensor` (empty: all): `(offset, width)` in the inputs table.
fn columns(inputs: &Inputs, tensor: &str) -> Result<(usize, usize), String> {
    if tensor.is_empty() {
        return Ok((0, inputs.features));
    }
    let mut offset = 0;
    for s in &inputs.signature {
        if !crate::protocol::tensor::is_numeric_datatype(&s.datatype) {
            continue;
        }
        let width: i64 = s.shape.iter().product::<i64>().max(1);
        let width = usize::try_from(width).map_err(|_| "bad shape".to_string())?;
        if s.name == tensor {
            if offset + width > inputs.features {
                return Err(format!("tensor {tensor:?} is not in the numeric table"));
            }
            return Ok((offset, width));
        }
        offset += width;
    }
    Err(format!("the request has no numeric tensor {tensor:?}"))
}

fn run(
    session: &mut Session,
    plan: &[InputPlan],
    labels: &str,
    scores: &str,
    rule: &Rule,
    inputs: &Inputs,
) -> Result<Answer, String> {
    let rows = inputs.rows;
    let mut feed: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::new();
    for p in plan {
        let (offset, width) = columns(inputs, &p.tensor)?;
        let mut col = Vec::with_capacity(rows * width);
        for r in inputs
            .values
            .chunks_exact(inputs.features.max(1))
            .take(rows)
        {
            col.extend_from_slice(&r[offset..offset + width]);
        }
        let shape = vec![rows as i64, width as i64];
        let value: DynValue = match p.ty {
            TensorElementType::Float64 => Tensor::from_array((shape, col)).map(|t| t.into_dyn()),
            TensorElementType::Int64 => {
                Tensor::from_array((shape, col.iter().map(|x| *x as i64).collect::<Vec<_>>()))
                    .map(|t| t.into_dyn())
            }
            TensorElementType::Int32 => {
                Tensor::from_array((shape, col.iter().map(|x| *x as i32).collect::<Vec<_>>()))
                    .map(|t| t.into_dyn())
            }
            _ => Tensor::from_array((shape, col.iter().map(|x| *x as f32).collect::<Vec<_>>()))
                .map(|t| t.into_dyn()),
        }
        .map_err(|e| e.to_string())?;
        feed.push((Cow::Owned(p.name.clone()), value.into()));
    }
    let outputs = session.run(feed).map_err(|e| e.to_string())?;
    let label_m = if labels.is_empty() {
        None
    } else {
        Some(matrix(outputs.get(labels).ok_or("no label output")?)?)
    };
    let score_m = if scores.is_empty() {
        None
    } else {
        Some(matrix(outputs.get(scores).ok_or("no score output")?)?)
    };
    let predictions = rule
        .predictions(label_m.as_ref(), score_m.as_ref())
        .map_err(|e| e.to_string())?;
    Ok(Answer {
        predictions,
        text: None,
        json: None,
    })
}

/// An output tensor as the protocol adapters' matrix (rows = first dimension).
fn matrix(v: &DynValue) -> Result<Matrix, String> {
    let ty = match v.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => return Err(format!("output is not a tensor: {other:?}")),
    };
    let (shape, values): (Vec<i64>, Values) = match ty {
        TensorElementType::String => {
            let (s, v) = v.try_extract_strings().map_err(|e| e.to_string())?;
            (s.to_vec(), Values::Str(v))
        }
        TensorElementType::Float32 => num::<f32>(v, f64::from)?,
        TensorElementType::Float64 => num::<f64>(v, |x| x)?,
        TensorElementType::Int64 => num::<i64>(v, |x| x as f64)?,
        TensorElementType::Int32 => num::<i32>(v, f64::from)?,
        other => return Err(format!("unsupported output type {other:?}")),
    };
    Matrix::from_shape("onnx output", &shape, values).map_err(|e| e.to_string())
}

fn num<T: ort::value::PrimitiveTensorElementType + Copy + std::fmt::Debug>(
    v: &DynValue,
    f: impl Fn(T) -> f64,
) -> Result<(Vec<i64>, Values), String> {
    let (s, data) = v.try_extract_tensor::<T>().map_err(|e| e.to_string())?;
    Ok((
        s.to_vec(),
        Values::Num(data.iter().map(|x| f(*x)).collect()),
    ))
}
