//! GPU energy through NVML (`nvml-wrapper`, which loads `libnvidia-ml.so.1` at run time): per
//! GPU in scope, the total-energy counter (mJ since the driver loaded), power, utilization,
//! memory used, and the model server's share of the GPU where the driver reports per-process
//! utilization.
//!
//! Loading is lazy: nothing is loaded until the first read, and a host without the library or
//! driver gets "not available" (retried every [`RETRY`], quietly). Scope: `energy.nvml_devices`,
//! else `CUDA_VISIBLE_DEVICES`, else `NVIDIA_VISIBLE_DEVICES`, else every GPU; each entry an
//! index or a GPU UUID (or prefix). In a container the runtime already hides other GPUs and
//! renumbers the rest, so UUIDs are the safer way to name them.
//!
//! The energy counter updates coarsely (tens of ms up to about a second, depending on the GPU):
//! a reading whose counters have not moved while the GPUs draw power is marked not fresh, so the
//! attribution window never takes a 0 J interval for truth. GPUs without the counter (before
//! Volta) are integrated from power × time instead.

use std::time::{Duration, Instant};

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;
use prometheus::{CounterVec, GaugeVec, Opts, Registry};

use super::config::EnergyConfig;
use super::{EnergySource, Reading, SourceError};
use crate::metrics::{names, registered};
use crate::system::ModelServer;

pub const NAME: &str = "nvml";

/// How long after a failed load the library is tried again. Loading a missing library costs a
/// search of the linker path; once a minute is enough to notice a driver that came up late.
pub const RETRY: Duration = Duration::from_secs(60);

/// Below this a GPU is considered to draw nothing, so a still counter is not stale but true.
const STILL_WATTS: f64 = 1.0;

/// Which GPUs to read, as named in config or the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    /// Indices or UUID (prefixes).
    Listed(Vec<String>),
}

/// `energy.nvml_devices`, else `CUDA_VISIBLE_DEVICES`, else `NVIDIA_VISIBLE_DEVICES`, else all.
pub fn scope(configured: &[String], cuda: Option<&str>, nvidia: Option<&str>) -> Scope {
    if !configured.is_empty() {
        return Scope::Listed(configured.to_vec());
    }
    let list = |v: &str| -> Vec<String> {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    if let Some(v) = cuda {
        // Set but empty hides every GPU from CUDA, so there is nothing of ours to read.
        return Scope::Listed(list(v));
    }
    match nvidia.map(str::trim) {
        None | Some("all") => Scope::All,
        Some("none") | Some("void") | Some("") => Scope::Listed(Vec::new()),
        Some(v) => Scope::Listed(list(v)),
    }
}

/// Whether a scope entry names the GPU with this index and UUID.
pub fn matches(entry: &str, index: u32, uuid: &str) -> bool {
    if entry.bytes().all(|b| b.is_ascii_digit()) {
        entry.parse::<u32>().ok() == Some(index)
    } else {
        uuid.starts_with(entry)
    }
}

struct Gpu {
    index: u32,
    uuid: String,
    index_label: String,
    last_mj: Option<u64>,
    /// For GPUs without the energy counter: integrate power over time.
    integrate: bool,
    last_at: Option<Instant>,
    last_process_ts: Option<u64>,
}

struct Loaded {
    nvml: Nvml,
    gpus: Vec<Gpu>,
}

#[derive(Clone)]
struct GpuMetrics {
    energy: CounterVec,
    power: GaugeVec,
    utilization: GaugeVec,
    memory_used: GaugeVec,
    model_server_utilization: GaugeVec,
}

pub struct NvmlSource {
    scope: Scope,
    loaded: Option<Loaded>,
    next_try: Option<Instant>,
    last_error: Option<SourceError>,
    joules: f64,
    metrics: GpuMetrics,
    model_server: Option<ModelServer>,
}

impl NvmlSource {
    pub fn new(
        cfg: &EnergyConfig,
        registry: &Registry,
        model_server: Option<ModelServer>,
    ) -> prometheus::Result<Self> {
        let labels = &["gpu", "uuid"];
        let metrics = GpuMetrics {
            energy: registered(
                registry,
                CounterVec::new(
                    Opts::new(
                        names::GPU_ENERGY_JOULES_TOTAL,
                        "GPU energy since inferwatch started, from NVML's total-energy counter.",
                    ),
                    labels,
                )?,
            )?,
            power: registered(
                registry,
                GaugeVec::new(
                    Opts::new(names::GPU_POWER_WATTS, "GPU power draw as NVML reports it."),
                    labels,
                )?,
            )?,
            utilization: registered(
                registry,
                GaugeVec::new(
                    Opts::new(
                        names::GPU_UTILIZATION_RATIO,
                        "Fraction of NVML's last sample period in which a kernel ran on the GPU.",
                    ),
                    labels,
                )?,
            )?,
            memory_used: registered(
                registry,
                GaugeVec::new(
                    Opts::new(names::GPU_MEMORY_USED_BYTES, "GPU memory allocated."),
                    labels,
                )?,
            )?,
            model_server_utilization: registered(
                registry,
                GaugeVec::new(
                    Opts::new(
                        names::GPU_MODEL_SERVER_UTILIZATION_RATIO,
                        "SM utilization of the model server's processes on the GPU (where the driver reports per-process utilization).",
                    ),
                    labels,
                )?,
            )?,
        };
        let cuda = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        let nvidia = std::env::var("NVIDIA_VISIBLE_DEVICES").ok();
        Ok(Self {
            scope: scope(&cfg.nvml_devices, cuda.as_deref(), nvidia.as_deref()),
            loaded: None,
            next_try: None,
            last_error: None,
            joules: 0.0,
            metrics,
            model_server,
        })
    }

    fn load(&self) -> Result<Loaded, SourceError> {
        let nvml = Nvml::init().map_err(|e| match e {
            NvmlError::LibloadingError(_) | NvmlError::DriverNotLoaded => {
                SourceError::NotAvailable(format!(
                    "NVML not loaded ({e}): no NVIDIA driver on this host"
                ))
            }
            NvmlError::NoPermission => {
                SourceError::NotAvailable(format!("NVML: permission denied ({e})"))
            }
            other => SourceError::Failed(format!("NVML init: {other}")),
        })?;
        let count = nvml
            .device_count()
            .map_err(|e| SourceError::Failed(format!("NVML device count: {e}")))?;
        let mut gpus = Vec::new();
        let mut unmatched: Vec<String> = match &self.scope {
            Scope::All => Vec::new(),
            Scope::Listed(v) => v.clone(),
        };
        for index in 0..count {
            let device = nvml
                .device_by_index(index)
                .map_err(|e| SourceError::Failed(format!("NVML device {index}: {e}")))?;
            let uuid = device
                .uuid()
                .map_err(|e| SourceError::Failed(format!("NVML device {index} uuid: {e}")))?;
            let wanted = match &self.scope {
                Scope::All => true,
                Scope::Listed(v) => v.iter().any(|e| matches(e, index, &uuid)),
            };
            unmatched.retain(|e| !matches(e, index, &uuid));
            if wanted {
                let integrate = matches!(
                    device.total_energy_consumption(),
                    Err(NvmlError::NotSupported)
                );
                gpus.push(Gpu {
                    index,
                    index_label: index.to_string(),
                    uuid,
                    last_mj: None,
                    integrate,
                    last_at: None,
                    last_process_ts: None,
                });
            }
        }
        if !unmatched.is_empty() {
            tracing::warn!(devices = ?unmatched, "GPUs named for the nvml energy source not found");
        }
        if gpus.is_empty() {
            return Err(SourceError::NotAvailable(format!(
                "no GPU in scope ({count} visible to NVML, scope {:?})",
                self.scope
            )));
        }
        tracing::info!(
            gpus = ?gpus.iter().map(|g| g.uuid.as_str()).collect::<Vec<_>>(),
            "NVML loaded"
        );
        Ok(Loaded { nvml, gpus })
    }

    fn read_loaded(&mut self) -> Result<Reading, SourceError> {
        let Some(loaded) = self.loaded.as_mut() else {
            return Err(SourceError::NotAvailable("NVML not loaded".into()));
        };
        let pids: Vec<u32> = self
            .model_server
            .as_ref()
            .map(|m| m.get().pids)
            .unwrap_or_default();
        let mut stale = false;
        let mut total_delta = 0.0;
        for gpu in loaded.gpus.iter_mut() {
            let device = loaded
                .nvml
                .device_by_index(gpu.index)
                .map_err(|e| SourceError::Failed(format!("NVML device {}: {e}", gpu.index)))?;
            let labels = [gpu.index_label.as_str(), gpu.uuid.as_str()];
            let watts = device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0);
            if let Some(w) = watts {
                self.metrics.power.with_label_values(&labels).set(w);
            }
            let now = Instant::now();
            let delta = if gpu.integrate {
                let w = watts.ok_or_else(|| {
                    SourceError::Failed(format!("NVML device {}: no power reading", gpu.index))
                })?;
                let d = gpu.last_at.map_or(0.0, |t| w * (now - t).as_secs_f64());
                gpu.last_at = Some(now);
                d
            } else {
                let mj = device.total_energy_consumption().map_err(|e| {
                    SourceError::Failed(format!("NVML device {} energy: {e}", gpu.index))
                })?;
                let d = match gpu.last_mj {
                    // A lower value means the driver reloaded: a new baseline, nothing counted.
                    Some(last) if mj >= last => (mj - last) as f64 / 1000.0,
                    _ => 0.0,
                };
                if gpu.last_mj == Some(mj) && watts.is_some_and(|w| w > STILL_WATTS) {
                    stale = true;
                }
                gpu.last_mj = Some(mj);
                d
            };
            self.metrics.energy.with_label_values(&labels).inc_by(delta);
            total_delta += delta;
            if let Ok(u) = device.utilization_rates() {
                self.metrics
                    .utilization
                    .with_label_values(&labels)
                    .set(f64::from(u.gpu) / 100.0);
            }
            if let Ok(m) = device.memory_info() {
                self.metrics
                    .memory_used
                    .with_label_values(&labels)
                    .set(m.used as f64);
            }
            if !pids.is_empty() {
                // Samples since the last query, averaged per process, summed over the server's.
                if let Ok(samples) = device.process_utilization_stats(gpu.last_process_ts) {
                    let mut per_pid: std::collections::HashMap<u32, (u64, u64)> =
                        Default::default();
                    for s in &samples {
                        gpu.last_process_ts =
                            Some(gpu.last_process_ts.unwrap_or(0).max(s.timestamp));
                        if pids.contains(&s.pid) {
                            let e = per_pid.entry(s.pid).or_default();
                            e.0 += u64::from(s.sm_util);
                            e.1 += 1;
                        }
                    }
                    let util: f64 = per_pid
                        .values()
                        .map(|(sum, n)| *sum as f64 / *n as f64)
                        .sum();
                    self.metrics
                        .model_server_utilization
                        .with_label_values(&labels)
                        .set((util / 100.0).min(1.0));
                }
            }
        }
        self.joules += total_delta;
        Ok(Reading {
            joules: self.joules,
            fresh: !stale,
        })
    }
}

impl EnergySource for NvmlSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn read(&mut self) -> Result<Reading, SourceError> {
        if self.loaded.is_none() {
            if let Some(t) = self.next_try {
                if Instant::now() < t {
                    return Err(self
                        .last_error
                        .clone()
                        .unwrap_or_else(|| SourceError::NotAvailable("NVML not loaded".into())));
                }
            }
            match self.load() {
                Ok(l) => {
                    self.loaded = Some(l);
                    self.last_error = None;
                }
                Err(e) => {
                    self.next_try = Some(Instant::now() + RETRY);
                    self.last_error = Some(e.clone());
                    return Err(e);
                }
            }
        }
        let result = self.read_loaded();
        if result.is_err() {
            // A GPU fell off the bus or the driver went away: start again from loading.
            self.loaded = None;
            self.next_try = Some(Instant::now() + RETRY);
            self.last_error = result.as_ref().err().cloned();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_precedence() {
        let cfg = vec!["1".to_string()];
        assert_eq!(
            scope(&cfg, Some("0"), Some("all")),
            Scope::Listed(vec!["1".into()])
        );
        assert_eq!(
            scope(&[], Some("0, GPU-ab"), Some("all")),
            Scope::Listed(vec!["0".into(), "GPU-ab".into()])
        );
        assert_eq!(scope(&[], Some(""), None), Scope::Listed(vec![]));
        assert_eq!(scope(&[], None, Some("all")), Scope::All);
        assert_eq!(scope(&[], None, Some("none")), Scope::Listed(vec![]));
        assert_eq!(
            scope(&[], None, Some("GPU-1,GPU-2")),
            Scope::Listed(vec!["GPU-1".into(), "GPU-2".into()])
        );
        assert_eq!(scope(&[], None, None), Scope::All);
    }

    #[test]
    fn entries_match_index_or_uuid_prefix() {
        assert!(matches("0", 0, "GPU-8f6b"));
        assert!(!matches("1", 0, "GPU-8f6b"));
        assert!(matches("GPU-8f", 3, "GPU-8f6b"));
        assert!(!matches("GPU-9", 3, "GPU-8f6b"));
    }

    #[test]
    fn without_the_library_the_source_is_down_and_retries_quietly() {
        let registry = Registry::new();
        let mut s = NvmlSource::new(&EnergyConfig::default(), &registry, None).unwrap();
        let first = s.read();
        // This machine has no NVIDIA driver; on one that does, the read succeeds instead.
        if let Err(e) = &first {
            assert!(matches!(e, SourceError::NotAvailable(_)), "{e}");
            // Within RETRY the library is not tried again, the same error comes back.
            assert_eq!(s.read().err(), Some(e.clone()));
        }
    }
}
