//! Semantic validation of a typed [`Config`]: each component's own rules, called in the order of
//! the config's sections, and, here in one place, the rules that need several sections (the two
//! listeners, routes named by charts, probes and shadow targets, inspection needed by shadowing
//! and feedback, a model server process needed by the energy estimate). Every problem is
//! collected with its key path, so that an operator fixes them all in one go.

use std::net::SocketAddr;

use super::error::ConfigError;
use super::validator::Validator;
use super::Config;
use crate::admin::config::AdminConfig;
use crate::energy::config::{EnergyConfig, SourceMode};
use crate::proxy::config::ProxyConfig;
use crate::quality::config::{is_signal_name, parse_signal, QualityConfig, SignalRef};
use crate::routes::config::{Protocol, RouteConfig, OTHER_ROUTE};
use crate::system::config::SystemConfig;

/// Checks a typed config; returns every problem found (empty = valid).
pub fn validate(config: &Config) -> Vec<ConfigError> {
    validate_skipping(config, &[])
}

/// Like [`validate`], but skips every rule that involves one of `skip` (dotted key paths), or a key
/// above or below one of them. The loader passes the keys that had type errors: their values were
/// replaced by defaults, and a rule judging a stand-in would report a problem the file does not have.
pub(crate) fn validate_skipping(config: &Config, skip: &[String]) -> Vec<ConfigError> {
    let mut v = Validator::new(skip);
    let routes = &config.proxy.routes;
    crate::proxy::config::validate(&mut v, &config.proxy);
    crate::routes::config::validate(&mut v, routes);
    crate::protocol::config::validate(&mut v, routes);
    listeners(&mut v, &config.proxy, &config.admin);
    crate::admin::config::validate(&mut v, &config.admin);
    crate::latency::config::validate(&mut v, &config.latency);
    crate::tap::config::validate(&mut v, &config.inspection);
    crate::energy::config::validate(&mut v, &config.energy);
    estimate_needs_a_process(&mut v, &config.energy, &config.system);
    crate::system::config::validate(&mut v, &config.system);
    crate::engine::config::validate(&mut v, &config.engine);
    crate::telemetry::config::validate(&mut v, &config.log);
    crate::quality::config::validate(&mut v, &config.quality);
    chart_routes(&mut v, &config.quality, routes);
    crate::canary::config::validate(&mut v, &config.canary);
    for (i, p) in config.canary.iter().enumerate() {
        decoded_route(&mut v, &format!("canary[{i}].route"), &p.route, routes);
    }
    crate::shadow::config::validate(&mut v, &config.shadow);
    for (i, t) in config.shadow.targets.iter().enumerate() {
        let at = format!("shadow.targets[{i}].route");
        decoded_route(&mut v, &at, &t.route, routes);
    }
    inspection_needed(&mut v, config);
    crate::feedback::config::validate(&mut v, &config.feedback);
    crate::canary::config::validate_accuracy(&mut v, &config.accuracy);
    crate::canary::config::validate_cold_start(&mut v, &config.cold_start);
    v.into_errors()
}

/// Two listeners on the same port conflict when their addresses are equal or one is unspecified
/// (`0.0.0.0`, `::`). Port 0 asks the OS for a free port and never conflicts.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn listeners(v: &mut Validator<'_>, proxy: &ProxyConfig, admin: &AdminConfig) {
    let (proxy, admin) = (proxy.listen, admin.listen);
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

/// `energy.estimate = "on"` turns the model server's CPU time into joules: it needs that process
/// named in `[system]`.
fn estimate_needs_a_process(v: &mut Validator<'_>, e: &EnergyConfig, s: &SystemConfig) {
    if e.estimate == SourceMode::On
        && !s.names_a_process()
        && v.clean(&["system.pid", "system.pid_file", "system.process_name"])
    {
        v.report(
            "energy.estimate",
            "\"on\" needs the model server process: set system.pid, system.pid_file or system.process_name".into(),
        );
    }
}

/// A chart of a pull signal (`request_error:<route>`, `latency_p99:<route>`) names a configured
/// route or `other`.
fn chart_routes(v: &mut Validator<'_>, q: &QualityConfig, routes: &[RouteConfig]) {
    if !v.clean(&["proxy.routes"]) {
        return;
    }
    let known: Vec<&str> = routes
        .iter()
        .map(|r| r.name.as_str())
        .chain([OTHER_ROUTE])
        .collect();
    for (i, c) in q.charts.iter().enumerate() {
        if c.signal.is_empty() || !is_signal_name(&c.signal) {
            continue;
        }
        let route = match parse_signal(&c.signal) {
            SignalRef::RequestError(r) | SignalRef::LatencyP99(r) => r,
            SignalRef::Pushed(_) => continue,
        };
        if !known.contains(&route) {
            v.report(
                &format!("quality.charts[{i}].signal"),
                format!(
                    "unknown route {route:?} in {:?}, expected one of proxy.routes' names or \"other\"",
                    c.signal
                ),
            );
        }
    }
}

/// A configured route whose answers a protocol adapter can read (canary probes and shadow
/// targets read answers through their route's protocol and prediction rule).
fn decoded_route(v: &mut Validator<'_>, at: &str, name: &str, routes: &[RouteConfig]) {
    if !v.clean(&["proxy.routes"]) {
        return;
    }
    let known: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
    match routes.iter().find(|r| r.name == name) {
        _ if name.is_empty() => v.report(
            at,
            format!("missing route, expected one of {}", known.join(", ")),
        ),
        None => v.report(
            at,
            format!(
                "unknown route {name:?}{}, expected one of [{}]",
                if name == OTHER_ROUTE {
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

/// Shadowing, feedback and SLOs read decoded live traffic, which only exists with inspection on.
fn inspection_needed(v: &mut Validator<'_>, config: &Config) {
    if !config.inspection.enabled && v.clean(&["inspection.enabled"]) {
        let need = "reads decoded live traffic: needs inspection.enabled = true";
        if !config.shadow.targets.is_empty() {
            v.report("shadow.targets", format!("shadowing {need}"));
        }
        if config.feedback.enabled {
            v.report("feedback.enabled", format!("feedback {need}"));
        }
        for (i, r) in config.proxy.routes.iter().enumerate() {
            if r.slo.is_set() {
                v.report(
                    &format!("proxy.routes[{i}].slo"),
                    format!("classifying requests against an SLO {need}"),
                );
            }
        }
    }
}
