//! Semantic rules of `[energy]` and `[system]`, each reported with its key path.

use super::validate::Validator;
use crate::config::{EnergyConfig, SourceMode, SystemConfig};

/// Shortest sampling interval: below 10 ms the reads themselves become the load being measured.
const MIN_INTERVAL_SECS: f64 = 0.01;
/// Longest sampling interval: RAPL counters can wrap within minutes at full power.
const MAX_INTERVAL_SECS: f64 = 60.0;
/// Longest attribution window (one day): longer windows blur everything they are meant to show.
const MAX_WINDOW_SECS: f64 = 86_400.0;
/// Largest power figure accepted anywhere (100 kW: a full rack).
const MAX_WATTS: f64 = 100_000.0;

fn interval_problem(x: f64) -> Option<String> {
    (!(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&x)).then(|| {
        format!("must be >= {MIN_INTERVAL_SECS} and <= {MAX_INTERVAL_SECS} seconds, got {x}")
    })
}

fn watts_problem(x: f64) -> Option<String> {
    (!(0.0..=MAX_WATTS).contains(&x))
        .then(|| format!("must be >= 0 and <= {MAX_WATTS} watts, got {x}"))
}

/// An index (`0`) or a GPU UUID (or a prefix of one), as CUDA_VISIBLE_DEVICES takes them. MIG
/// instances are not accepted: they share their GPU's one energy counter.
fn is_device(d: &str) -> bool {
    (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        || (d.starts_with("GPU-")
            && d.len() > 4
            && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

pub(super) fn validate(v: &mut Validator<'_>, e: &EnergyConfig, s: &SystemConfig) {
    for (i, d) in e.nvml_devices.iter().enumerate() {
        let path = format!("energy.nvml_devices[{i}]");
        if d.starts_with("MIG-") {
            v.report(
                &path,
                format!("MIG instance {d:?} cannot be named: it shares its GPU's energy counter, name the GPU instead"),
            );
        } else if !is_device(d) {
            v.report(
                &path,
                format!("invalid device {d:?}, expected an index such as \"0\" or a UUID such as \"GPU-8f6b2c1e\""),
            );
        } else if let Some(first) = e.nvml_devices[..i].iter().position(|x| x == d) {
            v.report(
                &path,
                format!("duplicate device {d:?} (first at energy.nvml_devices[{first}])"),
            );
        }
    }
    if let Some(w) = e.nvml_idle_watts {
        v.check("energy.nvml_idle_watts", watts_problem(w));
    }
    if !e.rapl_root.starts_with('/') {
        v.report(
            "energy.rapl_root",
            format!(
                "must be an absolute path such as \"/sys/class/powercap\", got {:?}",
                e.rapl_root
            ),
        );
    }
    if let Some(w) = e.rapl_idle_watts {
        v.check("energy.rapl_idle_watts", watts_problem(w));
    }
    if e.estimate == SourceMode::On
        && !s.names_a_process()
        && v.clean(&["system.pid", "system.pid_file", "system.process_name"])
    {
        v.report(
            "energy.estimate",
            "\"on\" needs the model server process: set system.pid, system.pid_file or system.process_name".into(),
        );
    }
    let wpc = e.watts_per_core;
    v.check(
        "energy.watts_per_core",
        (!(wpc > 0.0 && wpc <= 1000.0))
            .then(|| format!("must be > 0 and <= 1000 watts, got {wpc}")),
    );
    v.check("energy.tdp_watts", watts_problem(e.tdp_watts));
    if let Some(w) = e.estimate_idle_watts {
        v.check("energy.estimate_idle_watts", watts_problem(w));
    }
    let interval = interval_problem(e.interval_secs);
    let interval_ok = interval.is_none();
    v.check("energy.interval_secs", interval);
    let w = e.window_secs;
    if !(w > 0.0 && w <= MAX_WINDOW_SECS) {
        v.report(
            "energy.window_secs",
            format!("must be > 0 and <= {MAX_WINDOW_SECS} seconds, got {w}"),
        );
    } else if interval_ok && v.clean(&["energy.interval_secs"]) && w < 2.0 * e.interval_secs {
        v.report(
            "energy.window_secs",
            format!(
                "must be at least twice energy.interval_secs ({}), got {w}",
                e.interval_secs
            ),
        );
    }

    let named: Vec<&str> = [
        ("system.pid", s.pid != 0),
        ("system.pid_file", !s.pid_file.is_empty()),
        ("system.process_name", !s.process_name.is_empty()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    for later in named.iter().skip(1) {
        v.report(
            later,
            format!(
                "only one of system.pid, system.pid_file and system.process_name may be set ({} is set)",
                named[0]
            ),
        );
    }
    if !s.process_name.is_empty() && s.process_name.trim() != s.process_name {
        v.report(
            "system.process_name",
            format!(
                "has leading or trailing spaces ({:?}), process names are matched exactly",
                s.process_name
            ),
        );
    }
    v.check("system.interval_secs", interval_problem(s.interval_secs));
}
