//! `inferwatch demo`: the whole story in one process. A model server on loopback (the iris
//! classifier through ONNX Runtime, KServe V2), the real sidecar in front of it (latency,
//! inspection, a canary golden set, an ONNX shadow, SPC charts, a drift test, energy), Poisson
//! traffic through the proxy, and after `--drift-after` an injected drift — the inputs shift and
//! the model server starts answering from a worse model — so the alarms can be watched firing.
//!
//! - `cli`: the `demo` subcommand's flags and body.
//! - `iris`: the embedded data set and models, request rows, the input shift.
//! - `server`: the KServe V2 model server.
//! - `config`: the sidecar's config, built in code and validated like a file.
//! - `traffic`: the clients.
//! - `summary`: figures read back from the sidecar's `/metrics`, rendered for a terminal or a log.

pub mod cli;
pub mod config;
pub mod iris;
pub mod server;
pub mod summary;
pub mod traffic;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::app::{self, App, AppError};
use crate::bench::scrape;
use crate::client;
use crate::shadow::onnx::{self, OnnxError};

use self::iris::{Row, CLASSES, MODEL_NAME};

/// `inferwatch demo`'s options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// End after this long (exit 0); `None`: until Ctrl-C or SIGTERM.
    pub duration: Option<Duration>,
    /// When the drift is injected.
    pub drift_after: Duration,
    /// Mean request rate of the traffic generator.
    pub qps: f64,
    /// The sidecar's proxy and admin listeners.
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// `libonnxruntime.so.<version>`; `None`: `ORT_DYLIB_PATH`, then the search path.
    pub onnx_library: Option<PathBuf>,
}

/// Golden rows per class: 30 requests a round keep the canary well under the traffic's rate
/// while still holding a few rows the bad rollout answers wrong.
const GOLDEN_PER_CLASS: usize = 10;
/// Plain-line mode: one line this often (and at once when the drift comes or alarms change).
const LINE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Usage(String),
    #[error("ONNX Runtime: {0}\n  The demo runs its iris model (and the ONNX shadow) through ONNX Runtime, loaded at run time.\n  Point --onnx-library PATH or the ORT_DYLIB_PATH environment variable at libonnxruntime.so.<version>,\n  or run scripts/demo.sh, which installs it (scripts/install-peers.sh --demo) and sets ORT_DYLIB_PATH.")]
    OnnxLibrary(String),
    #[error("demo model server: {0}")]
    Model(String),
    #[error("the demo's own config is invalid (a bug): {0}")]
    Config(String),
    #[error("{0}{hint}", hint = bind_hint(.0))]
    App(#[from] AppError),
    #[error("demo files in {path}: {source}")]
    Files {
        path: String,
        source: std::io::Error,
    },
}

fn bind_hint(e: &AppError) -> &'static str {
    match e {
        AppError::Bind { .. } => " (choose other ports with --listen and --admin)",
        _ => "",
    }
}

impl DemoOptions {
    fn validate(&self) -> Result<(), DemoError> {
        if !(self.qps.is_finite() && self.qps > 0.0 && self.qps <= 10_000.0) {
            return Err(DemoError::Usage(format!(
                "--qps must be in (0, 10000], got {}",
                self.qps
            )));
        }
        // The charts learn their baselines in the first 60% of the delay: below 2 s there is
        // no time to learn anything.
        if self.drift_after < Duration::from_secs(2) {
            return Err(DemoError::Usage(format!(
                "--drift-after must be at least 2 seconds, got {:?}",
                self.drift_after
            )));
        }
        if self.listen == self.admin && self.listen.port() != 0 {
            return Err(DemoError::Usage(
                "--listen and --admin must differ".to_string(),
            ));
        }
        Ok(())
    }
}

/// The demo's log level: on a terminal only errors, since warnings written under the summary
/// would break its redraw (the alarms they announce are in the summary); otherwise warnings,
/// which then read as a log beside the plain lines. `RUST_LOG` wins over both.
pub fn log_level() -> &'static str {
    if std::io::stdout().is_terminal() {
        "error"
    } else {
        "warn"
    }
}

/// Find and open ONNX Runtime, with messages in the demo's terms (its flag, not a config key).
fn open_onnx(flag: Option<&Path>) -> Result<(PathBuf, ort::environment::Environment), DemoError> {
    let configured = flag.map(|p| p.display().to_string()).unwrap_or_default();
    let (path, _) = onnx::library(&configured).map_err(|e| {
        DemoError::OnnxLibrary(match e {
            OnnxError::Missing { setting, path } => {
                let setting = if setting == "ORT_DYLIB_PATH" {
                    "ORT_DYLIB_PATH"
                } else {
                    "--onnx-library"
                };
                format!("{setting}: {path} does not exist")
            }
            _ => format!(
                "library not found: no --onnx-library, no ORT_DYLIB_PATH, and none of {}",
                onnx::SEARCH_PATH.join(", ")
            ),
        })
    })?;
    let env = onnx::environment(&path.display().to_string()).map_err(|e| {
        DemoError::OnnxLibrary(match e {
            OnnxError::Load { path, message, .. } => format!("cannot load {path}: {message}"),
            other => other.to_string(),
        })
    })?;
    Ok((path, env))
}

/// The demo's files (shadow model, golden set) in a directory of their own, removed at the end.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn create() -> Result<Self, DemoError> {
        let dir = std::env::temp_dir().join(format!("inferwatch-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| DemoError::Files {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Self { dir })
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, DemoError> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).map_err(|source| DemoError::Files {
            path: path.display().to_string(),
            source,
        })?;
        Ok(path)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The golden set: flowers whose true class the live model gets right (a golden set is chosen
/// to be answered right, so that any miss is news), evenly spread over each class.
async fn golden_set(model: &server::Model, rows: &[Row]) -> Result<String, DemoError> {
    let x: Vec<f32> = rows.iter().flat_map(|r| r.x).collect();
    let out = model
        .infer(x, rows.len(), false)
        .await
        .map_err(DemoError::Model)?;
    let mut text = String::new();
    for (class, name) in CLASSES.iter().enumerate() {
        let right: Vec<&Row> = rows
            .iter()
            .zip(&out.labels)
            .filter(|(r, &label)| r.class == class && label == class as i64)
            .map(|(r, _)| r)
            .collect();
        let step = (right.len() / GOLDEN_PER_CLASS).max(1);
        for r in right.iter().step_by(step).take(GOLDEN_PER_CLASS) {
            let line = serde_json::json!({
                "request": iris::request_body(&[r.x]),
                "expect": {"class": name},
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
    }
    Ok(text)
}

/// A listener address as a URL host a browser or curl on this machine can use.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    a
}

async fn until(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Run the demo until Ctrl-C, SIGTERM or `duration`; every part stopped before returning.
pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    opts.validate()?;
    // Listen for Ctrl-C from the start, so an early one still stops cleanly.
    let signal = tokio::spawn(app::shutdown_signal());
    let (library, env) = open_onnx(opts.onnx_library.as_deref())?;
    let files = Files::create()?;
    let shadow_model = files.write("iris.onnx", iris::MODEL)?;
    let model = server::Model::start(&env)?;
    let rows = Arc::new(iris::rows());
    let golden_file = files.write("golden.jsonl", golden_set(&model, &rows).await?.as_bytes())?;

    let (listener, upstream) = server::bind().await?;
    let drifted = Arc::new(AtomicBool::new(false));
    let (server_stop, server_stop_rx) = watch::channel(false);
    let server_task = tokio::spawn(server::serve(
        listener,
        model.clone(),
        drifted.clone(),
        until(server_stop_rx),
    ));

    let plan = config::Plan::new(opts.drift_after.as_secs_f64(), opts.qps);
    let cfg = config::build(&config::Inputs {
        listen: opts.listen,
        admin: opts.admin,
        upstream,
        onnx_library: &library,
        shadow_model: &shadow_model,
        golden_file: &golden_file,
        plan,
    });
    let errors = crate::config::validate(&cfg);
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(DemoError::Config(lines.join("; ")));
    }
    let app = App::build(cfg)?;
    let (proxy_l, admin_l) = app.bind().await?;
    let proxy_addr = reachable(proxy_l.local_addr().unwrap_or(opts.listen));
    let admin_addr = reachable(admin_l.local_addr().unwrap_or(opts.admin));
    let (app_stop, app_stop_rx) = watch::channel(false);
    let app_task = tokio::spawn(app.serve(proxy_l, admin_l, until(app_stop_rx)));

    let infer_url = format!("http://{proxy_addr}/v2/models/{MODEL_NAME}/infer");
    let metrics_url = format!("http://{admin_addr}/metrics");
    println!("inferwatch demo: an iris classifier (ONNX Runtime) behind the inferwatch sidecar");
    println!("  proxy     {infer_url}   (KServe V2; send your own requests too)");
    println!("  metrics   {metrics_url}");
    println!("  status    http://{admin_addr}/status");
    println!("  model     http://{upstream}/v2/models/{MODEL_NAME}   (the model server, direct)");
    println!(
        "  traffic   {} req/s (Poisson); drift at {}s: petal length ×{} and a bad rollout (iris_perturbed.onnx)",
        opts.qps,
        opts.drift_after.as_secs_f64(),
        iris::DRIFT_SCALE
    );
    println!(
        "  charts    learn their baselines for {:.0}s, one point every {}s",
        plan.interval_secs * plan.phase1_subgroups as f64,
        plan.interval_secs
    );
    println!("  ONNX Runtime {}", library.display());
    let _ = std::io::stdout().flush();

    let (traffic_stop, traffic_stop_rx) = watch::channel(false);
    let traffic_task = tokio::spawn(traffic::run(
        infer_url
            .parse()
            .map_err(|e| DemoError::Model(format!("{e}")))?,
        opts.qps,
        rows,
        drifted.clone(),
        traffic_stop_rx,
    ));

    let reason = watch_loop(&opts, &metrics_url, &drifted, signal).await;
    println!("stopping ({reason})");
    let _ = traffic_stop.send(true);
    let _ = traffic_task.await;
    // The sidecar drains before its upstream goes away, as in a pod.
    let _ = app_stop.send(true);
    let _ = app_task.await;
    let _ = server_stop.send(true);
    let _ = server_task.await;
    drop(files);
    println!("demo stopped");
    Ok(())
}

/// Inject the drift on time and show the summary until a signal or the end of `duration`;
/// returns why it ended.
async fn watch_loop(
    opts: &DemoOptions,
    metrics_url: &str,
    drifted: &AtomicBool,
    mut signal: tokio::task::JoinHandle<()>,
) -> &'static str {
    let client = client::traffic();
    let started = Instant::now();
    let drift_at = started + opts.drift_after;
    let end = opts.duration.map(|d| started + d);
    let tty = std::io::stdout().is_terminal();
    let mut drawn = 0usize;
    let mut last_line: Option<Instant> = None;
    let mut last_alarms: (Vec<String>, Vec<String>) = Default::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut out = std::io::stdout();
    let reason = loop {
        let mut drift_now = false;
        tokio::select! {
            _ = &mut signal => break "signal",
            _ = async { tokio::time::sleep_until(end.unwrap_or(drift_at)).await }, if end.is_some() => break "duration reached",
            _ = tokio::time::sleep_until(drift_at), if !drifted.load(Ordering::Relaxed) => {
                drifted.store(true, Ordering::Relaxed);
                drift_now = true;
            }
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let clock = summary::Clock {
            elapsed_secs: (now - started).as_secs_f64(),
            drift_in_secs: drift_at.saturating_duration_since(now).as_secs_f64()
                - now.saturating_duration_since(drift_at).as_secs_f64(),
        };
        let text = scrape::get_text(&client, metrics_url)
            .await
            .unwrap_or_default();
        let f = summary::figures(&scrape::parse_text(&text));
        let alarms = (f.spc_alarms.clone(), f.drift_alarms.clone());
        if tty {
            let mut lines = summary::block(&f, &clock);
            if drifted.load(Ordering::Relaxed) {
                lines.push(format!(
                    "  drift injected    petal length ×{} + bad rollout (iris_perturbed.onnx)",
                    iris::DRIFT_SCALE
                ));
            }
            let _ = writeln!(out, "{}{}", summary::rewind(drawn), lines.join("\n"));
            drawn = lines.len();
        } else {
            if drift_now {
                let _ = writeln!(
                    out,
                    "drift injected at t={:.0}s: petal length ×{}, model server now answers from iris_perturbed.onnx",
                    clock.elapsed_secs,
                    iris::DRIFT_SCALE
                );
            }
            let due = last_line.is_none_or(|t| now - t >= LINE_EVERY);
            if due || drift_now || alarms != last_alarms {
                let _ = writeln!(out, "{}", summary::line(&f, &clock));
                last_line = Some(now);
            }
        }
        last_alarms = alarms;
        let _ = out.flush();
    };
    reason
}
