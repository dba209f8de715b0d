//! Builds the running sidecar from a config (registry, proxy, admin state) and serves it until
//! shutdown: `/readyz` fails first, then the proxy stops accepting and drains within the grace
//! period, then the admin server stops.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus::{IntCounter, Registry};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::admin::{self, AdminState};
use crate::config::{Config, Protocol};
use crate::metrics::{self, geometric_buckets, names, LatencyExporter, ProxyMetrics};
use crate::protocol::{
    Capture, InspectionMetrics, Inspector, NoSignals, ProtocolMetrics, SignalSink, Tap,
};
use crate::proxy::{self, Proxy};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Proxy(#[from] proxy::BuildError),
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
    /// Tapped exchanges and the inspector that reads them (both present or both absent).
    captures: Option<mpsc::Receiver<Capture>>,
    inspector: Option<Inspector>,
}

impl App {
    /// Build from a validated config. One registry is made here and handed to every part.
    pub fn build(cfg: Config) -> Result<Self, AppError> {
        let registry = Registry::new();
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
        let (tap, captures, inspector) = if tapped {
            let inspection = InspectionMetrics::register(&registry)?;
            let protocol = ProtocolMetrics::register(&registry, buckets.clone())?;
            let (tap, rx) = Tap::new(&cfg.inspection, inspection.clone());
            let inspector = Inspector::new(&cfg, protocol, inspection, Arc::new(NoSignals));
            (Some(tap), Some(rx), Some(inspector))
        } else {
            (None, None, None)
        };
        let proxy = Proxy::build(&cfg, &proxy_metrics, tap)?;
        let scrapes_rejected = IntCounter::new(
            names::SCRAPES_REJECTED_TOTAL,
            "Scrapes refused because max_concurrent_scrapes were already running.",
        )?;
        registry.register(Box::new(scrapes_rejected.clone()))?;
        let latency = LatencyExporter::new(proxy.router(), proxy_metrics, &cfg.latency);
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
        });
        Ok(Self {
            cfg,
            proxy,
            admin,
            captures,
            inspector,
        })
    }

    /// Send the inspector's quality signals (input features, confidences) to `sink` instead of
    /// nowhere. Call before `serve`.
    pub fn set_signal_sink(&mut self, sink: Arc<dyn SignalSink>) {
        if let Some(inspector) = self.inspector.take() {
            self.inspector = Some(inspector.with_signals(sink));
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.admin.registry
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Bind the proxy and admin listeners named in the config.
    pub async fn bind(&self) -> Result<(TcpListener, TcpListener), AppError> {
        let p = self.cfg.proxy.listen;
        let a = self.cfg.admin.listen;
        let proxy = TcpListener::bind(p)
            .await
            .map_err(|source| AppError::Bind {
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
        Ok((proxy, admin))
    }

    /// Serve on already-bound listeners until `shutdown` resolves, then drain and return.
    pub async fn serve(
        mut self,
        proxy_listener: TcpListener,
        admin_listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) {
        let admin_addr = admin_listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let proxy_addr = proxy_listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let (admin_stop_tx, mut admin_stop_rx) = watch::channel(false);
        let admin_task = tokio::spawn(admin::serve(
            self.admin.clone(),
            admin_listener,
            async move {
                let _ = admin_stop_rx.wait_for(|v| *v).await;
            },
        ));
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
        self.proxy
            .serve(proxy_listener, async move {
                shutdown.await;
                // Readiness fails before the listener closes, so load balancers stop sending.
                admin.ready.store(false, Ordering::Release);
                tracing::info!("shutdown requested");
            })
            .await;
        // The proxy has drained: what is still queued is inspected before the metrics go away.
        let _ = inspector_stop_tx.send(true);
        if let Some(task) = inspector_task {
            let _ = task.await;
        }
        let _ = admin_stop_tx.send(true);
        let _ = admin_task.await;
        tracing::info!("inferwatch stopped");
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
