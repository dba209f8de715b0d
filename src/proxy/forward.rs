//! One live request: admission, routing, the upstream call and the mapping of every failure
//! to a status, an `outcome` label, a log line and the `x-inferwatch-error` header.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::{self, Accounting, RequestBody, ResponseBody};
use super::grpc;
use super::headers::{append_forwarded_for, strip_hop_by_hop};
use super::retry::{self, UpstreamBody};
use super::{limits, Inner, SendError};
use crate::metrics::{CodeClass, Outcome, RejectReason};
use crate::routes::config::Protocol;

pub type ProxyResponse = Response<Either<ResponseBody, Full<Bytes>>>;

/// Response header that names why inferwatch answered instead of the upstream.
pub const ERROR_HEADER: &str = "x-inferwatch-error";

pub(crate) async fn handle(
    inner: Arc<Inner>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Result<ProxyResponse, Infallible> {
    let start = Instant::now();
    if let Some(reason) = limits::refuse(
        req.method(),
        req.version(),
        req.uri(),
        req.headers(),
        inner.max_header,
    ) {
        return Ok(refused(&inner, reason));
    }
    let stats = inner.router.route(req.uri().path()).clone();

    // Admission: the limit is checked and taken in one atomic step, so a burst cannot overshoot.
    let prev = inner.in_flight.fetch_add(1, Ordering::AcqRel);
    let is_grpc = grpc::is_grpc(req.headers());
    if prev >= inner.max_in_flight {
        inner.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(suppressed) = inner.warnings.admit(Outcome::Overloaded) {
            tracing::warn!(route = %stats.info.name, outcome = Outcome::Overloaded.as_str(), max_in_flight = inner.max_in_flight, suppressed, "rejecting request: too many in flight (suppressed: like warnings held back since the last one)");
        } else {
            tracing::debug!(route = %stats.info.name, outcome = Outcome::Overloaded.as_str(), "rejecting request: too many in flight");
        }
        if is_grpc {
            return Ok(grpc_overloaded(&stats));
        }
        stats.count(CodeClass::C5xx, Outcome::Overloaded);
        return Ok(local_error(
            Outcome::Overloaded,
            "too many requests in flight",
        ));
    }
    let mut acct = Accounting::admit(stats, inner.in_flight.clone(), start);
    if is_grpc {
        acct.set_grpc();
    }

    let (mut parts, body) = req.into_parts();
    let mut recorder = match &inner.tap {
        Some(tap) if acct.route().info.protocol != Protocol::Opaque => {
            tap.recorder(acct.route().info.clone(), &parts, start)
        }
        _ => None,
    };
    let declared_len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > inner.max_body) {
        return Ok(fail(
            &inner,
            &mut acct,
            Outcome::BodyTooLarge,
            "content-length over max_request_body_bytes",
        ));
    }

    // Target URI: the client's path and query; HTTP/2 also needs the upstream's scheme and
    // authority (its :scheme and :authority), HTTP/1.1 sends origin form.
    let original_authority = parts.uri.authority().cloned();
    let mut uri_parts = http::uri::Parts::default();
    if inner.upstream_h2 {
        uri_parts.scheme = Some(inner.upstream_scheme.clone());
        uri_parts.authority = Some(inner.upstream_authority.clone());
    }
    uri_parts.path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .or_else(|| Some(http::uri::PathAndQuery::from_static("/")));
    parts.uri = match Uri::from_parts(uri_parts) {
        Ok(u) => u,
        Err(_) => {
            return Ok(fail(
                &inner,
                &mut acct,
                Outcome::RequestBodyError,
                "bad request target",
            ))
        }
    };

    strip_hop_by_hop(&mut parts.headers, inner.upstream_h2);
    if inner.preserve_host {
        // HTTP/2 clients carry the host in :authority; an HTTP/1.1 upstream needs it as Host.
        if !parts.headers.contains_key(header::HOST) {
            if let Some(v) = original_authority
                .as_ref()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                parts.headers.insert(header::HOST, v);
            }
        }
    } else if let Ok(v) = HeaderValue::from_str(inner.upstream_authority.as_str()) {
        parts.headers.insert(header::HOST, v);
    }
    if inner.upstream_h2 {
        // HTTP/2 forbids a Host that disagrees with :authority being relied on; h2 takes
        // the authority from the URI, so drop the header to avoid sending both.
        parts.headers.remove(header::HOST);
    }
    if !parts.headers.contains_key(header::HOST) && !inner.upstream_h2 {
        if let Ok(v) = HeaderValue::from_str(inner.upstream_authority.as_str()) {
            parts.headers.insert(header::HOST, v);
        }
    }
    if inner.x_forwarded_for {
        append_forwarded_for(&mut parts.headers, remote.ip());
    }
    parts.version = if inner.upstream_h2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };

    let body_state = Arc::new(AtomicU8::new(body::REQ_OK));
    let body = RequestBody::new(
        body,
        inner.max_body,
        inner.body_idle,
        body_state.clone(),
        recorder.as_ref().map(|r| r.request_tap()),
    );
    acct.set_forwarded();

    // The client's gRPC deadline bounds the wait for response headers when it is shorter.
    let first_byte_timeout = match is_grpc {
        true => grpc_first_byte_timeout(&parts.headers, inner.first_byte_timeout),
        false => inner.first_byte_timeout,
    };
    let send = async {
        // A small body is read first, so the request can be sent again if the pooled
        // connection it goes out on turns out to be closing (retry.rs). HTTP/2 upstreams
        // multiplex one connection and are not retried.
        if !inner.upstream_h2 && retry::keepable(declared_len, &body) {
            let kept = retry::collect(body).await.map_err(Collect)?;
            let req = Request::from_parts(parts, UpstreamBody::Right(Full::new(kept.clone())));
            inner.client.send(req, Some(kept)).await.map_err(Sending)
        } else {
            let req = Request::from_parts(parts, UpstreamBody::Left(body));
            inner.client.send(req, None).await.map_err(Sending)
        }
    };
    let result = tokio::time::timeout(first_byte_timeout, send).await;
    match result {
        Err(_) => Ok(fail(
            &inner,
            &mut acct,
            Outcome::FirstByteTimeout,
            "no response headers within first_byte_timeout_secs",
        )),
        Ok(Err(Collect(e))) => {
            // The body was being read before sending: its state says why it stopped.
            let outcome = match body_state.load(Ordering::Acquire) {
                body::REQ_TOO_LARGE => Outcome::BodyTooLarge,
                body::REQ_IDLE => Outcome::RequestBodyTimeout,
                _ => Outcome::RequestBodyError,
            };
            Ok(fail(&inner, &mut acct, outcome, &error_chain(&*e)))
        }
        Ok(Err(Sending(e))) => {
            let outcome = match body_state.load(Ordering::Acquire) {
                body::REQ_TOO_LARGE => Outcome::BodyTooLarge,
                body::REQ_IDLE => Outcome::RequestBodyTimeout,
                body::REQ_BROKEN => Outcome::RequestBodyError,
                _ => match &e {
                    SendError::ConnectTimeout { .. } => Outcome::ConnectTimeout,
                    SendError::Connect { .. } => Outcome::ConnectError,
                    SendError::Http(_) => Outcome::UpstreamReset,
                },
            };
            let reason = error_chain(&e);
            Ok(fail(&inner, &mut acct, outcome, &reason))
        }
        Ok(Ok(resp)) => {
            let status = resp.status().as_u16();
            let now = Instant::now();
            acct.headers_received(status, now);
            let (mut parts, body) = resp.into_parts();
            if limits::drop_length_if_coded(&mut parts.headers) {
                tracing::debug!(route = %acct.route().info.name, "upstream sent both Transfer-Encoding and Content-Length; the body is framed by the coding, the length is dropped");
            }
            acct.grpc_response(&parts.headers);
            strip_hop_by_hop(&mut parts.headers, false);
            if let Some(r) = recorder.as_mut() {
                r.headers(parts.status, &parts.headers, now);
            }
            let body = ResponseBody::new(body, inner, acct, recorder);
            Ok(Response::from_parts(parts, Either::Left(body)))
        }
    }
}

/// Finish the request with a local error response, logging the reason once.
fn fail(inner: &Inner, acct: &mut Accounting, outcome: Outcome, reason: &str) -> ProxyResponse {
    let status = outcome.local_status().unwrap_or(502);
    // Client-side problems are the client's business; upstream problems are the operator's.
    match outcome {
        Outcome::BodyTooLarge | Outcome::RequestBodyTimeout | Outcome::RequestBodyError => {
            tracing::info!(route = %acct.route().info.name, outcome = outcome.as_str(), status, reason, "rejected request")
        }
        _ => match inner.warnings.admit(outcome) {
            Some(suppressed) => {
                tracing::warn!(route = %acct.route().info.name, outcome = outcome.as_str(), status, reason, suppressed, "upstream request failed (suppressed: like warnings held back since the last one)")
            }
            None => {
                tracing::debug!(route = %acct.route().info.name, outcome = outcome.as_str(), status, reason, "upstream request failed")
            }
        },
    }
    if acct.is_grpc() {
        acct.set_grpc_status(grpc::code_for(outcome));
        acct.finish(outcome, Some(200));
        return grpc::local_answer(outcome, reason);
    }
    acct.finish(outcome, Some(status));
    local_error(outcome, reason)
}

/// How the upstream call failed: reading the (small, kept) request body, or sending.
enum CallError {
    Collect(body::BoxError),
    Sending(SendError),
}
use CallError::{Collect, Sending};

/// Answer a request refused before routing; it is counted by reason, not by route.
fn refused(inner: &Inner, reason: RejectReason) -> ProxyResponse {
    inner.client.guard().rejected(reason);
    let (status, why) = limits::refusal(reason);
    tracing::debug!(
        reason = reason.as_str(),
        status = status.as_u16(),
        "refused request"
    );
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(format!(
        "inferwatch: {}: {why}\n",
        reason.as_str()
    )))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(ERROR_HEADER, HeaderValue::from_static(reason.as_str()));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if reason == RejectReason::Connect {
        h.insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
    }
    resp
}

/// A gRPC call shed before admission: counted as the HTTP 200 the client sees, with the
/// UNAVAILABLE it reads.
fn grpc_overloaded(stats: &crate::routes::RouteStats) -> ProxyResponse {
    stats.count(CodeClass::C2xx, Outcome::Overloaded);
    stats.count_grpc(grpc::code_for(Outcome::Overloaded));
    grpc::local_answer(Outcome::Overloaded, "too many requests in flight")
}

/// The client's `grpc-timeout` bounds the wait for response headers when it is shorter than
/// the configured first-byte timeout: past it the client has given up anyway.
fn grpc_first_byte_timeout(
    headers: &http::HeaderMap,
    configured: std::time::Duration,
) -> std::time::Duration {
    grpc::timeout(headers).map_or(configured, |t| t.min(configured))
}

fn local_error(outcome: Outcome, reason: &str) -> ProxyResponse {
    let status = outcome.local_status().unwrap_or(502);
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(format!(
        "inferwatch: {}: {reason}\n",
        outcome.as_str()
    )))));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = resp.headers_mut();
    h.insert(ERROR_HEADER, HeaderValue::from_static(outcome.as_str()));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if outcome == Outcome::Overloaded {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        out.push_str(": ");
        out.push_str(&err.to_string());
        cur = err.source();
    }
    out
}
