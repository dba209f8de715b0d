//! The admin server on its own listener: `/metrics`, `/healthz`, `/readyz`, `/status`, and
//! `POST /feedback` when ground-truth feedback is enabled.
//!
//! A scrape never slows the live path: the text encoding runs on the blocking pool, and at most
//! `max_concurrent_scrapes` run at once (the rest get 503 and are counted).

mod auth;
pub mod config;
pub mod web;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::{Encoder, IntCounter, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::feedback::{Feedback, MAX_BODY_BYTES};
use crate::routes::LatencyExporter;

/// Shared state the admin endpoints read.
pub struct AdminState {
    pub registry: Registry,
    pub ready: AtomicBool,
    pub latency: LatencyExporter,
    pub scrape_slots: Semaphore,
    pub scrapes_rejected: IntCounter,
    pub started: std::time::Instant,
    /// Extra fields for /status, filled by the app.
    pub status: Box<dyn Fn() -> serde_json::Value + Send + Sync>,
    /// `POST /feedback` (when `[feedback]` is enabled).
    pub feedback: Option<Arc<Feedback>>,
    /// TLS and basic auth from `admin.web_config_file` (none: plain HTTP, no auth).
    pub web: Option<Arc<web::Web>>,
}

type AdminResponse = Response<Full<Bytes>>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> AdminResponse {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(
    state: Arc<AdminState>,
    req: Request<Incoming>,
) -> Result<AdminResponse, Infallible> {
    // Basic auth guards everything but the probes' endpoints (kubelet and load balancers
    // carry no credentials; they reveal only up/ready) and /feedback (its own bearer token).
    if let Some(web) = &state.web {
        let path = req.uri().path();
        let exempt = matches!(path, "/healthz" | "/readyz" | "/feedback");
        let loaded = web.current();
        if !exempt && loaded.auth.enabled() && !loaded.auth.check(req.headers()).await {
            let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic"),
            );
            return Ok(r);
        }
    }
    if req.uri().path() == "/feedback" {
        return Ok(match state.feedback.clone() {
            Some(f) => feedback(f, req).await,
            None => text(StatusCode::NOT_FOUND, "feedback is not enabled\n"),
        });
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n"));
    }
    let resp = match req.uri().path() {
        "/metrics" => metrics(state).await,
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if state.ready.load(Ordering::Acquire) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/status" => {
            let s = state.clone();
            let body = tokio::task::spawn_blocking(move || {
                s.latency.refresh();
                let mut v = (s.status)();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("ready".into(), s.ready.load(Ordering::Acquire).into());
                    obj.insert(
                        "uptime_secs".into(),
                        s.started.elapsed().as_secs_f64().into(),
                    );
                    obj.insert("version".into(), env!("CARGO_PKG_VERSION").into());
                    obj.insert("latency".into(), s.latency.status_json());
                }
                serde_json::to_vec_pretty(&v).unwrap_or_default()
            })
            .await
            .unwrap_or_default();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            r
        }
        "/" => text(
            StatusCode::OK,
            "inferwatch admin: /metrics /healthz /readyz /status\n",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(resp)
}

/// `POST /feedback`: bearer token, then labels joined to remembered predictions.
async fn feedback(f: Arc<Feedback>, req: Request<Incoming>) -> AdminResponse {
    use http_body_util::{BodyExt, Limited};
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    }
    if !f.authorized(req.headers()) {
        let mut r = text(StatusCode::UNAUTHORIZED, "bearer token required\n");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "feedback body too large\n")
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    match f.post(&body) {
        Ok(joined) => {
            let mut r = Response::new(Full::new(Bytes::from(
                serde_json::to_vec(&joined).unwrap_or_default(),
            )));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            r
        }
        Err((status, message)) => text(status, format!("{message}\n")),
    }
}

async fn metrics(state: Arc<AdminState>) -> AdminResponse {
    let Ok(permit) = state.scrape_slots.try_acquire() else {
        state.scrapes_rejected.inc();
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many concurrent scrapes\n",
        );
    };
    let s = state.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        s.latency.refresh();
        let families = s.registry.gather();
        let mut buf = Vec::with_capacity(64 * 1024);
        TextEncoder::new().encode(&families, &mut buf).map(|_| buf)
    })
    .await;
    drop(permit);
    match encoded {
        Ok(Ok(buf)) => {
            let mut r = Response::new(Full::new(Bytes::from(buf)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("encode: {e}\n")),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encode task: {e}\n"),
        ),
    }
}

/// Serve the admin endpoints until `shutdown` resolves.
pub async fn serve(
    state: Arc<AdminState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    match state.web.clone() {
        Some(web) => {
            let handler = move |req| handle(state.clone(), req);
            web::serve(web, listener, handler, shutdown).await
        }
        None => serve_small(listener, move |req| handle(state.clone(), req), shutdown).await,
    }
}

/// The accept loop of the small servers beside the proxy (this admin server, the demo's model
/// server): HTTP/1.1 and h2c, each connection with `handler`; on `shutdown` the listener closes
/// and in-flight responses get 2 s. (The proxy has its own loop: per-connection remote address,
/// heartbeat, configurable grace.)
pub async fn serve_small<H, Fut>(
    listener: TcpListener,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let svc = service_fn(handler.clone());
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc).into_owned());
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
}
