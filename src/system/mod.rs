//! The model server's own footprint and the host's, through `sysinfo`: the process found by
//! PID, PID file or name (in a pod with `shareProcessNamespace: true`), with its children
//! (workers) if asked, gives CPU seconds, resident memory and threads; the host gives CPU
//! utilization and memory. Sampled on its own interval on the blocking pool, off the live path.
//!
//! The process set found here is shared ([`ModelServer`]) with the energy sources: NVML reports
//! the GPU utilization of these PIDs, and the estimate source turns their CPU time into joules.

pub mod config;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{Counter, Gauge, Opts, Registry};
use sysinfo::{
    CpuRefreshKind, MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System,
    UpdateKind,
};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::metrics::{names, registered};
use config::SystemConfig;

/// What the last system sample found of the model server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessFigures {
    /// Whether any process matched.
    pub found: bool,
    /// The matched PIDs (the process and, if configured, its descendants).
    pub pids: Vec<u32>,
    /// CPU seconds (user + system) of the set, cumulative since inferwatch first saw it.
    pub cpu_seconds: f64,
    /// Bumped on every sample, so readers can tell a new figure from an old one.
    pub seq: u64,
}

/// The model server as the system sampler last saw it; cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct ModelServer(Arc<Mutex<ProcessFigures>>);

impl ModelServer {
    pub fn get(&self) -> ProcessFigures {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }

    fn set(&self, figures: ProcessFigures) {
        if let Ok(mut g) = self.0.lock() {
            *g = figures;
        }
    }
}

struct SystemMetrics {
    up: Gauge,
    processes: Gauge,
    cpu_seconds: Counter,
    memory: Gauge,
    threads: Gauge,
    host_cpu: Gauge,
    host_memory_used: Gauge,
    host_memory_total: Gauge,
}

impl SystemMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let g = |name: &str, help: &str| {
            Gauge::with_opts(Opts::new(name, help)).and_then(|g| registered(registry, g))
        };
        let m = Self {
            up: g(
                names::MODEL_SERVER_UP,
                "1 if the model server process named in [system] was found on the last sample.",
            )?,
            processes: g(
                names::MODEL_SERVER_PROCESSES,
                "Processes counted as the model server (the process and, if configured, its children).",
            )?,
            cpu_seconds: registered(
                registry,
                Counter::with_opts(Opts::new(
                    names::MODEL_SERVER_CPU_SECONDS_TOTAL,
                    "User + system CPU seconds of the model server's processes.",
                ))?,
            )?,
            memory: g(
                names::MODEL_SERVER_RESIDENT_MEMORY_BYTES,
                "Resident memory of the model server's processes.",
            )?,
            threads: g(
                names::MODEL_SERVER_THREADS,
                "Threads of the model server's processes.",
            )?,
            host_cpu: g(
                names::HOST_CPU_UTILIZATION_RATIO,
                "Host CPU utilization over the last sampling interval, 0 to 1.",
            )?,
            host_memory_used: g(names::HOST_MEMORY_USED_BYTES, "Host memory in use.")?,
            host_memory_total: g(names::HOST_MEMORY_TOTAL_BYTES, "Host memory installed.")?,
        };
        Ok(m)
    }
}

/// Samples the model server process and the host each interval.
pub struct SystemSampler {
    cfg: SystemConfig,
    sys: Option<System>,
    metrics: SystemMetrics,
    share: ModelServer,
    /// Per PID: (start time, CPU ms at the last sample), to add only new CPU time.
    seen: HashMap<u32, (u64, u64)>,
    cpu_seconds: f64,
    seq: u64,
    /// Wall-clock seconds of the previous sample: processes started after it count in full.
    last_sample_epoch: Option<u64>,
    /// Why the process was not found last time (logged once per change).
    last_miss: Option<String>,
}

impl SystemSampler {
    /// `None` unless `[system]` names a process.
    pub fn build(
        cfg: &SystemConfig,
        registry: &Registry,
        share: ModelServer,
    ) -> prometheus::Result<Option<Self>> {
        if !cfg.names_a_process() {
            return Ok(None);
        }
        Ok(Some(Self {
            cfg: cfg.clone(),
            sys: None,
            metrics: SystemMetrics::register(registry)?,
            share,
            seen: HashMap::new(),
            cpu_seconds: 0.0,
            seq: 0,
            last_sample_epoch: None,
            last_miss: None,
        }))
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.cfg.interval_secs)
    }

    /// Samples every interval until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.interval());
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut me = Some(self);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let Some(mut s) = me.take() else { return };
            match tokio::task::spawn_blocking(move || {
                s.sample();
                s
            })
            .await
            {
                Ok(s) => me = Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "system sampler stopped");
                    return;
                }
            }
        }
    }

    /// One sample (blocking: walks /proc).
    pub fn sample(&mut self) {
        let sys = match &mut self.sys {
            Some(s) => s,
            None => match System::new() {
                Ok(s) => self.sys.insert(s),
                Err(e) => {
                    self.miss(format!("cannot read system information: {e}"));
                    return;
                }
            },
        };
        sys.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage());
        sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_exe(UpdateKind::OnlyIfNotSet)
                .with_tasks(),
        );
        // The first CPU reading has no previous one to compare with; sysinfo reports 0 then.
        if self.last_sample_epoch.is_some() {
            self.metrics
                .host_cpu
                .set(f64::from(sys.global_cpu_usage()) / 100.0);
        }
        self.metrics.host_memory_used.set(sys.used_memory() as f64);
        self.metrics
            .host_memory_total
            .set(sys.total_memory() as f64);

        let pids = match find(sys, &self.cfg) {
            Ok(p) => p,
            Err(why) => {
                self.miss(why);
                return;
            }
        };
        if self.last_miss.take().is_some() || self.seq == 0 {
            tracing::info!(pids = ?pids, "model server process found");
        }
        let mut cpu_ms_new = 0u64;
        let mut memory = 0u64;
        let mut threads = 0usize;
        let mut seen = HashMap::new();
        for &pid in &pids {
            let Some(p) = sys.process(Pid::from_u32(pid)) else {
                continue;
            };
            let cpu = p.accumulated_cpu_time();
            let start = p.start_time();
            let added = match self.seen.get(&pid) {
                Some(&(s, last)) if s == start => cpu.saturating_sub(last),
                // A process that started since the last sample ran entirely inside it.
                _ if self.last_sample_epoch.is_none_or(|t| start >= t) => cpu,
                // One that was already running when it joined the set: baseline only.
                _ => 0,
            };
            cpu_ms_new += added;
            seen.insert(pid, (start, cpu));
            memory += p.memory();
            threads += p.tasks().map_or(1, |t| t.len().max(1));
        }
        self.seen = seen;
        let added = cpu_ms_new as f64 / 1000.0;
        self.cpu_seconds += added;
        self.metrics.cpu_seconds.inc_by(added);
        self.metrics.up.set(1.0);
        self.metrics.processes.set(pids.len() as f64);
        self.metrics.memory.set(memory as f64);
        self.metrics.threads.set(threads as f64);
        self.last_sample_epoch = Some(now_epoch());
        self.seq += 1;
        self.share.set(ProcessFigures {
            found: true,
            pids,
            cpu_seconds: self.cpu_seconds,
            seq: self.seq,
        });
    }

    fn miss(&mut self, why: String) {
        if self.last_miss.as_deref() != Some(why.as_str()) {
            tracing::warn!(reason = %why, "model server process not found");
        }
        self.last_miss = Some(why);
        self.metrics.up.set(0.0);
        self.metrics.processes.set(0.0);
        self.metrics.memory.set(0.0);
        self.metrics.threads.set(0.0);
        self.seen.clear();
        self.seq += 1;
        self.share.set(ProcessFigures {
            found: false,
            pids: Vec::new(),
            cpu_seconds: self.cpu_seconds,
            seq: self.seq,
        });
    }
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The configured process and (if asked) its descendants, sorted; an error says why none.
fn find(sys: &System, cfg: &SystemConfig) -> Result<Vec<u32>, String> {
    // Threads are listed as processes on Linux; only real processes count.
    let is_process = |p: &sysinfo::Process| p.thread_kind().is_none();
    let roots: Vec<u32> = if cfg.pid != 0 {
        vec![cfg.pid]
    } else if !cfg.pid_file.is_empty() {
        let text = std::fs::read_to_string(&cfg.pid_file)
            .map_err(|e| format!("cannot read pid file {}: {e}", cfg.pid_file))?;
        let pid: u32 = text
            .trim()
            .parse()
            .map_err(|_| format!("pid file {} holds no pid: {:?}", cfg.pid_file, text.trim()))?;
        vec![pid]
    } else {
        let wanted = cfg.process_name.as_str();
        // /proc/PID/comm keeps only 15 bytes of the name.
        let comm: String = wanted.chars().take(15).collect();
        let mut v: Vec<u32> = sys
            .processes()
            .values()
            .filter(|p| is_process(p))
            .filter(|p| {
                p.name() == wanted
                    || (wanted.len() > 15 && p.name().to_string_lossy() == comm)
                    || p.exe()
                        .and_then(|e| e.file_name())
                        .is_some_and(|n| n == wanted)
            })
            .map(|p| p.pid().as_u32())
            .collect();
        v.sort_unstable();
        v
    };
    let roots: Vec<u32> = roots
        .into_iter()
        .filter(|pid| sys.process(Pid::from_u32(*pid)).is_some_and(is_process))
        .collect();
    if roots.is_empty() {
        return Err(if cfg.pid != 0 {
            format!("no process with pid {}", cfg.pid)
        } else if !cfg.pid_file.is_empty() {
            format!("the pid in {} is not running", cfg.pid_file)
        } else {
            format!("no process named {:?}", cfg.process_name)
        });
    }
    let mut set: HashSet<u32> = roots.iter().copied().collect();
    if cfg.include_children {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for p in sys.processes().values().filter(|p| is_process(p)) {
            if let Some(parent) = p.parent() {
                children
                    .entry(parent.as_u32())
                    .or_default()
                    .push(p.pid().as_u32());
            }
        }
        let mut todo = roots.clone();
        while let Some(pid) = todo.pop() {
            for &c in children.get(&pid).into_iter().flatten() {
                if set.insert(c) {
                    todo.push(c);
                }
            }
        }
    }
    let mut pids: Vec<u32> = set.into_iter().collect();
    pids.sort_unstable();
    Ok(pids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(cfg: SystemConfig) -> (SystemSampler, Registry, ModelServer) {
        let registry = Registry::new();
        let share = ModelServer::default();
        let s = SystemSampler::build(&cfg, &registry, share.clone())
            .unwrap()
            .expect("a process is named");
        (s, registry, share)
    }

    fn value(registry: &Registry, name: &str) -> f64 {
        let fam = registry
            .gather()
            .into_iter()
            .find(|f| f.name() == name)
            .unwrap_or_else(|| panic!("{name} not registered"));
        let m = &fam.get_metric()[0];
        if name.ends_with("_total") {
            m.get_counter().get_value()
        } else {
            m.get_gauge().get_value()
        }
    }

    #[test]
    fn off_unless_a_process_is_named() {
        let registry = Registry::new();
        let s = SystemSampler::build(&SystemConfig::default(), &registry, ModelServer::default())
            .unwrap();
        assert!(s.is_none());
        assert!(registry.gather().is_empty());
    }

    #[test]
    fn finds_this_test_process_by_pid_and_counts_its_cpu_time() {
        let me = std::process::id();
        let (mut s, registry, share) = sampler(SystemConfig {
            pid: me,
            include_children: false,
            ..SystemConfig::default()
        });
        s.sample();
        // Burn some CPU so the second sample has something to add.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        s.sample();
        let figures = share.get();
        assert!(figures.found);
        assert_eq!(figures.pids, vec![me]);
        assert_eq!(figures.seq, 2);
        assert!(figures.cpu_seconds >= 0.2, "{figures:?}");
        assert_eq!(value(&registry, names::MODEL_SERVER_UP), 1.0);
        assert_eq!(value(&registry, names::MODEL_SERVER_PROCESSES), 1.0);
        assert!(value(&registry, names::MODEL_SERVER_RESIDENT_MEMORY_BYTES) > 1e6);
        assert!(value(&registry, names::MODEL_SERVER_THREADS) >= 1.0);
        assert!(value(&registry, names::MODEL_SERVER_CPU_SECONDS_TOTAL) >= 0.2);
        assert!(value(&registry, names::HOST_MEMORY_TOTAL_BYTES) > 0.0);
    }

    #[test]
    fn finds_by_pid_file_and_reports_a_missing_process() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.pid");
        std::fs::write(&file, format!("{}\n", std::process::id())).unwrap();
        let (mut s, registry, share) = sampler(SystemConfig {
            pid_file: file.display().to_string(),
            ..SystemConfig::default()
        });
        s.sample();
        assert!(share.get().pids.contains(&std::process::id()));
        std::fs::write(&file, "not a pid").unwrap();
        s.sample();
        assert!(!share.get().found);
        assert_eq!(value(&registry, names::MODEL_SERVER_UP), 0.0);
    }

    #[test]
    fn finds_by_name_with_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let (mut s, _registry, share) = sampler(SystemConfig {
            process_name: "sleep".into(),
            ..SystemConfig::default()
        });
        s.sample();
        let found = share.get();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found.pids.contains(&child.id()), "{found:?}");
        // By PID with children: this process's child counts with it.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let (mut s, _registry, share) = sampler(SystemConfig {
            pid: std::process::id(),
            ..SystemConfig::default()
        });
        s.sample();
        let found = share.get();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found.pids.contains(&child.id()), "{found:?}");
        assert!(found.pids.contains(&std::process::id()), "{found:?}");
    }
}
