//! One retry for requests that met a connection the upstream was closing.
//!
//! Model servers built on uvicorn (MLServer, FastAPI servers, vLLM) close idle keep-alive
//! connections after 5 s. A request sent on a pooled connection just as the server closes it
//! fails with nothing received, though the server never read it. As linkerd2-proxy and Go's
//! transport do, such a request is sent once more on a fresh connection when that is safe:
//! the connection was reused (a fresh one failing means the server is down, not racing us),
//! not one byte of response arrived on it since the request went out, and the request body is
//! small (at most [`REPLAY_MAX_BYTES`], declared by `Content-Length`) so it is still in memory.
//!
//! Per request this costs, for small bodies on HTTP/1.1 upstreams only: collecting the body
//! (one frame in the common case: kept as it came, no copy, no list) and, on a reused
//! connection, a copy of the request head (a `HeaderMap` clone) kept until response headers
//! arrive.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Uri, Version};
use http_body_util::{BodyExt, Either, Full};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::body::{BoxError, RequestBody};

/// Largest request body kept in memory for a retry (linkerd2-proxy keeps 64 KiB too). Larger
/// bodies stream through untouched and are never retried once sent.
pub const REPLAY_MAX_BYTES: u64 = 64 * 1024;

/// What goes upstream: the client's body streamed, or a small body already in memory.
pub type UpstreamBody = Either<RequestBody, Full<Bytes>>;

/// Whether this request's body is small enough to keep: declared by `Content-Length` at most
/// [`REPLAY_MAX_BYTES`], or no body at all.
pub fn keepable(declared_len: Option<u64>, body: &RequestBody) -> bool {
    use http_body::Body;
    declared_len.is_some_and(|n| n <= REPLAY_MAX_BYTES) || body.is_end_stream()
}

/// Read a small body into memory, through [`RequestBody`] (so the size limit, the idle
/// timeout and the tap still apply). A body of one frame (the common case: it came with the
/// head) is kept as it came, with no copy and no list of frames; more frames are joined.
pub async fn collect(mut body: RequestBody) -> Result<Bytes, BoxError> {
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        // Trailers on a request to an HTTP/1.1 upstream have nowhere to go: dropped, as before.
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        match (&mut joined, first.take()) {
            (Some(buf), _) => buf.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(one)) => {
                let mut buf = BytesMut::with_capacity(one.len() + data.len());
                buf.extend_from_slice(&one);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
        }
    }
    Ok(match joined {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// A copy of a request whose body is in memory, to send again.
pub struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
}

impl Replay {
    pub fn of(req: &Request<UpstreamBody>, body: &Bytes) -> Self {
        Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            body: body.clone(),
        }
    }

    pub fn into_request(self) -> Request<UpstreamBody> {
        let mut req = Request::new(Either::Right(Full::new(self.body)));
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers;
        req
    }
}

/// Whether a send failed because the connection went away (closed, reset, broken pipe), as
/// opposed to a malformed response or a local error.
pub fn connection_failed(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return true;
    }
    let mut cur = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            );
        }
        cur = err.source();
    }
    false
}

/// An upstream socket that counts the bytes read from it, so a failed exchange can tell
/// whether any of the response arrived (one relaxed atomic add per read).
pub struct Counted<T> {
    inner: T,
    read: Arc<AtomicU64>,
}

impl<T> Counted<T> {
    pub fn new(inner: T) -> (Self, Arc<AtomicU64>) {
        let read = Arc::new(AtomicU64::new(0));
        (
            Self {
                inner,
                read: read.clone(),
            },
            read,
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
