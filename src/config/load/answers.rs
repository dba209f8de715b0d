//! Validation of `[[canary]]`, `[shadow]`, `[feedback]`, `[accuracy]` and `[cold_start]`. A child
//! of `validate.rs`, so it reports through the same `Validator` (every problem, with its path).

use std::collections::BTreeMap;

use super::{
    is_route_name, secs_non_negative, secs_positive, upstream_problem, Validator, RESERVED_ROUTE,
};
use crate::config::{Config, Protocol, ShadowKind};

/// Largest shadow queue or feedback map accepted.
pub const MAX_ENTRIES: usize = 10_000_000;
/// Most ONNX threads per target: more would compete with the model server for the same cores.
pub const MAX_ONNX_THREADS: usize = 64;
/// Most ratio windows: each is a series per probe, target or route and model.
pub const MAX_WINDOWS: usize = 8;

pub(super) fn answers(v: &mut Validator<'_>, config: &Config) {
    for (i, p) in config.canary.iter().enumerate() {
        let at = |key: &str| format!("canary[{i}].{key}");
        let first = config.canary[..i].iter().position(|o| o.name == p.name);
        name(
            v,
            &at("name"),
            &p.name,
            first.map(|j| format!("canary[{j}]")),
        );
        route(v, &at("route"), &p.route, config);
        if !p.path.is_empty() && !p.path.starts_with('/') {
            v.report(&at("path"), format!("must start with /, got {:?}", p.path));
        }
        if !matches!(p.method.as_str(), "GET" | "POST" | "PUT") {
            v.report(
                &at("method"),
                format!("expected GET, POST or PUT, got {:?}", p.method),
            );
        }
        if p.golden_file.is_empty() {
            v.report(
                &at("golden_file"),
                "missing golden set file (JSON Lines)".into(),
            );
        }
        if !p.upstream.is_empty() {
            v.check(&at("upstream"), upstream_problem(&p.upstream));
        }
        v.check(&at("interval_secs"), secs_positive(p.interval_secs));
        v.check(&at("jitter_secs"), secs_non_negative(p.jitter_secs, ""));
        v.check(&at("timeout_secs"), secs_positive(p.timeout_secs));
        headers(v, &at("headers"), &p.headers, false);
        headers(v, &at("header_files"), &p.header_files, true);
        tolerance(v, &at("abs_tolerance"), p.abs_tolerance);
        tolerance(v, &at("rel_tolerance"), p.rel_tolerance);
        if !(0.0..=1.0).contains(&p.success_ratio) {
            v.report(
                &at("success_ratio"),
                format!("must be between 0 and 1, got {}", p.success_ratio),
            );
        }
    }

    let s = &config.shadow;
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
        name(
            v,
            &at("name"),
            &t.name,
            first.map(|j| format!("shadow.targets[{j}]")),
        );
        route(v, &at("route"), &t.route, config);
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
        tolerance(v, &at("abs_tolerance"), t.abs_tolerance);
        tolerance(v, &at("rel_tolerance"), t.rel_tolerance);
        headers(v, &at("headers"), &t.headers, false);
        headers(v, &at("header_files"), &t.header_files, true);
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

    let f = &config.feedback;
    if !config.inspection.enabled && v.clean(&["inspection.enabled"]) {
        let need = "reads decoded live traffic: needs inspection.enabled = true";
        if !s.targets.is_empty() {
            v.report("shadow.targets", format!("shadowing {need}"));
        }
        if f.enabled {
            v.report("feedback.enabled", format!("feedback {need}"));
        }
    }
    if f.enabled {
        if f.token_file.is_empty() {
            v.report(
                "feedback.token_file",
                "missing bearer token file (required when feedback is enabled)".into(),
            );
        }
        if http::HeaderName::from_bytes(f.request_id_header.as_bytes()).is_err() {
            v.report(
                "feedback.request_id_header",
                format!("invalid header name {:?}", f.request_id_header),
            );
        }
        v.check("feedback.ttl_secs", secs_positive(f.ttl_secs));
        if !(1..=MAX_ENTRIES).contains(&f.max_entries) {
            v.report(
                "feedback.max_entries",
                format!("must be between 1 and {MAX_ENTRIES}, got {}", f.max_entries),
            );
        }
        tolerance(v, "feedback.abs_tolerance", f.abs_tolerance);
        tolerance(v, "feedback.rel_tolerance", f.rel_tolerance);
    }

    let a = &config.accuracy;
    if a.slot_secs < 1 {
        v.report(
            "accuracy.slot_secs",
            format!("must be at least 1, got {}", a.slot_secs),
        );
    }
    if a.windows_secs.is_empty() || a.windows_secs.len() > MAX_WINDOWS {
        v.report(
            "accuracy.windows_secs",
            format!(
                "expected 1 to {MAX_WINDOWS} windows, got {}",
                a.windows_secs.len()
            ),
        );
    }
    for (i, &w) in a.windows_secs.iter().enumerate() {
        let at = format!("accuracy.windows_secs[{i}]");
        if w == 0 || (a.slot_secs > 0 && w % a.slot_secs != 0) {
            v.report(
                &at,
                format!(
                    "must be a positive multiple of accuracy.slot_secs ({}), got {w}",
                    a.slot_secs
                ),
            );
        } else if a.windows_secs[..i].contains(&w) {
            v.report(&at, format!("duplicate window {w}"));
        }
    }
    v.check(
        "cold_start.idle_gap_secs",
        secs_non_negative(config.cold_start.idle_gap_secs, " (0 disables)"),
    );
}

/// A `probe` or `target` label value: present, `[a-z0-9_]+`, unique.
fn name(v: &mut Validator<'_>, at: &str, name: &str, first: Option<String>) {
    if name.is_empty() {
        v.report(at, "missing name, expected [a-z0-9_]+".into());
    } else if !is_route_name(name) {
        v.report(at, format!("invalid name {name:?}, expected [a-z0-9_]+"));
    } else if let Some(first) = first {
        v.report(
            at,
            format!("duplicate name {name:?} (first used by {first})"),
        );
    }
}

/// A configured route whose answers a protocol adapter can read.
fn route(v: &mut Validator<'_>, at: &str, name: &str, config: &Config) {
    if !v.clean(&["proxy.routes"]) {
        return;
    }
    let known: Vec<&str> = config
        .proxy
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    match config.proxy.routes.iter().find(|r| r.name == name) {
        _ if name.is_empty() => v.report(
            at,
            format!("missing route, expected one of {}", known.join(", ")),
        ),
        None => v.report(
            at,
            format!(
                "unknown route {name:?}{}, expected one of [{}]",
                if name == RESERVED_ROUTE {
                    " (unmatched traffic is not decoded)"
                } else {
                    ""
                },
                known.join(", ")
            ),
        ),
        Some(r) if r.protocol == Protocol::Opaque => v.report(
            at,
            format!("route {name:?} is opaque: its answers cannot be read, give it a protocol"),
        ),
        Some(_) => {}
    }
}

fn headers(v: &mut Validator<'_>, at: &str, h: &BTreeMap<String, String>, files: bool) {
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

fn tolerance(v: &mut Validator<'_>, at: &str, x: f64) {
    if !(x >= 0.0 && x.is_finite()) {
        v.report(at, format!("must be a finite number >= 0, got {x}"));
    }
}
