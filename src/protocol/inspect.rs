//! The inspector: the one task that reads the tap's queue off the live path, decodes each
//! capture with its route's adapter, and records predictions, token timings, batch sizes and
//! input anomalies as metrics, plus per-feature values and confidences as quality signals.
//! Label values taken from payloads (models, classes) are capped per route, then `other`.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::IntCounterVec;
use tokio::sync::{mpsc, watch};

use crate::metrics::slo_result;
use crate::routes::config::{Protocol, RouteConfig, SloConfig};
use crate::tap::config::InspectionConfig;

pub use super::labels::{class_index, CappedLabels, CLASS_BINS, MAX_LABEL_LEN, NO_CLASS, OTHER};
pub use super::metrics::ProtocolMetrics;
use super::output::OutputSignals;
use super::{decode, decode_received, goodput, Exchange, Inference, InputSignature, Rule};
use crate::tap::{Capture, InspectionMetrics};

/// Where the inspector offers quality signals (per-feature input values, prediction confidence,
/// regression values) for drift tests and control charts. Signal names are bounded: routes from
/// config, models capped per route, features capped per route and model.
///
/// Names: `confidence:{route}`, `value:{route}`, `feature_{j}:{route}`, `class:{route}` (the
/// predicted class as an index, see [`class_index`]) — the quality engine's `kind:route` form. Every model a route serves feeds the same signals (a route that serves
/// several models which should be charted apart is split into one route per model).
pub trait SignalSink: Send + Sync {
    fn observe(&self, signal: &str, value: f64) {
        let _ = (signal, value);
    }
}

/// Something else that wants every inspected capture (shadow replay, feedback join, idle-gap
/// latency). Called on the inspector's task, off the live path: an implementation must only do
/// cheap work and hand anything slow to its own bounded queue.
pub trait CaptureHook: Send + Sync {
    fn seen(&self, seen: &Seen<'_>);

    /// Whether the hook reads the input values of `route`'s inferences past the inspector's
    /// tracked features (then the adapters parse every input column there). Say no when it
    /// does not: an image's unread columns are then scanned, not parsed.
    fn reads_inputs(&self, _route: &str) -> bool {
        true
    }
}

/// How many requests on a route with an SLO the live path classified as not good (no answer,
/// a failure, a client that left past a bound before the headers): no capture brings them here,
/// so the inspector reads this count (through this narrow trait, implemented in `app.rs` over
/// the route table) and offers each new one as a `goodput:<route>` zero.
pub trait LiveMisses: Send + Sync {
    fn slo_misses(&self, route: &str) -> Option<u64>;
}

/// How often the inspector offers the live path's SLO misses as signals: often enough that a
/// chart sees a failing server within a subgroup or two, rarely enough to cost nothing.
pub const LIVE_MISSES_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// One inspected capture as hooks see it.
pub struct Seen<'a> {
    pub capture: &'a Capture,
    pub exchange: &'a Exchange<'a>,
    /// The decoded answer and its `model` label (capped as on the prediction metrics); `None`
    /// when the exchange was not a successful, understood inference.
    pub decoded: Option<(&'a str, &'a Inference)>,
}

/// The default sink: signals go nowhere.
pub struct NoSignals;

impl SignalSink for NoSignals {}

/// Input anomaly kinds, the `kind` label of `inferwatch_input_anomalies_total`.
pub mod anomaly {
    pub const NAN: &str = "nan";
    pub const INF: &str = "inf";
    pub const OUT_OF_BOUNDS: &str = "out_of_bounds";
    pub const SHAPE_CHANGE: &str = "shape_change";
    pub const DTYPE_CHANGE: &str = "dtype_change";
}

/// Results counted in `inferwatch_inspection_total` besides the tap's own.
pub const SKIPPED_STATUS: &str = "skipped_status";
pub const SKIPPED_ENDPOINT: &str = InspectionMetrics::SKIPPED_ENDPOINT;

/// Per route and model: the first input signature and the signal names.
struct ModelState {
    signature: Option<Vec<InputSignature>>,
    confidence_signal: String,
    value_signal: String,
    feature_signals: Vec<String>,
}

struct RouteState {
    name: String,
    protocol: Protocol,
    default_model: String,
    rule: Rule,
    /// (feature, min, max)
    bounds: Vec<(usize, f64, f64)>,
    models: CappedLabels,
    classes: CappedLabels,
    per_model: HashMap<String, ModelState>,
    /// `[proxy.routes.slo]`, and its signal `goodput:{route}` (1 met, 0 missed or failed).
    slo: SloConfig,
    goodput_signal: String,
    /// The live path's SLO misses already offered as signals.
    live_misses_seen: u64,
    /// `class:{route}`: each predicted class as its index, for a chi-square drift test.
    class_signal: String,
    /// OpenAI-compatible routes' output-quality signals.
    output: Option<OutputSignals>,
}

/// Decodes captures and records what they say.
pub struct Inspector {
    routes: HashMap<String, RouteState>,
    metrics: ProtocolMetrics,
    inspection: InspectionMetrics,
    signals: Arc<dyn SignalSink>,
    max_features: usize,
    hooks: Vec<Arc<dyn CaptureHook>>,
    /// `inferwatch_slo_requests_total`, shared with the live path (which counts the requests
    /// that got no answer).
    slo: Option<IntCounterVec>,
    live_misses: Option<Arc<dyn LiveMisses>>,
}

impl Inspector {
    /// An inspector of `routes` whose protocol is not `opaque`, capping label values and
    /// features as `[inspection]` (`i`) says.
    pub fn new(
        routes: &[RouteConfig],
        i: &InspectionConfig,
        metrics: ProtocolMetrics,
        inspection: InspectionMetrics,
        signals: Arc<dyn SignalSink>,
    ) -> Self {
        let routes = routes
            .iter()
            .filter(|r| r.protocol != Protocol::Opaque)
            .map(|r| {
                let state = RouteState {
                    name: r.name.clone(),
                    protocol: r.protocol,
                    default_model: r.model.clone(),
                    rule: Rule::new(&r.prediction).reading_features(i.max_features_tracked),
                    bounds: r
                        .prediction
                        .feature_bounds
                        .iter()
                        .map(|b| (b.feature, b.min, b.max))
                        .collect(),
                    models: CappedLabels::new(i.max_model_labels),
                    classes: CappedLabels::new(i.max_class_labels),
                    per_model: HashMap::new(),
                    slo: r.slo,
                    goodput_signal: format!("goodput:{}", r.name),
                    live_misses_seen: 0,
                    class_signal: format!("class:{}", r.name),
                    output: (r.protocol == Protocol::Openai)
                        .then(|| OutputSignals::new(&r.name, &r.output)),
                };
                (r.name.clone(), state)
            })
            .collect();
        Self {
            routes,
            metrics,
            inspection,
            signals,
            max_features: i.max_features_tracked,
            hooks: Vec::new(),
            slo: None,
            live_misses: None,
        }
    }

    /// The same inspector, classifying answered requests on routes with an SLO into `slo`
    /// (`inferwatch_slo_requests_total{route,model,result}`).
    pub fn with_slo(mut self, slo: IntCounterVec) -> Self {
        self.slo = Some(slo);
        self
    }

    /// The same inspector, offering the live path's SLO misses (`live`) as `goodput:<route>`
    /// zeros every [`LIVE_MISSES_EVERY`].
    pub fn with_live_misses(mut self, live: Arc<dyn LiveMisses>) -> Self {
        self.live_misses = Some(live);
        self
    }

    /// The same inspector, also handing every capture to `hook` after decoding it.
    pub fn with_hook(mut self, hook: Arc<dyn CaptureHook>) -> Self {
        for (name, route) in &mut self.routes {
            if hook.reads_inputs(name) {
                route.rule.read_columns = None;
            }
        }
        self.hooks.push(hook);
        self
    }

    /// The same inspector, offering its signals to `signals`.
    pub fn with_signals(mut self, signals: Arc<dyn SignalSink>) -> Self {
        self.signals = signals;
        self
    }

    /// Read captures until `stop` turns true, then drain what is already queued and return.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Capture>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(LIVE_MISSES_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                // First, or a busy queue would starve it; ready once a second.
                _ = tick.tick() => self.offer_live_misses(),
                capture = rx.recv() => match capture {
                    Some(c) => self.inspect(&c),
                    None => break,
                },
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        while let Ok(c) = rx.try_recv() {
            self.inspect(&c);
        }
        self.offer_live_misses();
    }

    /// Offer each SLO miss the live path counted since the last look as a `goodput:<route>`
    /// zero (a failing server's requests never reach the inspector as captures).
    pub fn offer_live_misses(&mut self) {
        let Some(live) = &self.live_misses else {
            return;
        };
        for route in self.routes.values_mut() {
            let Some(now) = live.slo_misses(&route.name) else {
                continue;
            };
            for _ in route.live_misses_seen..now {
                self.signals.observe(&route.goodput_signal, 0.0);
            }
            route.live_misses_seen = route.live_misses_seen.max(now);
        }
    }

    /// Decode one capture and record it.
    pub fn inspect(&mut self, c: &Capture) {
        let request = c.request_bytes();
        let response = c.response_bytes();
        let ex = Exchange {
            path: &c.path,
            request: &request,
            request_headers: &c.request_headers,
            response: &response,
            response_headers: &c.response_headers,
            response_chunks: &c.response_chunks,
        };
        if c.client_aborted {
            // What the client received is recorded and judged against the SLO; hooks (shadow
            // replay, feedback) want whole answers only.
            let received = self.record_received(&c.route.name, c.status, &ex);
            self.classify(c, received.as_ref());
            return;
        }
        let decoded = self.decode_and_record(&c.route.name, c.status, &ex);
        self.classify(c, decoded.as_ref());
        if !self.hooks.is_empty() {
            let seen = Seen {
                capture: c,
                exchange: &ex,
                decoded: decoded.as_ref().map(|(m, i)| (m.as_str(), i)),
            };
            for hook in &self.hooks {
                hook.seen(&seen);
            }
        }
    }

    /// Decode one exchange seen on `route` and record it (the part of [`Inspector::inspect`]
    /// that benchmarks and tests can drive without a proxy).
    pub fn inspect_exchange(&mut self, route: &str, status: http::StatusCode, ex: &Exchange<'_>) {
        let _ = self.decode_and_record(route, status, ex);
    }

    /// Count one answered request against its route's SLO and offer it as `goodput:{route}`.
    /// A client that left before the end is judged on what it lived (see
    /// [`goodput::classify_aborted`]); `aborted` is no signal, neither good nor bad.
    fn classify(&mut self, c: &Capture, decoded: Option<&(String, Inference)>) {
        let Some(slo) = &self.slo else { return };
        let Some(route) = self.routes.get_mut(&c.route.name) else {
            return;
        };
        if !route.slo.is_set() {
            return;
        }
        let tokens = decoded.and_then(|(_, i)| i.tokens.as_ref());
        let result = match (c.status.is_success(), c.client_aborted) {
            (true, false) => goodput::classify(&route.slo, c.total, tokens),
            (true, true) => goodput::classify_aborted(&route.slo, c.total, tokens),
            (false, _) => slo_result::FAILED,
        };
        let model = match decoded {
            Some((m, _)) => m.as_str(),
            None => route.models.label(&route.default_model),
        };
        slo.with_label_values(&[&route.name, model, result]).inc();
        if result == slo_result::ABORTED {
            return;
        }
        self.signals.observe(
            &route.goodput_signal,
            f64::from(u8::from(result == slo_result::MET)),
        );
    }

    /// Record what a client that went away mid-response received (a stream's time to first
    /// token and tokens so far), counted as `client_aborted` whatever could be read; the model
    /// label and what was read, if anything.
    fn record_received(
        &mut self,
        route: &str,
        status: http::StatusCode,
        ex: &Exchange<'_>,
    ) -> Option<(String, Inference)> {
        let route = self.routes.get_mut(route)?;
        if !status.is_success() {
            self.inspection.count(&route.name, SKIPPED_STATUS);
            return None;
        }
        let received = match decode_received(route.protocol, ex) {
            Ok(Some(inference)) => {
                let model = record(
                    route,
                    &inference,
                    &self.metrics,
                    self.signals.as_ref(),
                    self.max_features,
                );
                Some((model, inference))
            }
            Ok(None) => None,
            Err(error) => {
                tracing::debug!(route = %route.name, path = %ex.path, %error, "malformed payload before the client went away");
                None
            }
        };
        self.inspection
            .count(&route.name, InspectionMetrics::CLIENT_ABORTED);
        received
    }

    /// Decode and record; the model label and inference when it was one.
    fn decode_and_record(
        &mut self,
        route: &str,
        status: http::StatusCode,
        ex: &Exchange<'_>,
    ) -> Option<(String, Inference)> {
        let route = self.routes.get_mut(route)?;
        if !status.is_success() {
            self.inspection.count(&route.name, SKIPPED_STATUS);
            return None;
        }
        match decode(route.protocol, ex, &route.rule) {
            Ok(Some(inference)) => {
                let model = record(
                    route,
                    &inference,
                    &self.metrics,
                    self.signals.as_ref(),
                    self.max_features,
                );
                if let (Some(out), Some(t)) = (&route.output, &inference.tokens) {
                    out.observe(t, self.signals.as_ref());
                }
                self.inspection
                    .count(&route.name, InspectionMetrics::PARSED);
                Some((model, inference))
            }
            Ok(None) => {
                self.inspection.count(&route.name, SKIPPED_ENDPOINT);
                None
            }
            Err(error) => {
                tracing::debug!(route = %route.name, path = %ex.path, %error, "malformed payload");
                self.inspection
                    .count(&route.name, InspectionMetrics::MALFORMED);
                None
            }
        }
    }
}

/// Record one decoded inference on its route's metrics and signals; returns its `model` label.
fn record(
    route: &mut RouteState,
    inf: &Inference,
    m: &ProtocolMetrics,
    signals: &dyn SignalSink,
    max_features: usize,
) -> String {
    let model = route
        .models
        .label(inf.model.as_deref().unwrap_or(&route.default_model))
        .to_string();
    let rm = [route.name.as_str(), model.as_str()];
    let state = route
        .per_model
        .entry(model.clone())
        .or_insert_with(|| ModelState {
            signature: None,
            confidence_signal: format!("confidence:{}", route.name),
            value_signal: format!("value:{}", route.name),
            feature_signals: Vec::new(),
        });

    if let Some(batch) = inf.batch {
        m.batch_size.with_label_values(&rm).observe(batch as f64);
    }

    // Count per class first: one counter update per class, not per row.
    let mut per_class: Vec<(&str, u64)> = Vec::new();
    let confidence = m.confidence.with_label_values(&rm);
    for p in &inf.predictions {
        let class = match &p.class {
            Some(c) => {
                signals.observe(
                    &route.class_signal,
                    class_index(&route.rule.cfg.class_labels, c),
                );
                route.classes.label(c)
            }
            None => NO_CLASS,
        };
        match per_class.iter_mut().find(|(c, _)| *c == class) {
            Some((_, n)) => *n += 1,
            None => per_class.push((class, 1)),
        }
        if let Some(c) = p.confidence.filter(|c| c.is_finite()) {
            confidence.observe(c);
            signals.observe(&state.confidence_signal, c);
        }
        if let Some(v) = p.value.filter(|v| v.is_finite()) {
            signals.observe(&state.value_signal, v);
        }
    }
    for (class, n) in per_class {
        m.predictions
            .with_label_values(&[&route.name, &model, class])
            .inc_by(n);
    }

    if let Some(inputs) = &inf.inputs {
        let anomaly = |kind: &str, n: u64| {
            if n > 0 {
                m.anomalies
                    .with_label_values(&[&route.name, &model, kind])
                    .inc_by(n);
            }
        };
        anomaly(anomaly::NAN, inputs.nan);
        anomaly(anomaly::INF, inputs.inf);
        match &state.signature {
            None => state.signature = Some(inputs.signature.clone()),
            Some(first) if *first != inputs.signature => {
                let same_names = first.len() == inputs.signature.len()
                    && first
                        .iter()
                        .zip(&inputs.signature)
                        .all(|(a, b)| a.name == b.name);
                let dtype = same_names
                    && first
                        .iter()
                        .zip(&inputs.signature)
                        .any(|(a, b)| a.datatype != b.datatype);
                let shape = !same_names
                    || first
                        .iter()
                        .zip(&inputs.signature)
                        .any(|(a, b)| a.shape != b.shape);
                anomaly(anomaly::DTYPE_CHANGE, u64::from(dtype));
                anomaly(anomaly::SHAPE_CHANGE, u64::from(shape));
            }
            Some(_) => {}
        }
        if inputs.features > 0 {
            let mut out_of_bounds = 0u64;
            for &(j, min, max) in &route.bounds {
                if j < inputs.kept {
                    out_of_bounds += inputs
                        .values
                        .iter()
                        .skip(j)
                        .step_by(inputs.kept)
                        .filter(|x| x.is_finite() && (**x < min || **x > max))
                        .count() as u64;
                }
            }
            anomaly(anomaly::OUT_OF_BOUNDS, out_of_bounds);
            let tracked = inputs.features.min(max_features);
            while state.feature_signals.len() < tracked {
                let j = state.feature_signals.len();
                state
                    .feature_signals
                    .push(format!("feature_{j}:{}", route.name));
            }
            for row in inputs.values.chunks_exact(inputs.kept.max(1)) {
                for (x, signal) in row.iter().zip(&state.feature_signals[..tracked]) {
                    if x.is_finite() {
                        signals.observe(signal, *x);
                    }
                }
            }
        }
    }

    if let Some(t) = &inf.tokens {
        if let Some(n) = t.input {
            m.input_tokens.with_label_values(&rm).inc_by(n);
        }
        if let Some(n) = t.output {
            m.output_tokens
                .with_label_values(&[&route.name, &model, t.output_source.as_str()])
                .inc_by(n);
        }
        if let Some(d) = t.time_to_first_token {
            m.ttft.with_label_values(&rm).observe(d.as_secs_f64());
        }
        if !t.inter_token.is_empty() {
            let h = m.inter_token.with_label_values(&rm);
            for d in &t.inter_token {
                h.observe(d.as_secs_f64());
            }
        }
        if let Some(d) = t.time_per_output_token {
            m.per_output_token
                .with_label_values(&rm)
                .observe(d.as_secs_f64());
            if !d.is_zero() {
                m.output_tokens_per_second
                    .with_label_values(&rm)
                    .observe(1.0 / d.as_secs_f64());
            }
        }
        if let Some(d) = t.time_to_second_token {
            m.time_to_second_token
                .with_label_values(&rm)
                .observe(d.as_secs_f64());
        }
        if let Some(n) = t.cached_input {
            m.cached_input_tokens.with_label_values(&rm).inc_by(n);
        }
        if let Some(n) = t.reasoning {
            m.reasoning_tokens.with_label_values(&rm).inc_by(n);
        }
        for reason in &t.finish_reasons {
            m.completions
                .with_label_values(&[&route.name, &model, reason.as_str()])
                .inc();
        }
    }
    model
}

#[cfg(test)]
#[path = "inspect_columns_test.rs"]
mod columns_test;
