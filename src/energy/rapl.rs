//! CPU energy from Linux powercap (RAPL): `<rapl_root>/intel-rapl:N/energy_uj` per package and
//! `intel-rapl:N:M` sub-zones (core, uncore, dram), with wrap-around at `max_energy_range_uj`.
//!
//! The source's energy is the sum over top-level zones, except `psys` (the whole platform, which
//! already contains the packages) when any other top-level zone exists; sub-zones are parts of
//! their package and are only exported per zone. In sysfs the zones appear both flat under
//! `/sys/class/powercap` (symlinks) and nested under their package; both layouts are read.
//! Since Linux 5.10 `energy_uj` is readable by root only: permission denied is "not available",
//! not a crash.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use prometheus::{CounterVec, Opts, Registry};

use super::{EnergySource, Reading, SourceError};
use crate::metrics::{names, registered};

pub const NAME: &str = "rapl";

/// One powercap zone.
#[derive(Debug)]
struct Zone {
    /// `package-0`, `package-0/dram`.
    label: String,
    energy_path: PathBuf,
    /// The counter's range in µJ; it wraps to 0 past it. 0 = unknown (no wrap correction).
    max_range_uj: u64,
    /// Counted in the source's total (top-level, and not a `psys` that overlaps packages).
    counted: bool,
    last_uj: Option<u64>,
}

pub struct RaplSource {
    root: PathBuf,
    zones: Vec<Zone>,
    /// Joules since the first reading (sum of counted zones' deltas).
    joules: f64,
    counter: CounterVec,
}

impl RaplSource {
    pub fn new(root: &str, registry: &Registry) -> prometheus::Result<Self> {
        let counter = registered(
            registry,
            CounterVec::new(
                Opts::new(
                    names::CPU_ENERGY_JOULES_TOTAL,
                    "CPU energy per RAPL zone (package, and its core/uncore/dram sub-zones) since inferwatch started.",
                ),
                &["zone"],
            )?,
        )?;
        Ok(Self {
            root: PathBuf::from(root),
            zones: Vec::new(),
            joules: 0.0,
            counter,
        })
    }

    /// Finds the zones under the root; errors say why there are none.
    fn discover(&self) -> Result<Vec<Zone>, SourceError> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| {
            SourceError::NotAvailable(format!("cannot list {}: {e}", self.root.display()))
        })?;
        // Top-level zone ids `intel-rapl:N` and every directory they can be found in.
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| zone_depth(n) == Some(1))
            .collect();
        ids.sort_by_key(|n| zone_numbers(n));
        if ids.is_empty() {
            return Err(SourceError::NotAvailable(format!(
                "no intel-rapl zones under {}",
                self.root.display()
            )));
        }
        let mut zones = Vec::new();
        for id in &ids {
            let dir = self.root.join(id);
            let name = read_name(&dir, id);
            zones.push(zone(&dir, name.clone())?);
            // Sub-zones: nested in the package directory (the real sysfs layout, which the flat
            // symlinks also point into).
            let mut subs: Vec<String> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| zone_depth(n) == Some(2) && n.starts_with(&format!("{id}:")))
                        .collect()
                })
                .unwrap_or_default();
            subs.sort_by_key(|n| zone_numbers(n));
            for sub in subs {
                let sdir = dir.join(&sub);
                let sname = read_name(&sdir, &sub);
                let mut z = zone(&sdir, format!("{name}/{sname}"))?;
                z.counted = false;
                zones.push(z);
            }
        }
        let others = zones
            .iter()
            .any(|z| z.counted && !z.label.starts_with("psys"));
        for z in zones.iter_mut() {
            if z.counted && others && z.label.starts_with("psys") {
                z.counted = false;
            }
        }
        // Two packages with the same name would merge into one series: keep them apart.
        let labels: Vec<String> = zones.iter().map(|z| z.label.clone()).collect();
        for (i, z) in zones.iter_mut().enumerate() {
            if labels[..i].contains(&z.label) {
                z.label = format!("{}#{i}", z.label);
            }
        }
        Ok(zones)
    }
}

/// `intel-rapl:0` → 1, `intel-rapl:0:1` → 2, anything else → None.
fn zone_depth(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("intel-rapl:")?;
    let parts: Vec<&str> = rest.split(':').collect();
    parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .then_some(parts.len())
}

/// Numeric sort key, so that `intel-rapl:10` comes after `intel-rapl:2`.
fn zone_numbers(name: &str) -> Vec<u64> {
    name.trim_start_matches("intel-rapl:")
        .split(':')
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn read_name(dir: &Path, fallback: &str) -> String {
    std::fs::read_to_string(dir.join("name"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}

fn zone(dir: &Path, label: String) -> Result<Zone, SourceError> {
    let max_range_uj = match std::fs::read_to_string(dir.join("max_energy_range_uj")) {
        Ok(text) => parse_uj(&text, &dir.join("max_energy_range_uj"))?,
        Err(e) if e.kind() == ErrorKind::NotFound => 0,
        Err(e) => return Err(io_error(&dir.join("max_energy_range_uj"), e)),
    };
    Ok(Zone {
        label,
        energy_path: dir.join("energy_uj"),
        max_range_uj,
        counted: true,
        last_uj: None,
    })
}

fn io_error(path: &Path, e: std::io::Error) -> SourceError {
    match e.kind() {
        // Root-only since Linux 5.10 (CVE-2020-8694): the normal state for an unprivileged pod.
        ErrorKind::PermissionDenied => {
            SourceError::NotAvailable(format!("{}: permission denied", path.display()))
        }
        ErrorKind::NotFound => SourceError::NotAvailable(format!("{}: not found", path.display())),
        _ => SourceError::Failed(format!("{}: {e}", path.display())),
    }
}

fn parse_uj(text: &str, path: &Path) -> Result<u64, SourceError> {
    text.trim().parse().map_err(|_| {
        SourceError::Failed(format!(
            "{}: not a number of microjoules: {:?}",
            path.display(),
            text.trim()
        ))
    })
}

/// Energy between two counter values in µJ, across one wrap at `max_range_uj`.
pub fn delta_uj(last: u64, now: u64, max_range_uj: u64) -> u64 {
    if now >= last {
        now - last
    } else if max_range_uj >= last {
        max_range_uj - last + now
    } else {
        // A counter beyond its stated range, then lower: a reset (driver reload), not a wrap;
        // what was spent since is unknown, so count nothing rather than invent.
        0
    }
}

impl EnergySource for RaplSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn read(&mut self) -> Result<Reading, SourceError> {
        if self.zones.is_empty() {
            self.zones = self.discover()?;
        }
        // Read every zone first: a failure anywhere leaves every baseline as it was, and the
        // zones are found again next time (a hot-plugged or re-permissioned tree).
        let mut values = Vec::with_capacity(self.zones.len());
        for z in &self.zones {
            let text = match std::fs::read_to_string(&z.energy_path) {
                Ok(t) => t,
                Err(e) => {
                    let err = io_error(&z.energy_path, e);
                    self.zones.clear();
                    return Err(err);
                }
            };
            match parse_uj(&text, &z.energy_path) {
                Ok(v) => values.push(v),
                Err(err) => {
                    self.zones.clear();
                    return Err(err);
                }
            }
        }
        for (z, now) in self.zones.iter_mut().zip(values) {
            if let Some(last) = z.last_uj {
                let joules = delta_uj(last, now, z.max_range_uj) as f64 / 1e6;
                if joules > 0.0 {
                    self.counter.with_label_values(&[&z.label]).inc_by(joules);
                }
                if z.counted {
                    self.joules += joules;
                }
            } else {
                // First sight: the series starts at 0.
                self.counter.with_label_values(&[&z.label]);
            }
            z.last_uj = Some(now);
        }
        Ok(Reading {
            joules: self.joules,
            fresh: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_and_wrap() {
        assert_eq!(delta_uj(100, 250, 1000), 150);
        assert_eq!(delta_uj(900, 50, 1000), 150);
        assert_eq!(delta_uj(5, 5, 1000), 0);
        // Unknown range (0) and a lower value: a reset, nothing counted.
        assert_eq!(delta_uj(900, 50, 0), 0);
    }

    #[test]
    fn zone_names() {
        assert_eq!(zone_depth("intel-rapl:0"), Some(1));
        assert_eq!(zone_depth("intel-rapl:1:2"), Some(2));
        assert_eq!(zone_depth("intel-rapl"), None);
        assert_eq!(zone_depth("intel-rapl-mmio:0"), None);
        assert_eq!(zone_depth("intel-rapl:x"), None);
        assert!(zone_numbers("intel-rapl:10") > zone_numbers("intel-rapl:2"));
    }
}
