//! `[shadow]` and `[[shadow.targets]]`: defaults with their reasons, and the rules on them.

use std::collections::BTreeMap;

/// How text answers are compared (owned by the comparison code in `crate::client::compare`).
pub use crate::client::compare::TextMatch;

use serde::{Deserialize, Serialize};

use crate::config::checks::{
    http_headers, secs_positive, tolerance, unique_name, upstream_problem,
};
use crate::config::validator::Validator;

/// Largest shadow queue or in-flight limit accepted.
pub const MAX_ENTRIES: usize = 10_000_000;
/// Most ONNX threads per target: more would compete with the model server for the same cores.
pub const MAX_ONNX_THREADS: usize = 64;

/// `[shadow]`: replaying a sample of live traffic to candidate models.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ShadowConfig {
    /// Sampled live requests waiting for the shadow dispatcher; when full, new ones are dropped
    /// and counted (`outcome="dropped"`), never waited for.
    pub queue_capacity: usize,
    /// The ONNX Runtime shared library (`libonnxruntime.so.<version>`) for `kind = "onnx"`
    /// targets. Empty: the `ORT_DYLIB_PATH` environment variable, then
    /// `/usr/local/lib/libonnxruntime.so` and `/usr/lib/libonnxruntime.so`. Only opened when an
    /// onnx target is configured.
    pub onnx_library: String,
    pub targets: Vec<ShadowTargetConfig>,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        Self {
            // A few hundred: a burst of sampled traffic while targets are slow; memory is
            // bounded by inspection.max_body_bytes per entry.
            queue_capacity: 256,
            onnx_library: String::new(),
            targets: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ShadowKind {
    /// Another endpoint speaking the route's protocol (a candidate model version).
    #[default]
    Http,
    /// A local ONNX model run in-process.
    Onnx,
}

/// `[[shadow.targets]]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ShadowTargetConfig {
    /// The `target` label: `[a-z0-9_]+`, unique.
    pub name: String,
    /// The live route whose tapped traffic is replayed (protocol not `opaque`).
    pub route: String,
    pub kind: ShadowKind,
    /// Share of the route's requests replayed, in [0, 1]. The choice is a hash of the request
    /// (path and body), so the same request is always in or out: runs are reproducible and
    /// several targets see the same sample.
    pub sample_ratio: f64,
    /// Shadow requests in flight at once; past it a sampled request is dropped and counted.
    pub max_in_flight: usize,
    /// One shadow request or ONNX run, queueing included.
    pub timeout_secs: f64,
    /// `kind = "http"`: base URL (`http://host:port`); the live path and query are appended.
    pub url: String,
    /// `kind = "http"`: static extra headers, and secret ones read from files (name → file).
    pub headers: BTreeMap<String, String>,
    pub header_files: BTreeMap<String, String>,
    /// `kind = "onnx"`: the model file.
    pub model_path: String,
    /// `kind = "onnx"`: which request tensors feed which model inputs. Empty: the model's first
    /// input gets every numeric input column of the request.
    pub inputs: Vec<OnnxInputConfig>,
    /// `kind = "onnx"`: model output holding class labels (integer or string), and the one
    /// holding scores (or the regression value). Empty: not used. The live route's
    /// `[proxy.routes.prediction]` rule (class_labels, scores) reads them, as it reads the
    /// live answer.
    pub label_output: String,
    pub score_output: String,
    /// `kind = "onnx"`: threads running this model (each with its own session), off the proxy's
    /// threads; also ONNX Runtime's intra-op threads per session stay at 1.
    pub threads: usize,
    /// Numbers agree when `|shadow - live| <= abs_tolerance + rel_tolerance * |live|`.
    pub abs_tolerance: f64,
    pub rel_tolerance: f64,
    /// How generated text is compared: `exact`, `normalized` or `rouge_l`.
    pub text_match: TextMatch,
    /// `text_match = "rouge_l"`: the least ROUGE-L F1 (0 to 1) at which two answers agree.
    pub text_similarity_min: f64,
}

impl Default for ShadowTargetConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            route: String::new(),
            kind: ShadowKind::Http,
            // 10%: agreement within a percent after a few thousand requests, at a tenth of the
            // cost of a full mirror.
            sample_ratio: 0.1,
            // Enough to keep up with a sampled share of a busy route, few enough that a hung
            // target holds at most this many sockets or ONNX runs.
            max_in_flight: 4,
            // Shadows are not on the live path, but a late answer is worth less than memory.
            timeout_secs: 5.0,
            url: String::new(),
            headers: BTreeMap::new(),
            header_files: BTreeMap::new(),
            model_path: String::new(),
            inputs: Vec::new(),
            label_output: String::new(),
            score_output: String::new(),
            threads: 1,
            // As the canary's: float noise passes, a changed answer does not.
            abs_tolerance: 1e-6,
            rel_tolerance: 1e-4,
            text_match: TextMatch::Normalized,
            // Two samples of the same model at temperature > 0 commonly share most of their
            // words in order; a different answer shares far fewer.
            text_similarity_min: 0.8,
        }
    }
}

/// `[[shadow.targets.inputs]]`: one model input fed from the request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct OnnxInputConfig {
    /// The model input's name.
    pub name: String,
    /// The request tensor (KServe V2 input name, TF Serving named input) feeding it. Empty:
    /// every numeric input column of the request.
    pub tensor: String,
}

/// The queue and each target's own keys. (That a target's route exists and is tapped, and that
/// shadowing needs inspection on, are rules across sections, in `config`.)
pub fn validate(v: &mut Validator<'_>, s: &ShadowConfig) {
    if !(1..=MAX_ENTRIES).contains(&s.queue_capacity) {
        v.report(
            "shadow.queue_capacity",
            format!(
                "must be between 1 and {MAX_ENTRIES}, got {}",
                s.queue_capacity
            ),
        );
    }
    for (i, t) in s.targets.iter().enumerate() {
        let at = |key: &str| format!("shadow.targets[{i}].{key}");
        let first = s.targets[..i].iter().position(|o| o.name == t.name);
        unique_name(
            v,
            &at("name"),
            &t.name,
            first.map(|j| format!("shadow.targets[{j}]")),
        );
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            v.report(
                &at("sample_ratio"),
                format!("must be between 0 and 1, got {}", t.sample_ratio),
            );
        }
        if !(1..=MAX_ENTRIES).contains(&t.max_in_flight) {
            v.report(
                &at("max_in_flight"),
                format!(
                    "must be between 1 and {MAX_ENTRIES}, got {}",
                    t.max_in_flight
                ),
            );
        }
        v.check(&at("timeout_secs"), secs_positive(t.timeout_secs));
        v.check(&at("abs_tolerance"), tolerance(t.abs_tolerance));
        if !(0.0..=1.0).contains(&t.text_similarity_min) {
            v.report(
                &at("text_similarity_min"),
                format!(
                    "invalid similarity {}, expected 0 to 1",
                    t.text_similarity_min
                ),
            );
        }
        v.check(&at("rel_tolerance"), tolerance(t.rel_tolerance));
        http_headers(
            v,
            &format!("shadow.targets[{i}]"),
            &t.headers,
            &t.header_files,
        );
        if !v.clean(&[&at("kind")]) {
            continue;
        }
        match t.kind {
            ShadowKind::Http => {
                if t.url.is_empty() {
                    v.report(
                        &at("url"),
                        "missing url, expected http://host:port for kind \"http\"".into(),
                    );
                } else {
                    v.check(&at("url"), upstream_problem(&t.url));
                }
            }
            ShadowKind::Onnx => {
                if t.model_path.is_empty() {
                    v.report(
                        &at("model_path"),
                        "missing model file for kind \"onnx\"".into(),
                    );
                }
                if t.label_output.is_empty() && t.score_output.is_empty() {
                    v.report(
                        &at("label_output"),
                        "kind \"onnx\" needs label_output or score_output (the model outputs to compare)".into(),
                    );
                }
                if !(1..=MAX_ONNX_THREADS).contains(&t.threads) {
                    v.report(
                        &at("threads"),
                        format!(
                            "must be between 1 and {MAX_ONNX_THREADS}, got {}",
                            t.threads
                        ),
                    );
                }
                for (j, input) in t.inputs.iter().enumerate() {
                    if input.name.is_empty() {
                        v.report(
                            &format!("shadow.targets[{i}].inputs[{j}].name"),
                            "missing model input name".into(),
                        );
                    }
                }
            }
        }
    }
}
