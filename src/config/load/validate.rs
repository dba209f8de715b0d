//! Semantic validation of a typed [`Config`]: every rule that a type alone cannot express. Every
//! problem is collected, each with its key path, so that an operator fixes them all in one go.

use super::ConfigError;
use crate::config::{
    Config, InspectionConfig, LatencyConfig, LogConfig, PredictionConfig, PredictionKind, Protocol,
    ProxyConfig,
};
use std::net::SocketAddr;

// The `[quality]` rules live in their own file; as a child module they share the `Validator`.
#[path = "quality.rs"]
mod quality;
// Likewise canary probes, shadow targets, feedback and their ratio windows.
#[path = "answers.rs"]
mod answers;

/// Longest accepted duration, in seconds (one year): long enough for any real timeout, short enough
/// that `Instant::now() + timeout` can never overflow.
pub const MAX_SECS: f64 = 31_536_000.0;

/// Most histogram buckets per series: each bucket is a time series per route and model.
pub const MAX_BUCKETS: usize = 500;

/// Most `class` or `model` label values per route: each is a time series per route.
pub const MAX_LABEL_CAP: usize = 10_000;

/// Most input features tracked per route and model: each is a drift signal.
pub const MAX_FEATURES_TRACKED: usize = 1_000;

/// Longest class label in `class_labels`.
pub const MAX_CLASS_LABEL_LEN: usize = 128;

/// Route name reserved for traffic that matches no route.
pub const RESERVED_ROUTE: &str = "other";

/// Checks a typed config; returns every problem found (empty = valid).
pub fn validate(config: &Config) -> Vec<ConfigError> {
    validate_skipping(config, &[])
}

/// Like [`validate`], but skips every rule that involves one of `skip` (dotted key paths), or a key
/// above or below one of them. The loader passes the keys that had type errors: their values were
/// replaced by defaults, and a rule judging a stand-in would report a problem the file does not have.
pub(crate) fn validate_skipping(config: &Config, skip: &[String]) -> Vec<ConfigError> {
    let mut v = Validator {
        skip,
        errors: Vec::new(),
    };
    proxy(&mut v, &config.proxy);
    listeners(&mut v, config);
    if config.admin.max_concurrent_scrapes < 1 {
        v.report(
            "admin.max_concurrent_scrapes",
            format!(
                "must be at least 1, got {}",
                config.admin.max_concurrent_scrapes
            ),
        );
    }
    latency(&mut v, &config.latency);
    inspection(&mut v, &config.inspection);
    super::energy::validate(&mut v, &config.energy, &config.system);
    log(&mut v, &config.log);
    quality::quality(&mut v, config);
    answers::answers(&mut v, config);
    v.errors
}

pub(super) struct Validator<'a> {
    skip: &'a [String],
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    /// True when none of `paths` is at, above or below a skipped key.
    pub(super) fn clean(&self, paths: &[&str]) -> bool {
        paths
            .iter()
            .all(|p| !self.skip.iter().any(|s| within(s, p) || within(p, s)))
    }

    /// Records a problem at `path`, unless that path is skipped.
    pub(super) fn report(&mut self, path: &str, message: String) {
        if self.clean(&[path]) {
            self.errors.push(ConfigError {
                path: path.to_string(),
                message,
            });
        }
    }

    pub(super) fn check(&mut self, path: &str, problem: Option<String>) {
        if let Some(message) = problem {
            self.report(path, message);
        }
    }
}

/// Whether dotted path `inner` is `outer` or below it (`a.b[1]` is within `a.b` but not `a.bc`).
fn within(inner: &str, outer: &str) -> bool {
    inner.starts_with(outer)
        && matches!(
            inner.as_bytes().get(outer.len()),
            None | Some(b'.') | Some(b'[')
        )
}

fn secs_positive(x: f64) -> Option<String> {
    (!(x > 0.0 && x <= MAX_SECS)).then(|| format!("must be > 0 and <= {MAX_SECS} seconds, got {x}"))
}

fn secs_non_negative(x: f64, zero_means: &str) -> Option<String> {
    (!(0.0..=MAX_SECS).contains(&x))
        .then(|| format!("must be >= 0{zero_means} and <= {MAX_SECS} seconds, got {x}"))
}

fn at_least_one(n: u64) -> Option<String> {
    (n < 1).then(|| format!("must be at least 1, got {n}"))
}

fn proxy(v: &mut Validator<'_>, p: &ProxyConfig) {
    if p.worker_threads > 1024 {
        v.report(
            "proxy.worker_threads",
            format!(
                "must be at most 1024 (0 = one per CPU core), got {}",
                p.worker_threads
            ),
        );
    }
    v.check("proxy.upstream", upstream_problem(&p.upstream));
    v.check(
        "proxy.connect_timeout_secs",
        secs_positive(p.connect_timeout_secs),
    );
    v.check(
        "proxy.first_byte_timeout_secs",
        secs_positive(p.first_byte_timeout_secs),
    );
    v.check(
        "proxy.body_idle_timeout_secs",
        secs_non_negative(p.body_idle_timeout_secs, " (0 disables)"),
    );
    v.check(
        "proxy.max_request_body_bytes",
        at_least_one(p.max_request_body_bytes),
    );
    v.check("proxy.max_in_flight", at_least_one(p.max_in_flight as u64));
    v.check(
        "proxy.shutdown_grace_secs",
        secs_non_negative(p.shutdown_grace_secs, ""),
    );
    v.check(
        "proxy.pool_idle_timeout_secs",
        secs_positive(p.pool_idle_timeout_secs),
    );
    v.check(
        "proxy.client_idle_timeout_secs",
        secs_positive(p.client_idle_timeout_secs),
    );
    routes(v, p);
}

/// `http://host:port`, nothing else: the sidecar talks plain HTTP to its pod neighbour.
fn upstream_problem(upstream: &str) -> Option<String> {
    let expected = "expected http://host:port";
    let uri: http::Uri = match upstream.parse() {
        Ok(uri) => uri,
        Err(_) => return Some(format!("invalid url {upstream:?}, {expected}")),
    };
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Some(format!(
                "tls upstreams are not supported (got {upstream:?}), {expected}"
            ))
        }
        Some(other) => return Some(format!("unsupported scheme {other:?}, {expected}")),
        None => return Some(format!("missing scheme in {upstream:?}, {expected}")),
    }
    let Some(authority) = uri.authority() else {
        return Some(format!("missing host in {upstream:?}, {expected}"));
    };
    if authority.as_str().contains('@') {
        return Some(format!(
            "credentials in the upstream url are not supported, {expected}"
        ));
    }
    if authority.host().is_empty() {
        return Some(format!("missing host in {upstream:?}, {expected}"));
    }
    match authority.port_u16() {
        None => return Some(format!("missing port in {upstream:?}, {expected}")),
        Some(0) => return Some(format!("port 0 is not a valid upstream port, {expected}")),
        Some(_) => {}
    }
    if upstream.contains('#') {
        return Some(format!("unexpected fragment in {upstream:?}, {expected}"));
    }
    if uri.query().is_some() {
        return Some(format!("unexpected query in {upstream:?}, {expected}"));
    }
    let path = uri.path();
    if !(path.is_empty() || path == "/") {
        return Some(format!(
            "unexpected path {path:?} in {upstream:?}, {expected} (routes match the client's path)"
        ));
    }
    None
}

fn is_route_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_model_label(model: &str) -> bool {
    (1..=64).contains(&model.len())
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Whether a request matching `later` always matches `earlier` first (equal prefixes, or `earlier`
/// covers `later` at a `/` boundary, so this holds whether prefixes match by string or by segment).
fn shadows(earlier: &str, later: &str) -> bool {
    later.starts_with(earlier)
        && (later.len() == earlier.len()
            || earlier.ends_with('/')
            || later[earlier.len()..].starts_with('/'))
}

fn routes(v: &mut Validator<'_>, p: &ProxyConfig) {
    let mut first_use: Vec<(&str, usize)> = Vec::new();
    for (i, route) in p.routes.iter().enumerate() {
        let name_path = format!("proxy.routes[{i}].name");
        let name = route.name.as_str();
        if name.is_empty() {
            v.report(&name_path, "missing route name, expected [a-z0-9_]+".into());
        } else if !is_route_name(name) {
            v.report(
                &name_path,
                format!("invalid route name {name:?}, expected [a-z0-9_]+"),
            );
        } else if name == RESERVED_ROUTE {
            v.report(
                &name_path,
                format!("route name {name:?} is reserved for unmatched traffic"),
            );
        } else if v.clean(&[&name_path]) {
            match first_use.iter().find(|(n, _)| *n == name) {
                Some((_, j)) => v.report(
                    &name_path,
                    format!("duplicate route name {name:?} (first used by proxy.routes[{j}])"),
                ),
                None => first_use.push((name, i)),
            }
        }

        let prefix_path = format!("proxy.routes[{i}].path_prefix");
        let prefix = route.path_prefix.as_str();
        if prefix.is_empty() {
            v.report(
                &prefix_path,
                "missing path_prefix, expected a path starting with /".into(),
            );
        } else if !prefix.starts_with('/') {
            v.report(
                &prefix_path,
                format!("path_prefix {prefix:?} must start with /"),
            );
        } else {
            let earlier = p.routes[..i].iter().enumerate().find(|(j, r)| {
                r.path_prefix.starts_with('/')
                    && v.clean(&[&format!("proxy.routes[{j}].path_prefix")])
                    && shadows(&r.path_prefix, prefix)
            });
            if let Some((j, r)) = earlier {
                v.report(
                    &prefix_path,
                    format!(
                        "route never matches: proxy.routes[{j}] (path_prefix {:?}) comes first and matches all its requests",
                        r.path_prefix
                    ),
                );
            }
        }

        let model = route.model.as_str();
        if model.is_empty() {
            v.report(
                &format!("proxy.routes[{i}].model"),
                "missing model, expected 1 to 64 characters of [A-Za-z0-9_.:-]".into(),
            );
        } else if !is_model_label(model) {
            v.report(
                &format!("proxy.routes[{i}].model"),
                format!("invalid model {model:?}, expected 1 to 64 characters of [A-Za-z0-9_.:-]"),
            );
        }
        if v.clean(&[&format!("proxy.routes[{i}].protocol")]) {
            prediction(v, i, route.protocol, &route.prediction);
        }
    }
}

/// RFC 6901: empty or `/`-separated tokens in which `~` is only ever `~0` or `~1`. Here the
/// empty string means "not set", so the whole document is spelled `#` (its URI fragment form).
fn pointer_problem(pointer: &str) -> Option<String> {
    if pointer.is_empty() || pointer == "#" {
        return None;
    }
    if !pointer.starts_with('/') {
        return Some(format!(
            "invalid JSON pointer {pointer:?}, expected \"\" (not set), \"#\" (the whole document) or an RFC 6901 pointer starting with /"
        ));
    }
    let bytes = pointer.as_bytes();
    let bad_escape = bytes
        .iter()
        .enumerate()
        .any(|(k, &b)| b == b'~' && !matches!(bytes.get(k + 1), Some(b'0') | Some(b'1')));
    bad_escape.then(|| {
        format!("invalid JSON pointer {pointer:?}: `~` must be followed by 0 or 1 (RFC 6901)")
    })
}

fn prediction(v: &mut Validator<'_>, i: usize, protocol: Protocol, p: &PredictionConfig) {
    let at = |key: &str| format!("proxy.routes[{i}].prediction.{key}");
    let pointers = [
        ("model_pointer", &p.model_pointer),
        ("rows_pointer", &p.rows_pointer),
        ("class_pointer", &p.class_pointer),
        ("score_pointer", &p.score_pointer),
        ("value_pointer", &p.value_pointer),
    ];
    for (key, pointer) in pointers {
        if let Some(problem) = pointer_problem(pointer) {
            v.report(&at(key), problem);
        } else if !pointer.is_empty() && protocol != Protocol::Json {
            v.report(
                &at(key),
                format!(
                    "only used by protocol \"json\", this route's protocol is {:?}",
                    protocol.as_str()
                ),
            );
        }
    }
    if protocol == Protocol::Json
        && p.class_pointer.is_empty()
        && p.score_pointer.is_empty()
        && p.value_pointer.is_empty()
    {
        v.report(
            &format!("proxy.routes[{i}].prediction"),
            "protocol \"json\" needs at least one of class_pointer, score_pointer, value_pointer"
                .into(),
        );
    }
    if p.kind == PredictionKind::Regression && !p.class_labels.is_empty() {
        v.report(
            &at("class_labels"),
            "class labels make no sense with kind = \"regression\"".into(),
        );
    }
    for (k, label) in p.class_labels.iter().enumerate() {
        let path = format!("{}[{k}]", at("class_labels"));
        if label.is_empty() || label.len() > MAX_CLASS_LABEL_LEN {
            v.report(
                &path,
                format!(
                    "must be 1 to {MAX_CLASS_LABEL_LEN} bytes, got {}",
                    label.len()
                ),
            );
        } else if label.chars().any(char::is_control) {
            v.report(
                &path,
                format!("control characters in class label {label:?}"),
            );
        } else if let Some(first) = p.class_labels[..k].iter().position(|l| l == label) {
            v.report(
                &path,
                format!("duplicate class label {label:?} (first at class_labels[{first}])"),
            );
        }
    }
    for (k, b) in p.feature_bounds.iter().enumerate() {
        let path = format!("{}[{k}]", at("feature_bounds"));
        if b.min.is_nan() || b.max.is_nan() {
            v.report(&path, "min and max must be numbers, got NaN".into());
        } else if b.min > b.max {
            v.report(
                &path,
                format!("min ({}) must not be greater than max ({})", b.min, b.max),
            );
        }
        if let Some(first) = p.feature_bounds[..k]
            .iter()
            .position(|o| o.feature == b.feature)
        {
            v.report(
                &format!("{path}.feature"),
                format!(
                    "duplicate bounds for feature {} (first at feature_bounds[{first}])",
                    b.feature
                ),
            );
        }
    }
}

/// Two listeners on the same port conflict when their addresses are equal or one is unspecified
/// (`0.0.0.0`, `::`). Port 0 asks the OS for a free port and never conflicts.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn listeners(v: &mut Validator<'_>, config: &Config) {
    let (proxy, admin) = (config.proxy.listen, config.admin.listen);
    if v.clean(&["proxy.listen", "admin.listen"]) && overlaps(proxy, admin) {
        let message = if proxy == admin {
            format!("same address as proxy.listen ({proxy}), the two listeners must differ")
        } else {
            format!(
                "overlaps proxy.listen ({proxy}) on port {}, the two listeners must differ",
                proxy.port()
            )
        };
        v.report("admin.listen", message);
    }
}

/// Number of geometric buckets from `min` to `max` with ratio `factor` (both ends included).
pub fn geometric_bucket_count(min: f64, max: f64, factor: f64) -> f64 {
    ((max / min).ln() / factor.ln()).ceil() + 1.0
}

fn latency(v: &mut Validator<'_>, l: &LatencyConfig) {
    if l.buckets.len() > MAX_BUCKETS {
        v.report(
            "latency.buckets",
            format!(
                "too many buckets ({}), at most {MAX_BUCKETS}",
                l.buckets.len()
            ),
        );
    }
    let mut previous: Option<(usize, f64)> = None;
    for (i, &b) in l.buckets.iter().enumerate() {
        let path = format!("latency.buckets[{i}]");
        if !(b > 0.0 && b.is_finite()) {
            v.report(
                &path,
                format!("must be a finite number of seconds > 0, got {b}"),
            );
            continue;
        }
        if let Some((j, prev)) = previous {
            if b <= prev && v.clean(&[&format!("latency.buckets[{j}]")]) {
                v.report(
                    &path,
                    format!("must be greater than latency.buckets[{j}] ({prev}), buckets must be strictly increasing"),
                );
            }
        }
        previous = Some((i, b));
    }

    let min_ok = l.bucket_min_secs > 0.0 && l.bucket_min_secs.is_finite();
    if !min_ok {
        v.report(
            "latency.bucket_min_secs",
            format!(
                "must be a finite number of seconds > 0, got {}",
                l.bucket_min_secs
            ),
        );
    }
    let mut max_ok = l.bucket_max_secs.is_finite();
    if !max_ok {
        v.report(
            "latency.bucket_max_secs",
            format!(
                "must be a finite number of seconds, got {}",
                l.bucket_max_secs
            ),
        );
    } else if min_ok
        && v.clean(&["latency.bucket_min_secs"])
        && l.bucket_max_secs <= l.bucket_min_secs
    {
        max_ok = false;
        v.report(
            "latency.bucket_max_secs",
            format!(
                "must be greater than bucket_min_secs ({}), got {}",
                l.bucket_min_secs, l.bucket_max_secs
            ),
        );
    }
    let factor_ok = l.bucket_factor > 1.0 && l.bucket_factor.is_finite();
    if !factor_ok {
        v.report(
            "latency.bucket_factor",
            format!("must be a finite number > 1, got {}", l.bucket_factor),
        );
    }
    let geometry = [
        "latency.bucket_min_secs",
        "latency.bucket_max_secs",
        "latency.bucket_factor",
    ];
    if min_ok && max_ok && factor_ok && v.clean(&geometry) {
        let count = geometric_bucket_count(l.bucket_min_secs, l.bucket_max_secs, l.bucket_factor);
        if count > MAX_BUCKETS as f64 {
            v.report(
                "latency.bucket_factor",
                format!(
                    "generates {count:.0} buckets from bucket_min_secs to bucket_max_secs, at most {MAX_BUCKETS}; raise bucket_factor or narrow the range"
                ),
            );
        }
    }

    if l.slot_secs < 1 {
        v.report(
            "latency.slot_secs",
            format!("must be at least 1 second, got {}", l.slot_secs),
        );
    }
    let slot = (l.slot_secs >= 1 && v.clean(&["latency.slot_secs"])).then_some(l.slot_secs);
    if l.windows_secs.is_empty() {
        v.report(
            "latency.windows_secs",
            "must not be empty, expected window lengths in seconds such as [60, 600]".into(),
        );
    }
    for (i, &w) in l.windows_secs.iter().enumerate() {
        let path = format!("latency.windows_secs[{i}]");
        if w == 0 {
            v.report(&path, "must be > 0 seconds, got 0".into());
        } else if let Some(first) = l.windows_secs[..i].iter().position(|&x| x == w) {
            v.report(
                &path,
                format!("duplicate window {w} (first at latency.windows_secs[{first}])"),
            );
        } else if let Some(slot) = slot.filter(|s| w % s != 0) {
            v.report(
                &path,
                format!("must be a multiple of slot_secs ({slot}), got {w}"),
            );
        }
    }

    for (i, &q) in l.quantiles.iter().enumerate() {
        let path = format!("latency.quantiles[{i}]");
        if !(q > 0.0 && q < 1.0) {
            v.report(
                &path,
                format!("must be between 0 and 1 (exclusive), got {q}"),
            );
        } else if let Some(first) = l.quantiles[..i].iter().position(|&x| x == q) {
            v.report(
                &path,
                format!("duplicate quantile {q} (first at latency.quantiles[{first}])"),
            );
        }
    }

    let ra = l.relative_accuracy;
    v.check(
        "latency.relative_accuracy",
        (!(ra > 0.0 && ra <= 0.1)).then(|| format!("must be > 0 and <= 0.1, got {ra}")),
    );
    let c = l.confidence;
    v.check(
        "latency.confidence",
        (!(c > 0.5 && c < 1.0)).then(|| format!("must be > 0.5 and < 1, got {c}")),
    );
}

fn inspection(v: &mut Validator<'_>, i: &InspectionConfig) {
    if let Some(m) = at_least_one(i.max_body_bytes) {
        v.report("inspection.max_body_bytes", m);
    }
    if let Some(m) = at_least_one(i.queue_capacity as u64) {
        v.report("inspection.queue_capacity", m);
    }
    for (key, n) in [
        ("max_class_labels", i.max_class_labels),
        ("max_model_labels", i.max_model_labels),
    ] {
        if !(1..=MAX_LABEL_CAP).contains(&n) {
            v.report(
                &format!("inspection.{key}"),
                format!("must be between 1 and {MAX_LABEL_CAP}, got {n}"),
            );
        }
    }
    if i.max_features_tracked > MAX_FEATURES_TRACKED {
        v.report(
            "inspection.max_features_tracked",
            format!(
                "must be at most {MAX_FEATURES_TRACKED}, got {}",
                i.max_features_tracked
            ),
        );
    }
}

fn log(v: &mut Validator<'_>, l: &LogConfig) {
    let level = l.level.trim();
    if level.is_empty() {
        v.report(
            "log.level",
            "must not be empty, expected a level such as \"info\" or directives such as \"inferwatch=debug,hyper=warn\"".into(),
        );
    } else if let Err(e) = tracing_subscriber::EnvFilter::try_new(level) {
        v.report(
            "log.level",
            format!("invalid filter directive {:?}: {e}", l.level),
        );
    }
}
