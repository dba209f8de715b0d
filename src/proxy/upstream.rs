//! The upstream side of the live path: a small connection pool for the one upstream a sidecar
//! talks to, built on hyper's connection-level client.
//!
//! Why not hyper-util's pooled client: a sidecar has exactly one upstream, so a pool keyed by
//! (scheme, authority) pays a SipHash, a checkout future and a spawned "return to pool" task per
//! request for nothing; with one pool per proxy worker thread there is no contention either.
//! Here HTTP/1.1 connections sit in a list; a request takes the first one whose connection task
//! says it is ready for the next request (an atomic read), else opens one. HTTP/2 (h2c) shares one
//! multiplexed connection, reopened when it closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::retry::{self, Counted, Replay, UpstreamBody};
use crate::metrics::{GuardMetrics, RetryReason};

/// How sending to the upstream failed before response headers.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connect to {addr}: no connection within {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Settings from `[proxy]`.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// `host:port` to connect to.
    pub authority: String,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle: usize,
    pub h2: bool,
}

struct Conn {
    tx: http1::SendRequest<UpstreamBody>,
    /// Bytes read from the socket so far (see `retry::Counted`).
    read: Arc<AtomicU64>,
    last_used: std::time::Instant,
}

/// One pool per proxy worker.
pub struct UpstreamClient {
    settings: UpstreamSettings,
    guard: GuardMetrics,
    /// Open HTTP/1.1 connections not carrying a request right now (idle, or streaming the
    /// body of a response already handed to the proxy).
    h1: Mutex<Vec<Conn>>,
    h2: Mutex<Option<http2::SendRequest<UpstreamBody>>>,
    /// Serialises opening the shared HTTP/2 connection, so a burst opens one, not many.
    h2_connecting: tokio::sync::Mutex<()>,
}

impl UpstreamClient {
    pub fn new(settings: UpstreamSettings, guard: GuardMetrics) -> Self {
        Self {
            settings,
            guard,
            h1: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
            h2_connecting: tokio::sync::Mutex::new(()),
        }
    }

    pub fn settings(&self) -> &UpstreamSettings {
        &self.settings
    }

    pub fn guard(&self) -> &GuardMetrics {
        &self.guard
    }

    /// Send one request; the response body streams from the connection as it arrives.
    /// `kept`: the request body, when it is small and already in memory (`retry.rs`), which
    /// makes one retry on a fresh connection possible.
    pub async fn send(
        &self,
        req: Request<UpstreamBody>,
        kept: Option<Bytes>,
    ) -> Result<Response<Incoming>, SendError> {
        if self.settings.h2 {
            self.send_h2(req).await
        } else {
            self.send_h1(req, kept).await
        }
    }

    async fn send_h1(
        &self,
        mut req: Request<UpstreamBody>,
        mut kept: Option<Bytes>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut fresh_only = false;
        loop {
            let (conn, reused) = match (!fresh_only).then(|| self.checkout_h1()).flatten() {
                Some(c) => (c, true),
                None => (self.connect_h1().await?, false),
            };
            let Conn { mut tx, read, .. } = conn;
            // Only a reused connection can be one the server is closing, so only then is a
            // copy kept (a fresh connection failing means the server is down).
            let replay = match &kept {
                Some(body) if reused => Some(Replay::of(&req, body)),
                _ => None,
            };
            let read_before = read.load(Ordering::Relaxed);
            match tx.try_send_request(req).await {
                Ok(resp) => {
                    // Back in the list while its response body streams: it is not ready until
                    // the exchange is complete, and the connection task flips that by itself.
                    self.checkin_h1(tx, read);
                    return Ok(resp);
                }
                Err(mut e) => {
                    if let Some(back) = e.take_message() {
                        // A pooled connection closed before taking the request (the upstream's
                        // keep-alive timeout raced us): nothing was sent, try another.
                        if reused {
                            self.guard.retried(RetryReason::ClosedBeforeSend);
                            req = back;
                            continue;
                        }
                        return Err(SendError::Http(e.into_error()));
                    }
                    let err = e.into_error();
                    let nothing_back = read.load(Ordering::Relaxed) == read_before;
                    match replay {
                        Some(again) if nothing_back && retry::connection_failed(&err) => {
                            tracing::debug!(error = %err, "reused upstream connection failed before any response byte; retrying once on a fresh one");
                            self.guard.retried(RetryReason::ResetBeforeResponse);
                            req = again.into_request();
                            kept = None;
                            fresh_only = true;
                        }
                        _ => return Err(SendError::Http(err)),
                    }
                }
            }
        }
    }

    /// The first connection ready for a new request. Closed and long-idle connections are
    /// dropped on the way; busy ones stay (they come back to ready by themselves).
    fn checkout_h1(&self) -> Option<Conn> {
        let mut conns = self.h1.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        let idle_timeout = self.settings.idle_timeout;
        let mut idle = 0;
        let max_idle = self.settings.max_idle;
        conns.retain(|c| {
            if c.tx.is_closed() {
                return false;
            }
            if c.tx.is_ready() {
                if now.duration_since(c.last_used) > idle_timeout || idle >= max_idle {
                    return false;
                }
                idle += 1;
            }
            true
        });
        let at = conns.iter().position(|c| c.tx.is_ready())?;
        Some(conns.swap_remove(at))
    }

    fn checkin_h1(&self, tx: http1::SendRequest<UpstreamBody>, read: Arc<AtomicU64>) {
        let mut conns = self.h1.lock().unwrap_or_else(|p| p.into_inner());
        conns.push(Conn {
            tx,
            read,
            last_used: std::time::Instant::now(),
        });
    }

    async fn connect_h1(&self) -> Result<Conn, SendError> {
        let (io, read) = Counted::new(self.connect_tcp().await?);
        let (tx, conn) = http1::Builder::new().handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with error");
            }
        });
        Ok(Conn {
            tx,
            read,
            last_used: std::time::Instant::now(),
        })
    }

    async fn send_h2(&self, req: Request<UpstreamBody>) -> Result<Response<Incoming>, SendError> {
        let mut tx = self.h2_sender().await?;
        Ok(tx.send_request(req).await?)
    }

    async fn h2_sender(&self) -> Result<http2::SendRequest<UpstreamBody>, SendError> {
        if let Some(tx) = self.live_h2() {
            return Ok(tx);
        }
        let _opening = self.h2_connecting.lock().await;
        if let Some(tx) = self.live_h2() {
            return Ok(tx);
        }
        let io = TokioIo::new(self.connect_tcp().await?);
        let (tx, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream h2 connection ended with error");
            }
        });
        *self.h2.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx.clone());
        Ok(tx)
    }

    fn live_h2(&self) -> Option<http2::SendRequest<UpstreamBody>> {
        let guard = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().filter(|tx| !tx.is_closed()).cloned()
    }

    async fn connect_tcp(&self) -> Result<TcpStream, SendError> {
        let addr = &self.settings.authority;
        let after = self.settings.connect_timeout;
        let stream = match tokio::time::timeout(after, TcpStream::connect(addr.as_str())).await {
            Err(_) => {
                return Err(SendError::ConnectTimeout {
                    addr: addr.clone(),
                    after,
                })
            }
            Ok(Err(source)) => {
                return Err(SendError::Connect {
                    addr: addr.clone(),
                    source,
                })
            }
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}
