//! `[energy]`: which energy sources run and how they are read, the sampling interval and the
//! attribution window, each default with its reason, and the rules on them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::checks::sampling_interval;
use crate::config::validator::Validator;

/// Longest attribution window (one day): longer windows blur everything they are meant to show.
const MAX_WINDOW_SECS: f64 = 86_400.0;
/// Largest power figure accepted anywhere (100 kW: a full rack).
const MAX_WATTS: f64 = 100_000.0;

/// Whether an energy source runs: `auto` (use it where this host has it, quietly skip it where
/// not), `on` (the operator expects it: a missing source is logged as a warning) or `off`.
/// `true` and `false` are accepted for `on` and `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceMode {
    #[default]
    Auto,
    On,
    Off,
}

impl SourceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceMode::Auto => "auto",
            SourceMode::On => "on",
            SourceMode::Off => "off",
        }
    }
}

impl Serialize for SourceMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SourceMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SourceMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\", \"on\", \"off\" or a boolean")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<SourceMode, E> {
                Ok(if v { SourceMode::On } else { SourceMode::Off })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SourceMode, E> {
                match v {
                    "auto" => Ok(SourceMode::Auto),
                    "on" | "true" => Ok(SourceMode::On),
                    "off" | "false" => Ok(SourceMode::Off),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `[energy]`: energy sources, the sampling interval and the attribution window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EnergyConfig {
    /// GPU energy through NVML (libnvidia-ml.so.1, loaded at run time).
    pub nvml: SourceMode,
    /// GPUs to read, each an index (`"0"`) or a UUID (`"GPU-8f6b..."`, a prefix is enough).
    /// Empty: the devices in `CUDA_VISIBLE_DEVICES`, else `NVIDIA_VISIBLE_DEVICES`, else all.
    pub nvml_devices: Vec<String>,
    /// GPU idle power for `kind="dynamic"`, in watts. Unset: measured while there is no traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvml_idle_watts: Option<f64>,
    /// CPU package energy through Linux powercap (RAPL).
    pub rapl: SourceMode,
    /// The powercap directory; tests point it at a fixture tree.
    pub rapl_root: String,
    /// CPU idle power for `kind="dynamic"`, in watts. Unset: measured while there is no traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rapl_idle_watts: Option<f64>,
    /// Estimate from the model server's CPU time × `watts_per_core`. `auto`: only when no
    /// measured source (nvml, rapl) is up and a model server process is named in `[system]`.
    pub estimate: SourceMode,
    /// Watts one fully busy core draws, for the estimate.
    pub watts_per_core: f64,
    /// If > 0, the estimate uses `tdp_watts / logical CPUs` instead of `watts_per_core`.
    pub tdp_watts: f64,
    /// Idle power charged against the estimate for `kind="dynamic"`. Unset: measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate_idle_watts: Option<f64>,
    /// How often the sources are read.
    pub interval_secs: f64,
    /// Sliding window over which joules per inference are computed.
    pub window_secs: f64,
}

impl Default for EnergyConfig {
    fn default() -> Self {
        Self {
            // Auto-detected: a GPU box reports GPU energy, a box without one stays quiet.
            nvml: SourceMode::Auto,
            nvml_devices: Vec::new(),
            nvml_idle_watts: None,
            rapl: SourceMode::Auto,
            rapl_root: "/sys/class/powercap".to_string(),
            rapl_idle_watts: None,
            estimate: SourceMode::Auto,
            // Close to the 3.5-4.3 W per busy vCPU that the Cloud Carbon Footprint methodology
            // uses for the big clouds' server fleets.
            watts_per_core: 4.0,
            tdp_watts: 0.0,
            estimate_idle_watts: None,
            // A few file reads and NVML calls per second cost nothing measurable, RAPL counters
            // can wrap within minutes at full power, and 1 s keeps the window fine-grained.
            interval_secs: 1.0,
            // The same minute as the latency quantiles' short window, so the two line up.
            window_secs: 60.0,
        }
    }
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

/// Devices, idle powers, the powercap root, the estimate's figures, the interval and the window.
/// (That `estimate = "on"` needs a model server process in `[system]` is a rule across sections,
/// in `config`.)
pub fn validate(v: &mut Validator<'_>, e: &EnergyConfig) {
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
    let interval = sampling_interval(e.interval_secs);
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
}
