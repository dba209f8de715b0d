//! Small rules that several sections share (durations, counts, tolerances, label names, the
//! model server's URL, request headers): each returns the problem as a message, or reports it
//! through the [`Validator`], so every component words the same rule the same way.

use std::collections::BTreeMap;

use super::validator::Validator;

/// Longest accepted duration, in seconds (one year): long enough for any real timeout, short enough
/// that `Instant::now() + timeout` can never overflow.
pub const MAX_SECS: f64 = 31_536_000.0;

/// Shortest sampling interval of the energy and system samplers: below 10 ms the reads
/// themselves become the load being measured.
pub const MIN_SAMPLING_SECS: f64 = 0.01;
/// Longest sampling interval of the energy and system samplers: RAPL counters can wrap within
/// minutes at full power.
pub const MAX_SAMPLING_SECS: f64 = 60.0;

/// Shortest accepted non-zero duration, in seconds (1 ms): tokio's timers count whole
/// milliseconds, so anything shorter (`1e-300`) is a typo that would act as 0 or as 1 ms.
pub const MIN_SECS: f64 = 0.001;

/// A duration that must be positive.
pub fn secs_positive(x: f64) -> Option<String> {
    if !(x > 0.0 && x <= MAX_SECS) {
        return Some(format!(
            "must be > 0 and <= {MAX_SECS} seconds, got {}",
            short(x)
        ));
    }
    below_a_millisecond(x)
}

/// A duration that may be 0; `zero_means` says what 0 does (" (0 disables)"), or is empty.
pub fn secs_non_negative(x: f64, zero_means: &str) -> Option<String> {
    if !(0.0..=MAX_SECS).contains(&x) {
        return Some(format!(
            "must be >= 0{zero_means} and <= {MAX_SECS} seconds, got {}",
            short(x)
        ));
    }
    if x == 0.0 {
        return None;
    }
    below_a_millisecond(x)
}

fn below_a_millisecond(x: f64) -> Option<String> {
    (x < MIN_SECS).then(|| {
        format!(
            "must be at least {MIN_SECS} seconds (1 ms), got {}",
            short(x)
        )
    })
}

/// A number as written in a short message: plain in the usual range, else in exponent form
/// (`1e300` rather than 301 digits).
pub fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() || (1e-3..1e12).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// A count that must be at least 1.
pub fn at_least_one(n: u64) -> Option<String> {
    (n < 1).then(|| format!("must be at least 1, got {n}"))
}

/// An absolute or relative tolerance of a numeric comparison.
pub fn tolerance(x: f64) -> Option<String> {
    (!(x >= 0.0 && x.is_finite())).then(|| format!("must be a finite number >= 0, got {x}"))
}

/// A sampler's interval, in [`MIN_SAMPLING_SECS`, `MAX_SAMPLING_SECS`].
pub fn sampling_interval(x: f64) -> Option<String> {
    (!(MIN_SAMPLING_SECS..=MAX_SAMPLING_SECS).contains(&x)).then(|| {
        format!("must be >= {MIN_SAMPLING_SECS} and <= {MAX_SAMPLING_SECS} seconds, got {x}")
    })
}

/// A label value named in config (route, chart, probe, shadow target): `[a-z0-9_]+`.
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A `probe` or `target` label value: present, `[a-z0-9_]+`, unique (`first`: where it was
/// first used, if it was).
pub fn unique_name(v: &mut Validator<'_>, at: &str, name: &str, first: Option<String>) {
    if name.is_empty() {
        v.report(at, "missing name, expected [a-z0-9_]+".into());
    } else if !is_name(name) {
        v.report(at, format!("invalid name {name:?}, expected [a-z0-9_]+"));
    } else if let Some(first) = first {
        v.report(
            at,
            format!("duplicate name {name:?} (first used by {first})"),
        );
    }
}

/// `http://host:port`, nothing else: the sidecar, its probes and its HTTP shadows talk plain HTTP
/// to a model server next to them.
pub fn upstream_problem(upstream: &str) -> Option<String> {
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

/// The request headers of an HTTP target off the live path (a canary probe, an HTTP shadow
/// target): `{at}.headers` maps names to static values, `{at}.header_files` names to files
/// holding secret values. Canary and shadow keep these keys in their own sections (TOML keys
/// cannot change, and a `#[serde(flatten)]` struct would hide unknown keys and type-error
/// paths from the loader), so they share this rule instead of a struct.
pub fn http_headers(
    v: &mut Validator<'_>,
    at: &str,
    headers: &BTreeMap<String, String>,
    header_files: &BTreeMap<String, String>,
) {
    header_map(v, &format!("{at}.headers"), headers, false);
    header_map(v, &format!("{at}.header_files"), header_files, true);
}

fn header_map(v: &mut Validator<'_>, at: &str, h: &BTreeMap<String, String>, files: bool) {
    for (k, val) in h {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            v.report(&format!("{at}.{k}"), format!("invalid header name {k:?}"));
        } else if files && val.is_empty() {
            v.report(&format!("{at}.{k}"), "missing file name".into());
        } else if !files && http::HeaderValue::from_str(val).is_err() {
            v.report(&format!("{at}.{k}"), "invalid header value".into());
        }
    }
}
