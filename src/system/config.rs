//! `[system]`: which process is the model server (by PID, PID file or name) and how often it and
//! the host are read; defaults with their reasons, and the rules on them.

use serde::{Deserialize, Serialize};

use crate::config::checks::sampling_interval;
use crate::config::validator::Validator;

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

/// One way of naming the model server process, no spaces around a name, and the interval.
pub fn validate(v: &mut Validator<'_>, s: &SystemConfig) {
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
    v.check("system.interval_secs", sampling_interval(s.interval_secs));
}
