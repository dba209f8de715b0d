//! Validation of `[quality]`: charts, drift tests, the queue. A child of `validate.rs`, so it
//! reports through the same `Validator` (every problem, each with its key path).

use super::{is_route_name, secs_positive, Validator, RESERVED_ROUTE};
use crate::config::Config;
use crate::quality::config::{
    is_signal_name, parse_signal, ChartConfig, ChartKind, DriftConfig, SignalRef,
};

/// Largest queue accepted: a million observations (16 MiB) is already far more than an engine
/// tick can fall behind by.
pub const MAX_QUEUE: usize = 1_000_000;

/// Most bins a PSI may use: more bins than that leave too few reference values per bin.
pub const MAX_BINS: usize = 100;

pub(super) fn quality(v: &mut Validator<'_>, config: &Config) {
    let q = &config.quality;
    if !(1..=MAX_QUEUE).contains(&q.queue_capacity) {
        v.report(
            "quality.queue_capacity",
            format!(
                "must be between 1 and {MAX_QUEUE}, got {}",
                q.queue_capacity
            ),
        );
    }
    let routes: Vec<&str> = config
        .proxy
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .chain([RESERVED_ROUTE])
        .collect();
    let routes_known = v.clean(&["proxy.routes"]);
    for (i, c) in q.charts.iter().enumerate() {
        let first = q.charts[..i].iter().position(|o| o.name == c.name);
        chart(v, i, c, first, routes_known.then_some(&routes[..]));
    }
    for (i, d) in q.drift.iter().enumerate() {
        let first = q.drift[..i].iter().position(|o| o.signal == d.signal);
        drift(v, i, d, first);
    }
}

fn finite_positive(x: f64) -> Option<String> {
    (!(x > 0.0 && x.is_finite())).then(|| format!("must be a finite number > 0, got {x}"))
}

fn chart(
    v: &mut Validator<'_>,
    i: usize,
    c: &ChartConfig,
    first: Option<usize>,
    routes: Option<&[&str]>,
) {
    let at = |key: &str| format!("quality.charts[{i}].{key}");
    if c.name.is_empty() {
        v.report(
            &at("name"),
            "missing chart name, expected [a-z0-9_]+".into(),
        );
    } else if !is_route_name(&c.name) {
        v.report(
            &at("name"),
            format!("invalid chart name {:?}, expected [a-z0-9_]+", c.name),
        );
    } else if let Some(j) = first {
        v.report(
            &at("name"),
            format!(
                "duplicate chart name {:?} (first used by quality.charts[{j}])",
                c.name
            ),
        );
    }

    if c.signal.is_empty() {
        v.report(
            &at("signal"),
            "missing signal, expected request_error:<route>, latency_p99:<route> or a pushed signal name".into(),
        );
    } else if !is_signal_name(&c.signal) {
        v.report(
            &at("signal"),
            format!(
                "invalid signal {:?}, expected [a-z0-9_]+ or kind:route such as request_error:infer",
                c.signal
            ),
        );
    } else {
        let route = match parse_signal(&c.signal) {
            SignalRef::RequestError(r) => {
                if c.kind != ChartKind::P && v.clean(&[&at("kind")]) {
                    v.report(
                        &at("kind"),
                        format!(
                            "{} is a failed-request fraction: kind must be \"p\", got {:?}",
                            c.signal,
                            c.kind.as_str()
                        ),
                    );
                }
                Some(r)
            }
            SignalRef::LatencyP99(r) => {
                if c.kind == ChartKind::P && v.clean(&[&at("kind")]) {
                    v.report(
                        &at("kind"),
                        format!(
                            "{} is a continuous signal: kind \"p\" is for 0/1 signals",
                            c.signal
                        ),
                    );
                }
                Some(r)
            }
            SignalRef::Pushed(_) => None,
        };
        if let (Some(route), Some(known)) = (route, routes) {
            if !known.contains(&route) {
                v.report(
                    &at("signal"),
                    format!(
                        "unknown route {route:?} in {:?}, expected one of proxy.routes' names or \"other\"",
                        c.signal
                    ),
                );
            }
        }
    }

    v.check(
        &at("subgroup_interval_secs"),
        secs_positive(c.subgroup_interval_secs),
    );
    let fixed = matches!(
        (c.kind, c.center, c.sigma),
        (ChartKind::P, Some(_), _) | (_, Some(_), Some(_))
    );
    if !fixed && c.phase1_subgroups < 2 {
        v.report(
            &at("phase1_subgroups"),
            format!(
                "must be at least 2 (sigma is estimated from the spread between subgroups), got {}",
                c.phase1_subgroups
            ),
        );
    }
    match (c.kind, c.center, c.sigma) {
        (ChartKind::P, Some(p), _) if !(p > 0.0 && p < 1.0) => v.report(
            &at("center"),
            format!("a p chart's center is a fraction in (0, 1), got {p}"),
        ),
        (ChartKind::P, _, Some(_)) => v.report(
            &at("sigma"),
            "not used by a p chart (its sigma follows from center), remove it".into(),
        ),
        (_, Some(m), _) if !m.is_finite() => {
            v.report(&at("center"), format!("must be a finite number, got {m}"))
        }
        (ChartKind::P, _, _) => {}
        (_, Some(_), None) => v.report(
            &at("sigma"),
            "missing: a fixed baseline needs both center and sigma (or neither, to learn them in Phase I)".into(),
        ),
        (_, None, Some(_)) => v.report(
            &at("center"),
            "missing: a fixed baseline needs both center and sigma (or neither, to learn them in Phase I)".into(),
        ),
        _ => {}
    }
    if let (false, Some(s)) = (c.kind == ChartKind::P, c.sigma) {
        v.check(&at("sigma"), finite_positive(s));
    }

    let we = c.we_two_of_three || c.we_four_of_five || c.we_eight_in_a_row;
    if c.kind == ChartKind::Shewhart && we && c.limit.is_finite() && c.limit <= 2.0 {
        v.report(
            &at("limit"),
            format!(
                "must be > 2 with the Western Electric rules on (rule 2 uses 2 sigma), got {}",
                c.limit
            ),
        );
    } else {
        v.check(&at("limit"), finite_positive(c.limit));
    }
    if !(c.lambda > 0.0 && c.lambda <= 1.0) {
        v.report(
            &at("lambda"),
            format!("must be in (0, 1], got {}", c.lambda),
        );
    }
    if !(c.k >= 0.0 && c.k.is_finite()) {
        v.report(
            &at("k"),
            format!("must be a finite number >= 0, got {}", c.k),
        );
    }
    v.check(&at("h"), finite_positive(c.h));
    if c.kind != ChartKind::Shewhart {
        for (key, on) in [
            ("we_two_of_three", c.we_two_of_three),
            ("we_four_of_five", c.we_four_of_five),
            ("we_eight_in_a_row", c.we_eight_in_a_row),
        ] {
            if on && v.clean(&[&at("kind")]) {
                v.report(
                    &at(key),
                    format!(
                        "Western Electric rules apply to kind \"shewhart\" only, got kind {:?}",
                        c.kind.as_str()
                    ),
                );
            }
        }
    }
    if c.clear_after_subgroups < 1 {
        v.report(
            &at("clear_after_subgroups"),
            "must be at least 1, got 0".into(),
        );
    }
}

fn drift(v: &mut Validator<'_>, i: usize, d: &DriftConfig, first: Option<usize>) {
    let at = |key: &str| format!("quality.drift[{i}].{key}");
    if d.signal.is_empty() {
        v.report(
            &at("signal"),
            "missing signal, expected a pushed signal name".into(),
        );
    } else if !is_signal_name(&d.signal) {
        v.report(
            &at("signal"),
            format!("invalid signal {:?}, expected [a-z0-9_]+", d.signal),
        );
    } else if !matches!(parse_signal(&d.signal), SignalRef::Pushed(_)) {
        v.report(
            &at("signal"),
            format!(
                "{:?} is a chart-only pull signal; drift tests read pushed signals",
                d.signal
            ),
        );
    } else if let Some(j) = first {
        v.report(
            &at("signal"),
            format!(
                "duplicate drift test of {:?} (first at quality.drift[{j}])",
                d.signal
            ),
        );
    }
    let bins_ok = (2..=MAX_BINS).contains(&d.bins);
    if !bins_ok {
        v.report(
            &at("bins"),
            format!("must be between 2 and {MAX_BINS}, got {}", d.bins),
        );
    }
    let least = if bins_ok && v.clean(&[&at("bins")]) {
        (5 * d.bins).max(10)
    } else {
        10
    };
    for (key, n) in [
        ("reference_size", d.reference_size),
        ("window_size", d.window_size),
    ] {
        if n < least {
            v.report(
                &at(key),
                format!("must be at least {least} (5 per bin, 10 at least), got {n}"),
            );
        }
    }
    if !(d.alpha > 0.0 && d.alpha < 0.5) {
        v.report(
            &at("alpha"),
            format!("must be in (0, 0.5), got {}", d.alpha),
        );
    }
}
