//! gRPC on the live path: recognising a gRPC call by its content type, reading its result from
//! `grpc-status`, honouring the client's `grpc-timeout`, and answering a gRPC client the gRPC
//! way (HTTP 200, trailers-only) when the sidecar itself fails the call.
//!
//! Every check here is a header lookup and a byte comparison: no allocation for non-gRPC
//! traffic, and none for gRPC traffic until the sidecar has to answer itself.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

use super::forward::{ProxyResponse, ERROR_HEADER};
use crate::metrics::{GrpcCode, Outcome};

pub const GRPC_STATUS: &str = "grpc-status";
pub const GRPC_MESSAGE: &str = "grpc-message";
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

pub use crate::metrics::is_grpc;

/// The `grpc-status` in these headers (trailers, or a trailers-only response's headers).
pub fn status(headers: &HeaderMap) -> Option<GrpcCode> {
    headers
        .get(GRPC_STATUS)
        .and_then(|v| GrpcCode::parse(v.as_bytes()))
}

/// The client's deadline from `grpc-timeout` (`TimeoutValue TimeoutUnit`: at most 8 digits and
/// one of `H M S m u n`). A malformed value is ignored, as gRPC servers do.
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(GRPC_TIMEOUT)?.as_bytes();
    let (unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The gRPC code a gRPC client gets when the sidecar fails its call itself. The choices follow
/// gRPC's own mapping of transport failures and what Envoy and linkerd2-proxy answer:
/// anything that never reached the model server, or a shed call, is UNAVAILABLE (which gRPC
/// retry policies treat as safe to retry); a deadline is DEADLINE_EXCEEDED; a message over the
/// size limit is RESOURCE_EXHAUSTED (what gRPC servers answer for an oversized message).
pub fn code_for(outcome: Outcome) -> GrpcCode {
    match outcome {
        Outcome::Ok => GrpcCode::Ok,
        Outcome::ConnectError
        | Outcome::ConnectTimeout
        | Outcome::UpstreamReset
        | Outcome::Overloaded => GrpcCode::Unavailable,
        Outcome::FirstByteTimeout | Outcome::RequestBodyTimeout => GrpcCode::DeadlineExceeded,
        Outcome::BodyTooLarge => GrpcCode::ResourceExhausted,
        Outcome::RequestBodyError | Outcome::ClientAborted => GrpcCode::Cancelled,
        Outcome::ResponseReset | Outcome::ResponseBodyTimeout | Outcome::GrpcError => {
            GrpcCode::Internal
        }
    }
}

/// A trailers-only gRPC answer: HTTP 200 whose only HEADERS frame ends the stream and carries
/// `grpc-status`, `grpc-message` (percent-encoded as the spec asks) and `x-inferwatch-error`.
pub fn local_answer(outcome: Outcome, reason: &str) -> ProxyResponse {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(
        GRPC_STATUS,
        HeaderValue::from_static(code_for(outcome).header_value()),
    );
    let message = percent_encode(&format!("inferwatch: {}: {reason}", outcome.as_str()));
    if let Ok(v) = HeaderValue::from_str(&message) {
        h.insert(GRPC_MESSAGE, v);
    }
    h.insert(ERROR_HEADER, HeaderValue::from_static(outcome.as_str()));
    resp
}

/// `grpc-message` is percent-encoded: bytes outside printable ASCII, and `%`, become `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn recognises_grpc_content_types_but_not_grpc_web() {
        assert!(is_grpc(&headers(&[("content-type", "application/grpc")])));
        assert!(is_grpc(&headers(&[(
            "content-type",
            "application/grpc+proto"
        )])));
        assert!(is_grpc(&headers(&[(
            "content-type",
            "Application/GRPC;x=1"
        )])));
        assert!(!is_grpc(&headers(&[(
            "content-type",
            "application/grpc-web"
        )])));
        assert!(!is_grpc(&headers(&[("content-type", "application/json")])));
        assert!(!is_grpc(&headers(&[])));
    }

    #[test]
    fn grpc_timeout_units() {
        let t = |v| timeout(&headers(&[("grpc-timeout", v)]));
        assert_eq!(t("250m"), Some(Duration::from_millis(250)));
        assert_eq!(t("3S"), Some(Duration::from_secs(3)));
        assert_eq!(t("2M"), Some(Duration::from_secs(120)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(t("5n"), Some(Duration::from_nanos(5)));
        assert_eq!(t("123456789m"), None, "over 8 digits");
        assert_eq!(t("m"), None);
        assert_eq!(t("10x"), None);
        assert_eq!(t("-1S"), None);
    }

    #[test]
    fn local_answer_is_trailers_only_with_status_and_encoded_message() {
        let resp = local_answer(Outcome::FirstByteTimeout, "no headers in 30 s; 100% é");
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h["grpc-status"], "4");
        assert_eq!(h["content-type"], "application/grpc");
        assert_eq!(h[ERROR_HEADER], "first_byte_timeout");
        assert_eq!(
            h["grpc-message"],
            "inferwatch: first_byte_timeout: no headers in 30 s; 100%25 %C3%A9"
        );
        assert_eq!(code_for(Outcome::ConnectError), GrpcCode::Unavailable);
        assert_eq!(code_for(Outcome::BodyTooLarge), GrpcCode::ResourceExhausted);
    }
}
