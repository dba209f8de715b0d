//! inferwatch: a sidecar daemon and Prometheus exporter for ML inference services.
//!
//! Map of the modules (the data flow is in `../shared/DESIGN.md`). Each component owns its config
//! section in its own `config` module (type, defaults with their reasons, validation):
//! - [`config`]: the shared machinery only: file + env loading, the aggregate [`config::Config`],
//!   unknown-key suggestions, the error report with key paths, the `Validator` the components'
//!   rules report through, and the rules that span several sections.
//! - [`telemetry`]: tracing-subscriber set-up (json or text); `[log]`.
//! - [`metrics`]: the metric catalogue and the one `prometheus::Registry` passed down.
//! - [`latency`]: windowed quantile sketches and their confidence upper bounds; `[latency]`.
//! - [`proxy`]: the live path: listener, forwarding, limits, timeouts, error mapping, shutdown;
//!   `[proxy]`.
//! - [`routes`]: the route table and its quantile gauges; `[[proxy.routes]]` with the route
//!   entry's `[proxy.routes.prediction]` types.
//! - [`tap`]: the live side of inspection (bounded copies of exchanges); `[inspection]`.
//! - [`energy`]: energy sources (NVML, RAPL, a labelled estimate) and joules per inference;
//!   `[energy]`.
//! - [`system`]: the model server process's and the host's footprint (sysinfo); `[system]`.
//! - [`protocol`]: the inspector and protocol adapters, off the live path; the prediction rules'
//!   checks.
//! - [`quality`]: SPC charts, drift tests and the `spc` run-length analysis (silent-drift alarms);
//!   `[quality]`.
//! - [`bench`]: the load generator, QPS sweep and capacity reports (`bench`, `report`).
//! - [`client`]: talking to a model server off the live path: the probes' and shadows' HTTP
//!   client, answers read into predictions, answers compared.
//! - [`canary`]: golden-set probes against the upstream, cold start and first-after-idle latency;
//!   `[[canary]]`, `[accuracy]`, `[cold_start]`.
//! - [`shadow`]: sampled live requests replayed to HTTP or local ONNX targets and compared;
//!   `[shadow]`.
//! - [`demo`]: `inferwatch demo`: a model server, the sidecar, traffic and an injected drift.
//! - [`engine`]: the model server's own `/metrics` (vLLM, SGLang, TGI, Triton, llama.cpp,
//!   MLServer) scraped off the live path into one normalised saturation set; `[engine]`.
//! - [`feedback`]: ground-truth labels posted later, joined to recent predictions; `[feedback]`.
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz`, `/status` on a separate listener; `[admin]`.
//! - [`systemd`]: `sd_notify` (READY, WATCHDOG, STOPPING) without libsystemd.
//! - [`cli`]: what the subcommands share (exit codes, runtime); each one's flags live with its module.
//! - [`app`]: builds the running sidecar from a config, handing each component its own sections,
//!   and serves it until shutdown.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod bench;
pub mod canary;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod energy;
pub mod engine;
pub mod feedback;
pub mod latency;
pub mod metrics;
pub mod protocol;
pub mod proxy;
pub mod quality;
pub mod routes;
pub mod shadow;
pub mod system;
pub mod systemd;
pub mod tap;
pub mod telemetry;
