//! An estimate, not a measurement: the model server's CPU seconds (from the system sampler) ×
//! a configured watts per busy core (or a TDP share). Everything it feeds carries
//! `source="estimate"`, so no dashboard can mistake it for a meter. Under `auto` it runs only
//! while no measured source (nvml, rapl) is up; GPU work done by the process is invisible to it.

use super::config::EnergyConfig;
use super::{EnergySource, Reading, SourceError};
use crate::system::ModelServer;

pub const NAME: &str = "estimate";

pub struct EstimateSource {
    model_server: Option<ModelServer>,
    watts_per_core: f64,
    last_seq: Option<u64>,
}

impl EstimateSource {
    pub fn new(cfg: &EnergyConfig, model_server: Option<ModelServer>) -> Self {
        Self {
            model_server,
            watts_per_core: watts_per_core(cfg),
            last_seq: None,
        }
    }

    pub fn watts_per_core(&self) -> f64 {
        self.watts_per_core
    }
}

/// `tdp_watts / logical CPUs` when a TDP is configured, else `watts_per_core`.
pub fn watts_per_core(cfg: &EnergyConfig) -> f64 {
    if cfg.tdp_watts > 0.0 {
        // The host's CPUs, not the container's quota: TDP is a property of the sockets.
        let cpus = sysinfo::System::new_with_specifics(
            sysinfo::RefreshKind::nothing().with_cpu(sysinfo::CpuRefreshKind::nothing()),
        )
        .map(|s| s.cpus().len())
        .unwrap_or(0)
        .max(1);
        cfg.tdp_watts / cpus as f64
    } else {
        cfg.watts_per_core
    }
}

impl EnergySource for EstimateSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn read(&mut self) -> Result<Reading, SourceError> {
        let Some(ms) = &self.model_server else {
            return Err(SourceError::NotAvailable(
                "no model server process named in [system] (pid, pid_file or process_name)".into(),
            ));
        };
        let figures = ms.get();
        if figures.seq == 0 {
            return Err(SourceError::NotAvailable(
                "the model server process has not been sampled yet".into(),
            ));
        }
        if !figures.found {
            return Err(SourceError::NotAvailable(
                "the model server process is not running".into(),
            ));
        }
        // The CPU figure changes once per system interval; in between it is not new.
        let fresh = self.last_seq != Some(figures.seq);
        self.last_seq = Some(figures.seq);
        Ok(Reading {
            joules: figures.cpu_seconds * self.watts_per_core,
            fresh,
        })
    }
}
