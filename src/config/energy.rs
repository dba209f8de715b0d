//! `[energy]` and `[system]`: which energy sources run and how they are read, and which process
//! is the model server whose own footprint (CPU time, memory, threads) is reported.

use serde::{Deserialize, Serialize};
use std::fmt;

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

/// `[system]`: the model server process (by PID, PID file or name) and the host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SystemConfig {
    /// The model server's PID; 0 = not set.
    pub pid: u32,
    /// A file holding the model server's PID, read again each interval (restarts change it).
    pub pid_file: String,
    /// The model server's process name (as in `/proc/PID/comm`, or its executable's file name);
    /// in a pod this needs `shareProcessNamespace: true`.
    pub process_name: String,
    /// Count the model server's child processes (workers) with it.
    pub include_children: bool,
    /// How often the process and the host are read.
    pub interval_secs: f64,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            pid: 0,
            pid_file: String::new(),
            process_name: String::new(),
            // Model servers fork workers (MLServer, TorchServe, gunicorn); the parent alone
            // would miss most of the work.
            include_children: true,
            // Process CPU time is cumulative, so a coarse interval loses nothing but resolution;
            // 5 s keeps the walk over /proc cheap.
            interval_secs: 5.0,
        }
    }
}

impl SystemConfig {
    /// Whether a model server process is named at all (the system sampler is off otherwise).
    pub fn names_a_process(&self) -> bool {
        self.pid != 0 || !self.pid_file.is_empty() || !self.process_name.is_empty()
    }
}
