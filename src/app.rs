//! Builds the running sidecar from a config (registry, proxy, admin state) and serves it until
//! shutdown: `/readyz` fails first, then the proxy stops accepting and drains within the grace
//! period, then the admin server stops.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, Registry};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::admin::{self, AdminState};
use crate::canary::{self, Canary, IdleTracker};
use crate::config::Config;
use crate::energy::EnergySampler;
use crate::energy::{RouteLoad, RouteLoads};
use crate::engine::EngineScraper;
use crate::feedback::{self, Feedback};
use crate::metrics::{self, geometric_buckets, names, registered, ProxyMetrics};
use crate::protocol::inspect::LiveMisses;
use crate::protocol::{CaptureHook, Inspector, NoSignals, ProtocolMetrics, SignalSink};
use crate::proxy::{self, Heartbeat, Proxy};
use crate::quality::{self, RouteFigures, SignalSender};
use crate::routes::config::Protocol;
use crate::routes::{LatencyExporter, Router};
use crate::shadow::{self, Shadow, ShadowRunner};
use crate::system::{ModelServer, SystemSampler};
use crate::systemd;
use crate::tap::{Capture, InspectionMetrics, Tap};

/// The route table as the off-path readers see it: the quality engine's pull signals and the
/// energy sampler's attribution read it through their own narrow traits, never its types.
struct RouteView(Arc<Router>);

impl RouteFigures for RouteView {
    fn totals(&self, route: &str) -> Option<(u64, u64)> {
        self.0.get(route).map(|r| r.totals())
    }

    fn p99(&self, route: &str, window: Duration, now: tokio::time::Instant) -> Option<f64> {
        let r = self.0.get(route)?;
        r.sketch.snapshot(window, now).quantile(0.99)
    }
}

impl LiveMisses for RouteView {
    fn slo_misses(&self, route: &str) -> Option<u64> {
        self.0.get(route)?.slo_misses()
    }
}

impl RouteLoads for RouteView {
    fn labels(&self) -> Vec<(String, String)> {
        let routes = self.0.all().iter();
        routes
            .map(|r| (r.info.name.clone(), r.info.model.clone()))
            .collect()
    }

    fn loads(&self) -> Vec<RouteLoad> {
        let routes = self.0.all().iter();
        routes
            .map(|r| {
                // In flight first: see RouteLoads::loads.
                let in_flight = r.in_flight.get();
                RouteLoad {
                    count: r.duration.get_sample_count(),
                    busy_secs: r.duration.get_sample_sum(),
                    in_flight,
                }
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Proxy(#[from] proxy::BuildError),
    #[error("quality: {0}")]
    Quality(#[from] quality::QualityError),
    #[error(transparent)]
    Canary(#[from] canary::CanaryError),
    #[error(transparent)]
    Shadow(#[from] shadow::ShadowError),
    #[error(transparent)]
    Feedback(#[from] feedback::FeedbackError),
    #[error(transparent)]
    AdminWeb(#[from] admin::web::WebConfigError),
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The sidecar, built and ready to serve.
pub struct App {
    cfg: Config,
    proxy: Proxy,
    admin: Arc<AdminState>,
    quality: quality::Engine,
    signals: SignalSender,
    /// Tapped exchanges and the inspector that reads them (both present or both absent).
    captures: Option<mpsc::Receiver<Capture>>,
    inspector: Option<Inspector>,
    energy: Option<EnergySampler>,
    system: Option<SystemSampler>,
    /// The model server's own metrics, scraped into the normalised saturation set.
    engine: Option<EngineScraper>,
    /// Golden-set probes (none configured: `None`).
    canary: Option<Canary>,
    /// The shadow dispatcher (its hook sits on the inspector).
    shadow: Option<ShadowRunner>,
}

impl App {
    /// Build from a validated config. One registry is made here and handed to every part.
    pub fn build(cfg: Config) -> Result<Self, AppError> {
        let registry = Registry::new();
        // The origin of the first upstream cold start and of the first idle gap.
        let started = tokio::time::Instant::now();
        metrics::register_process_and_build_info(&registry)?;
        let lat = &cfg.latency;
        let buckets = if lat.buckets.is_empty() {
            geometric_buckets(lat.bucket_min_secs, lat.bucket_max_secs, lat.bucket_factor)
        } else {
            lat.buckets.clone()
        };
        let proxy_metrics = ProxyMetrics::register(&registry, buckets.clone())?;
        let tapped = cfg.inspection.enabled
            && cfg
                .proxy
                .routes
                .iter()
                .any(|r| r.protocol != Protocol::Opaque);
        let mut output_tokens = None;
        let (tap, captures, inspector) = if tapped {
            let inspection = InspectionMetrics::register(&registry)?;
            let protocol = ProtocolMetrics::register(&registry, buckets.clone())?;
            output_tokens = Some(protocol.output_tokens.clone());
            // One set of the tap's counters per route, `other` included.
            let routes = cfg.proxy.routes.len() + 1;
            let (tap, rx) = Tap::new(&cfg.inspection, inspection.clone(), routes);
            // The feedback join keys predictions by a request header the tap must keep.
            let keep = cfg
                .feedback
                .enabled
                .then(|| {
                    http::HeaderName::from_bytes(
                        cfg.feedback
                            .request_id_header
                            .to_ascii_lowercase()
                            .as_bytes(),
                    )
                    .ok()
                })
                .flatten();
            let tap = tap.keep_request_headers(keep.into_iter().collect());
            let inspector = Inspector::new(
                &cfg.proxy.routes,
                &cfg.inspection,
                protocol,
                inspection,
                Arc::new(NoSignals),
            )
            .with_slo(proxy_metrics.slo.clone());
            (Some(tap), Some(rx), Some(inspector))
        } else {
            (None, None, None)
        };
        let router = Router::new(
            &cfg.proxy.routes,
            &cfg.latency,
            &proxy_metrics,
            tokio::time::Instant::now(),
        );
        let guard = metrics::GuardMetrics::register(&registry)?;
        let proxy = Proxy::build(&cfg.proxy, Arc::new(router), tap, guard)?;
        let scrapes_rejected = registered(
            &registry,
            IntCounter::new(
                names::SCRAPES_REJECTED_TOTAL,
                "Scrapes refused because max_concurrent_scrapes were already running.",
            )?,
        )?;
        let routes = Arc::new(RouteView(proxy.router()));
        let (quality, signals) = quality::Engine::build(
            &cfg.quality,
            routes.clone(),
            &registry,
            tokio::time::Instant::now(),
        )?;
        // The adapters' per-feature values and confidences feed the charts and drift tests.
        // The live path's SLO misses (no answer, failures) join the goodput signals.
        let mut inspector = inspector.map(|i| {
            i.with_signals(Arc::new(signals.clone()))
                .with_live_misses(routes.clone())
        });
        let upstream = canary::Upstream {
            url: &cfg.proxy.upstream,
            connect_timeout: Duration::from_secs_f64(cfg.proxy.connect_timeout_secs),
            max_body: cfg.inspection.max_body_bytes,
        };
        let canary = Canary::build(
            &cfg.canary,
            &cfg.accuracy,
            &cfg.proxy.routes,
            &upstream,
            &registry,
            buckets.clone(),
            &signals,
            started,
        )?;
        if let Some(idle) = IdleTracker::build(&cfg.cold_start, &registry, started)? {
            inspector = inspector.map(|i| i.with_hook(idle));
        }
        // Shadow replay and the feedback join read the inspector's decoded captures; without a
        // tapped route (validation rules that out) they have nothing to read.
        let shadow = Shadow::build(
            &cfg.shadow,
            &cfg.accuracy,
            &cfg.proxy.routes,
            upstream.connect_timeout,
            upstream.max_body,
            &registry,
            buckets.clone(),
            &signals,
        )?;
        let shadow = match shadow {
            Some(Shadow { hook, runner }) => {
                inspector = inspector.map(|i| i.with_hook(hook));
                Some(runner)
            }
            None => None,
        };
        let feedback = Feedback::build(&cfg.feedback, &cfg.accuracy, &registry, &signals)?;
        let web = match cfg.admin.web_config_file.as_str() {
            "" => None,
            path => Some(admin::web::Web::load(std::path::Path::new(path))?),
        };
        if let Some(f) = &feedback {
            inspector = inspector.map(|i| i.with_hook(f.clone()));
        }
        let latency = LatencyExporter::new(proxy.router(), proxy_metrics, &cfg.latency);
        // Samplers off the live path: they read the routes' counters, the proxy never waits.
        let model_server = cfg.system.names_a_process().then(ModelServer::default);
        let system = SystemSampler::build(
            &cfg.system,
            &registry,
            model_server.clone().unwrap_or_default(),
        )?;
        let engine = EngineScraper::build(&cfg.engine, &registry)?;
        let energy = EnergySampler::build(&cfg.energy, &registry, routes, model_server)?.map(|e| {
            match output_tokens {
                // Joules per output token on routes whose adapter counts tokens (OpenAI).
                Some(tokens) => e.with_output_tokens(tokens),
                None => e,
            }
        });
        let status_proxy = proxy.clone();
        let upstream = cfg.proxy.upstream.clone();
        let admin = Arc::new(AdminState {
            registry,
            ready: AtomicBool::new(false),
            latency,
            scrape_slots: Semaphore::new(cfg.admin.max_concurrent_scrapes),
            scrapes_rejected,
            started: std::time::Instant::now(),
            status: Box::new(move || {
                serde_json::json!({
                    "upstream": upstream,
                    "in_flight": status_proxy.in_flight(),
                })
            }),
            feedback,
            web,
        });
        Ok(Self {
            cfg,
            proxy,
            admin,
            captures,
            inspector,
            energy,
            system,
            engine,
            quality,
            signals,
            canary,
            shadow,
        })
    }

    /// Where other modules push quality observations (canary, shadow, protocol adapters).
    pub fn signals(&self) -> SignalSender {
        self.signals.clone()
    }

    /// Send the inspector's signals (input features, confidences) to `sink` instead of the
    /// quality engine. Call before `serve`.
    pub fn set_signal_sink(&mut self, sink: Arc<dyn SignalSink>) {
        if let Some(inspector) = self.inspector.take() {
            self.inspector = Some(inspector.with_signals(sink));
        }
    }

    /// Also hand every inspected capture to `hook` (after the adapters; on the inspector's
    /// task, off the live path). Call before `serve`.
    pub fn add_capture_hook(&mut self, hook: Arc<dyn CaptureHook>) {
        if let Some(inspector) = self.inspector.take() {
            self.inspector = Some(inspector.with_hook(hook));
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.admin.registry
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Bind the proxy and admin listeners named in the config: one `SO_REUSEPORT` proxy
    /// listener per worker thread (`proxy.worker_threads`, 0 = one per CPU the process may
    /// use), each served by its own event loop.
    pub async fn bind(&self) -> Result<(ProxyListeners, TcpListener), AppError> {
        let p = self.cfg.proxy.listen;
        let a = self.cfg.admin.listen;
        let workers = worker_count(self.cfg.proxy.worker_threads);
        let proxy = proxy::bind_reuseport(p, workers).map_err(|source| AppError::Bind {
            what: "proxy",
            addr: p,
            source,
        })?;
        let admin = TcpListener::bind(a)
            .await
            .map_err(|source| AppError::Bind {
                what: "admin",
                addr: a,
                source,
            })?;
        Ok((ProxyListeners::PerThread(proxy), admin))
    }

    /// Serve on already-bound listeners until `shutdown` resolves, then drain and return.
    pub async fn serve(
        mut self,
        proxy_listeners: impl Into<ProxyListeners>,
        admin_listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) {
        let proxy_listeners = proxy_listeners.into();
        let admin_addr = admin_listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let proxy_addr = proxy_listeners
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let (samplers_stop_tx, samplers_stop_rx) = watch::channel(false);
        let mut samplers = Vec::new();
        if let Some(s) = self.energy {
            samplers.push(tokio::spawn(s.run(samplers_stop_rx.clone())));
        }
        if let Some(s) = self.engine {
            samplers.push(tokio::spawn(s.run(samplers_stop_rx.clone())));
        }
        if let Some(s) = self.system {
            samplers.push(tokio::spawn(s.run(samplers_stop_rx)));
        }
        let (admin_stop_tx, mut admin_stop_rx) = watch::channel(false);
        let admin_task = tokio::spawn(admin::serve(
            self.admin.clone(),
            admin_listener,
            async move {
                let _ = admin_stop_rx.wait_for(|v| *v).await;
            },
        ));
        let (quality_stop_tx, mut quality_stop_rx) = watch::channel(false);
        let quality_task = tokio::spawn(self.quality.run(async move {
            let _ = quality_stop_rx.wait_for(|v| *v).await;
        }));
        // Probes and shadow replays stop together, once the proxy has drained.
        let (canary_stop_tx, canary_stop_rx) = watch::channel(false);
        let canary_task = self
            .canary
            .take()
            .map(|c| tokio::spawn(c.run(canary_stop_rx.clone())));
        let shadow_task = self
            .shadow
            .take()
            .map(|s| tokio::spawn(s.run(canary_stop_rx)));
        let (inspector_stop_tx, inspector_stop_rx) = watch::channel(false);
        let inspector_task = match (self.captures.take(), self.inspector.take()) {
            (Some(rx), Some(inspector)) => Some(tokio::spawn(inspector.run(rx, inspector_stop_rx))),
            _ => None,
        };
        self.admin.ready.store(true, Ordering::Release);
        tracing::info!(
            proxy = %proxy_addr,
            admin = %admin_addr,
            upstream = %self.cfg.proxy.upstream,
            "inferwatch serving"
        );
        let admin = self.admin.clone();
        let notifier = systemd::Notifier::from_env();
        let n = notifier.clone();
        let stop = async move {
            shutdown.await;
            // Readiness fails before the listener closes, so load balancers stop sending.
            admin.ready.store(false, Ordering::Release);
            n.notify("STOPPING=1\nSTATUS=draining");
            tracing::info!("shutdown requested");
        };
        let loops = match &proxy_listeners {
            ProxyListeners::Shared(_) => 1,
            ProxyListeners::PerThread(ls) => ls.len(),
        };
        let heartbeats: Vec<_> = (0..loops).map(|_| Heartbeat::new()).collect();
        let watchdog = systemd::watchdog_interval()
            .filter(|_| notifier.enabled())
            .map(|every| tokio::spawn(feed_watchdog(notifier.clone(), heartbeats.clone(), every)));
        // The listeners are bound (connections queue in the kernel from here on), so systemd
        // may start what depends on us.
        notifier.notify("READY=1\nSTATUS=serving");
        match proxy_listeners {
            ProxyListeners::Shared(l) => {
                let hb = heartbeats[0].clone();
                self.proxy.with_heartbeat(hb).serve(l, stop).await
            }
            ProxyListeners::PerThread(ls) => {
                serve_per_thread(&self.proxy, ls, &heartbeats, stop).await
            }
        }
        if let Some(w) = watchdog {
            w.abort();
        }
        let _ = canary_stop_tx.send(true);
        for task in [canary_task, shadow_task].into_iter().flatten() {
            let _ = task.await;
        }
        // The proxy has drained: what is still queued is inspected before the metrics go away.
        let _ = inspector_stop_tx.send(true);
        if let Some(task) = inspector_task {
            let _ = task.await;
        }
        let _ = samplers_stop_tx.send(true);
        for s in samplers {
            let _ = s.await;
        }
        let _ = quality_stop_tx.send(true);
        let _ = quality_task.await;
        let _ = admin_stop_tx.send(true);
        let _ = admin_task.await;
        tracing::info!("inferwatch stopped");
    }
}

/// The inspector's signals go to the quality engine; names no chart or drift test uses are
/// skipped here rather than counted as unknown for every row.
impl SignalSink for SignalSender {
    fn observe(&self, signal: &str, value: f64) {
        if self.wants(signal) {
            SignalSender::observe(self, signal, value);
        }
    }
}

/// `proxy.worker_threads` resolved: 0 means one per CPU this process may run on (the cgroup's
/// CPU quota and affinity included, as `std::thread::available_parallelism` reads them).
pub fn worker_count(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Where the proxy accepts connections.
pub enum ProxyListeners {
    /// One listener served by the caller's runtime (tests, embedding).
    Shared(TcpListener),
    /// One `SO_REUSEPORT` listener per worker thread, each thread with its own event loop.
    PerThread(Vec<std::net::TcpListener>),
}

impl From<TcpListener> for ProxyListeners {
    fn from(l: TcpListener) -> Self {
        ProxyListeners::Shared(l)
    }
}

impl ProxyListeners {
    /// The address the proxy listens on (every per-thread listener shares it).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            ProxyListeners::Shared(l) => l.local_addr(),
            ProxyListeners::PerThread(ls) => ls.first().map_or_else(
                || Err(std::io::ErrorKind::NotFound.into()),
                |l| l.local_addr(),
            ),
        }
    }
}

/// Run one proxy event loop per listener, each on its own thread with a current-thread runtime
/// and its own upstream pool; all share routes, metrics and the in-flight limit.
async fn serve_per_thread(
    proxy: &Proxy,
    listeners: Vec<std::net::TcpListener>,
    heartbeats: &[Arc<Heartbeat>],
    stop: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut threads = Vec::new();
    for ((i, listener), hb) in listeners.into_iter().enumerate().zip(heartbeats) {
        let worker = proxy.with_own_client().with_heartbeat(hb.clone());
        let mut rx = stop_rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("inferwatch-proxy-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(worker = i, error = %e, "cannot start proxy worker runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => {
                            worker
                                .serve(l, async move {
                                    let _ = rx.wait_for(|v| *v).await;
                                })
                                .await
                        }
                        Err(e) => tracing::error!(worker = i, error = %e, "cannot use proxy listener"),
                    }
                });
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(worker = i, error = %e, "cannot start proxy worker thread"),
        }
    }
    stop.await;
    let _ = stop_tx.send(true);
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
}

/// Feed the systemd watchdog only while every proxy event loop has beaten recently, so a
/// wedged live path gets the service restarted rather than hidden by a healthy side thread.
async fn feed_watchdog(
    notifier: systemd::Notifier,
    heartbeats: Vec<Arc<Heartbeat>>,
    every: Duration,
) {
    let stale_after = (every * 2).max(Heartbeat::PERIOD * 3);
    let mut withheld = false;
    loop {
        // Sleep first: READY=1 goes out before the first ping.
        tokio::time::sleep(every).await;
        let stalled = heartbeats.iter().position(|h| h.age() > stale_after);
        match stalled {
            None => {
                notifier.notify("WATCHDOG=1");
                withheld = false;
            }
            Some(i) if !withheld => {
                tracing::error!(
                    worker = i,
                    "proxy event loop stalled; withholding the systemd watchdog ping"
                );
                withheld = true;
            }
            Some(_) => {}
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
