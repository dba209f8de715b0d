//! The live path: accept client connections (HTTP/1.1 and h2c), route, forward to the upstream
//! with streamed bodies, map failures to 502/503/504/413, and account every request.
//!
//! Nothing here waits on anything off the live path; metric updates are atomics and one short
//! sketch lock per request.

mod body;
pub mod config;
pub mod conns;
mod forward;
mod grpc;
pub mod headers;
mod limits;
mod retry;
mod upstream;
mod warn;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use body::{Accounting, BoxError, RequestBody, ResponseBody};
pub use retry::{UpstreamBody, REPLAY_MAX_BYTES};
pub use upstream::{SendError, UpstreamClient, UpstreamSettings};

use crate::metrics::{GuardMetrics, RejectReason};
use crate::routes::Router;
use crate::tap::Tap;
use config::{ProxyConfig, UpstreamProtocol};

/// Errors building the proxy from a (validated) config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("proxy.upstream: {0}")]
    Upstream(String),
}

#[derive(Clone)]
pub(crate) struct Inner {
    client: Arc<UpstreamClient>,
    upstream_scheme: http::uri::Scheme,
    upstream_authority: http::uri::Authority,
    upstream_h2: bool,
    router: Arc<Router>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
    max_body: u64,
    first_byte_timeout: Duration,
    body_idle: Option<Duration>,
    x_forwarded_for: bool,
    preserve_host: bool,
    tap: Option<Tap>,
    /// HTTP/1.1 clients: the wait for a request's headers, idle keep-alive time included.
    client_idle: Duration,
    /// Largest request head (and HTTP/1.1 connection buffer), `max_request_header_bytes`.
    max_header: usize,
    /// Rate limit on the live path's per-request warnings, shared by all workers.
    warnings: Arc<warn::Warnings>,
    /// Open client connections and their cap, shared by all workers.
    conns: Arc<conns::ConnLimit>,
}

/// The proxy, built from config; cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
    grace: Duration,
    heartbeat: Option<Arc<Heartbeat>>,
}

/// Proof that a proxy event loop is alive: a timestamp its runtime refreshes every second.
/// The systemd watchdog is only fed while every proxy loop's heartbeat is fresh.
#[derive(Debug)]
pub struct Heartbeat {
    origin: std::time::Instant,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Heartbeat {
    pub const PERIOD: Duration = Duration::from_secs(1);

    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: std::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long since the loop last proved itself alive.
    pub fn age(&self) -> Duration {
        let last = self.last_ms.load(std::sync::atomic::Ordering::Relaxed);
        self.origin
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }
}

impl Proxy {
    /// Build from a validated `[proxy]` section, counting into `router` (built from the same
    /// section's routes). `tap`, when given, receives copies of exchanges on routes whose
    /// protocol is not `opaque`. `guard` counts refusals and retries.
    pub fn build(
        p: &ProxyConfig,
        router: Arc<Router>,
        tap: Option<Tap>,
        guard: GuardMetrics,
    ) -> Result<Self, BuildError> {
        let uri: http::Uri = p
            .upstream
            .parse()
            .map_err(|e| BuildError::Upstream(format!("{e}")))?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| BuildError::Upstream("no host:port".into()))?;
        let upstream_h2 = p.upstream_protocol == UpstreamProtocol::H2c;
        let max_connections = match p.max_connections {
            0 => conns::auto_max_connections(),
            n => n,
        };
        let conn_limit = conns::ConnLimit::new(
            max_connections,
            guard.connections.clone(),
            &guard.connections_max,
        );
        let client = Arc::new(UpstreamClient::new(
            UpstreamSettings {
                authority: authority_with_port(&authority),
                connect_timeout: Duration::from_secs_f64(p.connect_timeout_secs),
                idle_timeout: Duration::from_secs_f64(p.pool_idle_timeout_secs),
                max_idle: p.pool_max_idle_per_host,
                h2: upstream_h2,
            },
            guard,
        ));
        let body_idle = (p.body_idle_timeout_secs > 0.0)
            .then(|| Duration::from_secs_f64(p.body_idle_timeout_secs));
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                upstream_scheme: uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP),
                upstream_authority: authority,
                upstream_h2,
                router,
                in_flight: Arc::new(AtomicUsize::new(0)),
                max_in_flight: p.max_in_flight,
                max_body: p.max_request_body_bytes,
                first_byte_timeout: Duration::from_secs_f64(p.first_byte_timeout_secs),
                body_idle,
                x_forwarded_for: p.x_forwarded_for,
                preserve_host: p.preserve_host,
                tap,
                client_idle: Duration::from_secs_f64(p.client_idle_timeout_secs),
                max_header: p.max_request_header_bytes,
                warnings: Arc::new(warn::Warnings::default()),
                conns: conn_limit,
            }),
            grace: Duration::from_secs_f64(p.shutdown_grace_secs),
            heartbeat: None,
        })
    }

    /// The same proxy (routes, metrics, in-flight limit, tap) with its own upstream connection
    /// pool, for a worker thread that runs its own event loop: connections then never hop
    /// between threads.
    pub fn with_own_client(&self) -> Self {
        let mut inner = (*self.inner).clone();
        inner.client = Arc::new(UpstreamClient::new(
            inner.client.settings().clone(),
            inner.client.guard().clone(),
        ));
        Self {
            inner: Arc::new(inner),
            grace: self.grace,
            heartbeat: None,
        }
    }

    /// Refresh `hb` from this proxy's runtime while it serves.
    pub fn with_heartbeat(mut self, hb: Arc<Heartbeat>) -> Self {
        self.heartbeat = Some(hb);
        self
    }

    /// The routes and their live statistics (for the admin server's /status and gauges).
    pub fn router(&self) -> Arc<Router> {
        self.inner.router.clone()
    }

    /// Requests in flight now, across all routes.
    pub fn in_flight(&self) -> usize {
        self.inner
            .in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Serve on an already-bound listener until `shutdown` resolves; then stop accepting, let
    /// in-flight requests finish within the grace period, and return.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper's header-read timer also runs while a keep-alive connection waits for its next
        // request, so it is the client idle timeout (hyper's own default, 30 s, would close
        // connections that client pools still hold).
        // The request head limit: hyper answers 431 once an unfinished HTTP/1.1 head fills the
        // connection's buffer, so one number bounds both the head and each connection's buffer
        // memory (hyper's default, ~400 KB, let slow clients hold that much each). HTTP/2
        // heads are measured per request in `limits::refuse`, so they are answered and counted
        // like HTTP/1.1 ones; h2's own limit sits a margin above (see `H2_LAYER_MARGIN`).
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.inner.client_idle)
            .max_buf_size(self.inner.max_header);
        let h2_layer = self
            .inner
            .max_header
            .saturating_mul(limits::H2_LAYER_MARGIN);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(h2_layer).unwrap_or(u32::MAX));
        let graceful = GracefulShutdown::new();
        let beating = self.heartbeat.clone().map(|hb| {
            tokio::spawn(async move {
                loop {
                    hb.beat();
                    tokio::time::sleep(Heartbeat::PERIOD).await;
                }
            })
        });
        tokio::pin!(shutdown);
        let mut backoff = conns::Backoff::default();
        loop {
            // At max_connections, stop accepting until a connection closes: new clients wait
            // in the kernel's backlog instead of taking descriptors the process needs.
            let slot = tokio::select! {
                slot = self.inner.conns.acquire() => slot,
                _ = &mut shutdown => break,
            };
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, remote) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // EMFILE and friends: back off (5 ms doubling to 1 s) rather than spin.
                            drop(slot);
                            let wait = backoff.failed();
                            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "accept failed");
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                    };
                    if backoff.succeeded() {
                        tracing::info!("accepting client connections again");
                    }
                    let _ = stream.set_nodelay(true);
                    let inner = self.inner.clone();
                    let svc = service_fn(move |req| forward::handle(inner.clone(), remote, req));
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                    let conn = graceful.watch(conn);
                    let guard = self.inner.client.guard().clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        if let Err(e) = conn.await {
                            if limits::is_header_too_large(&*e) {
                                guard.rejected(RejectReason::HeaderTooLarge);
                            }
                            tracing::debug!(error = %e, %remote, "client connection ended with error");
                        }
                    });
                }
                _ = &mut shutdown => break,
            }
        }
        drop(listener);
        if let Some(b) = beating {
            b.abort();
        }
        let in_flight = self.in_flight();
        tracing::info!(
            in_flight,
            grace_secs = self.grace.as_secs_f64(),
            "proxy draining"
        );
        tokio::select! {
            _ = graceful.shutdown() => tracing::info!("proxy drained"),
            _ = tokio::time::sleep(self.grace) => {
                tracing::warn!(in_flight = self.in_flight(), "shutdown grace period over; dropping remaining connections");
            }
        }
    }
}

/// `host:port` for connecting: the config's authority, with HTTP's default port if it has none.
fn authority_with_port(a: &http::uri::Authority) -> String {
    match a.port_u16() {
        Some(_) => a.as_str().to_string(),
        None => format!("{}:80", a.host()),
    }
}

/// Bind `n` listening sockets on one address with `SO_REUSEPORT`, so the kernel spreads new
/// connections over `n` worker threads (each with its own event loop), as nginx's `reuseport`.
/// Must be called inside a tokio runtime; the sockets come back as std listeners so they can
/// move to the workers' runtimes.
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let sock = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        sock.set_reuseaddr(true)?;
        sock.set_reuseport(true)?;
        sock.set_nodelay(true)?;
        sock.bind(addr)?;
        // Port 0: the first socket picks the port, the others join it.
        addr = sock.local_addr()?;
        out.push(sock.listen(1024)?.into_std()?);
    }
    Ok(out)
}
