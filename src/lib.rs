//! inferwatch: a sidecar daemon and Prometheus exporter for ML inference services.
//!
//! Map of the modules (the data flow is in `../shared/DESIGN.md`):
//! - [`config`]: typed config, file + env, validation that reports every error with its key path.
//! - [`telemetry`]: tracing-subscriber set-up (json or text).
//! - [`metrics`]: the metric catalogue and the one `prometheus::Registry` passed down.
//! - [`latency`]: windowed quantile sketches and their confidence upper bounds.
//! - [`proxy`]: the live path: listener, forwarding, limits, timeouts, error mapping, shutdown.
//! - [`energy`]: energy sources (NVML, RAPL, a labelled estimate) and joules per inference.
//! - [`system`]: the model server process's and the host's footprint (sysinfo).
//! - [`protocol`]: the tap (copies of tapped exchanges, off the live path) and protocol adapters.
//! - [`quality`]: SPC charts, drift tests and the `spc` run-length analysis (silent-drift alarms).
//! - [`bench`]: the load generator, QPS sweep and capacity reports (`bench`, `report`).
//! - [`canary`]: golden-set probes against the upstream, cold start and first-after-idle latency.
//! - [`shadow`]: sampled live requests replayed to HTTP or local ONNX targets and compared.
//! - [`demo`]: `inferwatch demo`: a model server, the sidecar, traffic and an injected drift.
//! - [`feedback`]: ground-truth labels posted later, joined to recent predictions.
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz`, `/status` on a separate listener.
//! - [`systemd`]: `sd_notify` (READY, WATCHDOG, STOPPING) without libsystemd.
//! - [`cli`]: what the subcommands share (exit codes, runtime); each one's flags live with its module.
//! - [`app`]: builds the running sidecar from a config and serves it until shutdown.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod bench;
pub mod canary;
pub mod cli;
pub mod config;
pub mod demo;
pub mod energy;
pub mod feedback;
pub mod latency;
pub mod metrics;
pub mod protocol;
pub mod proxy;
pub mod quality;
pub mod shadow;
pub mod system;
pub mod systemd;
pub mod telemetry;
