//! Ground-truth feedback: the inspector remembers recent predictions by their request id (a
//! configurable request header), in a bounded, time-limited map; labels posted later to
//! `POST /feedback` on the admin listener are joined to them, giving
//! `inferwatch_labeled_accuracy_ratio{route,model,window}` and a 0/1 signal per label
//! (`feedback_correct:<route>`). Unknown, expired or repeated ids are counted, not errors.

pub mod config;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::canary::config::AccuracyConfig;
use crate::client::answer::close;
use crate::metrics::{names, registered, RatioGauge};
use crate::protocol::{CaptureHook, Prediction, Seen};
use crate::quality::SignalSender;
use config::FeedbackConfig;

/// Longest request id kept; longer ones are not remembered (and cannot be labelled).
pub const MAX_ID_LEN: usize = 128;
/// Largest `POST /feedback` body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `result` label values of `inferwatch_feedback_total`.
pub mod result {
    pub const CORRECT: &str = "correct";
    pub const INCORRECT: &str = "incorrect";
    /// No prediction with this id: never seen, not decoded, or pushed out by `max_entries`.
    pub const UNKNOWN: &str = "unknown";
    /// The prediction is older than `ttl_secs`.
    pub const EXPIRED: &str = "expired";
    /// This id was already labelled.
    pub const DUPLICATE: &str = "duplicate";
    /// The label does not fit the prediction (no class to compare, wrong number of rows).
    pub const INVALID: &str = "invalid";
}

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("feedback.token_file: cannot read {path}: {source}")]
    Token {
        path: String,
        source: std::io::Error,
    },
    #[error("feedback.token_file: {path} is empty")]
    EmptyToken { path: String },
    #[error("feedback.request_id_header: invalid header name")]
    Header,
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

struct Entry {
    at: Instant,
    route: String,
    model: String,
    predictions: Vec<Prediction>,
    labelled: bool,
}

#[derive(Default)]
struct Store {
    map: HashMap<String, Entry>,
    /// Insertion order, for eviction: (when, id).
    order: VecDeque<(Instant, String)>,
}

/// The join: remembered predictions, the token, the metrics.
pub struct Feedback {
    store: Mutex<Store>,
    header: HeaderName,
    token: String,
    ttl: Duration,
    max_entries: usize,
    abs_tolerance: f64,
    rel_tolerance: f64,
    total: IntCounterVec,
    pending: IntGauge,
    accuracy: RatioGauge,
    signals: SignalSender,
}

/// One label as posted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Label {
    request_id: String,
    #[serde(default)]
    label: Option<Value>,
    #[serde(default)]
    value: Option<Value>,
}

/// The reply to `POST /feedback`.
#[derive(Debug, Default, serde::Serialize, PartialEq, Eq)]
pub struct Joined {
    pub correct: u64,
    pub incorrect: u64,
    pub unknown: u64,
    pub expired: u64,
    pub duplicate: u64,
    pub invalid: u64,
}

impl Feedback {
    /// `None` when `feedback.enabled` is false. Reads the token file now, so a missing token
    /// fails start-up rather than every request.
    pub fn build(
        f: &FeedbackConfig,
        accuracy: &AccuracyConfig,
        registry: &Registry,
        signals: &SignalSender,
    ) -> Result<Option<Arc<Self>>, FeedbackError> {
        if !f.enabled {
            return Ok(None);
        }
        let token = std::fs::read_to_string(&f.token_file)
            .map_err(|source| FeedbackError::Token {
                path: f.token_file.clone(),
                source,
            })?
            .trim()
            .to_string();
        if token.is_empty() {
            return Err(FeedbackError::EmptyToken {
                path: f.token_file.clone(),
            });
        }
        let header = HeaderName::from_bytes(f.request_id_header.to_ascii_lowercase().as_bytes())
            .map_err(|_| FeedbackError::Header)?;
        let total = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    names::FEEDBACK_TOTAL,
                    "Ground-truth labels posted to /feedback, by result: correct, incorrect, unknown, expired, duplicate, invalid.",
                ),
                &["result"],
            )?,
        )?;
        let pending = registered(
            registry,
            IntGauge::new(
                names::FEEDBACK_PENDING,
                "Predictions remembered by request id, waiting for a label.",
            )?,
        )?;
        for r in [
            result::CORRECT,
            result::INCORRECT,
            result::UNKNOWN,
            result::EXPIRED,
            result::DUPLICATE,
            result::INVALID,
        ] {
            total.with_label_values(&[r]);
        }
        let accuracy = RatioGauge::register(
            registry,
            names::LABELED_ACCURACY_RATIO,
            "Share of labelled prediction rows that were right, over the window (by when the label arrived).",
            &["route", "model"],
            &accuracy.windows_secs,
            Duration::from_secs(accuracy.slot_secs.max(1)),
        )?;
        Ok(Some(Arc::new(Self {
            store: Mutex::new(Store::default()),
            header,
            token,
            ttl: Duration::from_secs_f64(f.ttl_secs),
            max_entries: f.max_entries.max(1),
            abs_tolerance: f.abs_tolerance,
            rel_tolerance: f.rel_tolerance,
            total,
            pending,
            accuracy,
            signals: signals.clone(),
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remember one prediction under `id`.
    pub fn remember(&self, id: &str, route: &str, model: &str, predictions: Vec<Prediction>) {
        let now = Instant::now();
        let mut s = self.lock();
        // Old entries go first: past twice the TTL nobody will be told "expired" any more.
        while let Some((at, _)) = s.order.front() {
            let stale = now.saturating_duration_since(*at) > self.ttl * 2;
            if !(stale || s.map.len() >= self.max_entries) {
                break;
            }
            let Some((at, key)) = s.order.pop_front() else {
                break;
            };
            if s.map.get(&key).is_some_and(|e| e.at == at) {
                s.map.remove(&key);
            }
        }
        s.map.insert(
            id.to_string(),
            Entry {
                at: now,
                route: route.to_string(),
                model: model.to_string(),
                predictions,
                labelled: false,
            },
        );
        s.order.push_back((now, id.to_string()));
        self.pending.set(s.map.len() as i64);
    }

    /// Whether `headers` carry the bearer token.
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_credentials)
        else {
            return false;
        };
        // Compare every byte whatever the first difference, so timing does not leak the token.
        let (a, b) = (given.trim().as_bytes(), self.token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Handle a `POST /feedback` body: one label object or an array of them.
    pub fn post(&self, body: &Bytes) -> Result<Joined, (StatusCode, String)> {
        let bad = |m: String| (StatusCode::BAD_REQUEST, m);
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let items = match doc {
            Value::Array(items) => items,
            other => vec![other],
        };
        let labels: Vec<Label> = items
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                bad(format!(
                    "expected {{\"request_id\": ..., \"label\": ...}} or {{\"request_id\": ..., \"value\": ...}}: {e}"
                ))
            })?;
        let mut joined = Joined::default();
        for l in labels {
            let r = self.join(&l);
            self.total.with_label_values(&[r]).inc();
            match r {
                result::CORRECT => joined.correct += 1,
                result::INCORRECT => joined.incorrect += 1,
                result::UNKNOWN => joined.unknown += 1,
                result::EXPIRED => joined.expired += 1,
                result::DUPLICATE => joined.duplicate += 1,
                _ => joined.invalid += 1,
            }
        }
        Ok(joined)
    }

    /// Join one label; its `result`.
    fn join(&self, l: &Label) -> &'static str {
        let now = Instant::now();
        let (route, model, hits) = {
            let mut s = self.lock();
            let Some(e) = s.map.get_mut(&l.request_id) else {
                return result::UNKNOWN;
            };
            if now.saturating_duration_since(e.at) > self.ttl {
                return result::EXPIRED;
            }
            if e.labelled {
                return result::DUPLICATE;
            }
            let Some(hits) = judge(l, &e.predictions, self.abs_tolerance, self.rel_tolerance)
            else {
                return result::INVALID;
            };
            e.labelled = true;
            (e.route.clone(), e.model.clone(), hits)
        };
        let right = hits.iter().filter(|h| **h).count() as u64;
        self.accuracy
            .record(&[&route, &model], right, hits.len() as u64);
        let signal = format!("feedback_correct:{route}");
        if self.signals.wants(&signal) {
            for h in &hits {
                self.signals.observe(&signal, f64::from(u8::from(*h)));
            }
        }
        if right as usize == hits.len() {
            result::CORRECT
        } else {
            result::INCORRECT
        }
    }
}

/// Per row: whether the prediction matches the label (`None`: the label does not fit).
fn judge(l: &Label, predictions: &[Prediction], abs: f64, rel: f64) -> Option<Vec<bool>> {
    let one_or_many = |v: &Value| -> Vec<Value> {
        match v {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        }
    };
    let (wanted, numeric) = match (&l.label, &l.value) {
        (Some(v), None) => (one_or_many(v), false),
        (None, Some(v)) => (one_or_many(v), true),
        _ => return None,
    };
    if wanted.len() != predictions.len() {
        return None;
    }
    wanted
        .iter()
        .zip(predictions)
        .map(|(w, p)| {
            if numeric {
                Some(close(p.value?, w.as_f64()?, abs, rel))
            } else {
                let want = match w {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.as_i64().map_or_else(|| n.to_string(), |i| i.to_string()),
                    _ => return None,
                };
                Some(p.class.as_deref()? == want)
            }
        })
        .collect()
}

impl CaptureHook for Feedback {
    /// Reads predictions (or timings) only.
    fn reads_inputs(&self, _route: &str) -> bool {
        false
    }

    fn seen(&self, seen: &Seen<'_>) {
        let Some((model, inference)) = seen.decoded else {
            return;
        };
        let Some(id) = seen
            .capture
            .request_headers
            .get(&self.header)
            .and_then(|v| v.to_str().ok())
            .filter(|id| !id.is_empty() && id.len() <= MAX_ID_LEN)
        else {
            return;
        };
        if inference.predictions.is_empty() {
            return;
        }
        self.remember(
            id,
            &seen.capture.route.name,
            model,
            inference.predictions.clone(),
        );
    }
}

/// The credentials of an `Authorization: Bearer …` value. The scheme name is case-insensitive
/// (RFC 9110 §11.1: `bearer`, `BEARER` and `Bearer` are the same) and may be followed by
/// several spaces.
fn bearer_credentials(v: &str) -> Option<&str> {
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feedback(max_entries: usize) -> (Arc<Feedback>, Registry, tempfile::NamedTempFile) {
        let token = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token.path(), "s3cret\n").unwrap();
        let cfg = FeedbackConfig {
            enabled: true,
            token_file: token.path().display().to_string(),
            max_entries,
            ..FeedbackConfig::default()
        };
        let registry = Registry::new();
        let (_, signals) = crate::quality::Engine::build(
            &crate::quality::config::QualityConfig::default(),
            Arc::new(crate::quality::NoRoutes),
            &registry,
            Instant::now(),
        )
        .unwrap();
        let f = Feedback::build(&cfg, &AccuracyConfig::default(), &registry, &signals)
            .unwrap()
            .unwrap();
        (f, registry, token)
    }

    fn class(c: &str) -> Prediction {
        Prediction {
            class: Some(c.into()),
            ..Prediction::default()
        }
    }

    #[test]
    fn labels_join_and_are_counted() {
        let (f, _r, _t) = feedback(2);
        f.remember("a", "infer", "iris", vec![class("1")]);
        f.remember("b", "infer", "iris", vec![class("0"), class("2")]);
        let post = |s: &str| f.post(&Bytes::from(s.to_string())).unwrap();
        assert_eq!(post(r#"{"request_id": "a", "label": 1}"#).correct, 1);
        assert_eq!(post(r#"{"request_id": "a", "label": 1}"#).duplicate, 1);
        let j = post(
            r#"[{"request_id": "b", "label": ["0", "1"]}, {"request_id": "zz", "label": "1"}]"#,
        );
        assert_eq!((j.incorrect, j.unknown), (1, 1));
        assert_eq!(
            f.accuracy
                .counts(&["infer", "iris"], Duration::from_secs(3600)),
            (2, 3)
        );
        // A third entry pushes out the oldest ("a").
        f.remember("c", "infer", "iris", vec![class("1")]);
        assert_eq!(post(r#"{"request_id": "a", "label": 1}"#).unknown, 1);
        assert_eq!(post(r#"{"request_id": "c", "value": 1.0}"#).invalid, 1);
        assert!(f.post(&Bytes::from_static(b"{")).is_err());
        assert!(f.post(&Bytes::from_static(b"{\"id\": 1}")).is_err());
    }

    #[test]
    fn bearer_token() {
        let (f, _r, _t) = feedback(10);
        let mut h = HeaderMap::new();
        assert!(!f.authorized(&h));
        h.insert(http::header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert!(!f.authorized(&h));
        h.insert(
            http::header::AUTHORIZATION,
            "Bearer s3cret".parse().unwrap(),
        );
        assert!(f.authorized(&h));
        // RFC 9110 §11.1: the scheme is case-insensitive.
        for v in ["bearer s3cret", "BEARER  s3cret"] {
            h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
            assert!(f.authorized(&h), "{v}");
        }
        for v in ["Basic s3cret", "Bearers3cret", "bearer nope"] {
            h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
            assert!(!f.authorized(&h), "{v}");
        }
    }
}
