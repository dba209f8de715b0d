//! Requests refused before routing, and response framing fixed before forwarding: the checks a
//! transparent proxy owes the protocol (RFC 9112) so that nothing ambiguous passes through it.
//!
//! Per request: a method comparison and two header lookups; per response, one lookup.

use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Version};

use crate::metrics::RejectReason;

/// Why a request cannot be forwarded at all, with the status it gets.
pub fn refuse(method: &Method, version: Version, headers: &HeaderMap) -> Option<RejectReason> {
    if method == Method::CONNECT {
        return Some(RejectReason::Connect);
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host, or with more than one, is a 400.
    // (HTTP/1.0 may omit it; HTTP/2 carries :authority instead and may omit Host.)
    if version == Version::HTTP_11 || version == Version::HTTP_10 {
        let mut hosts = headers.get_all(header::HOST).iter();
        let first = hosts.next();
        if hosts.next().is_some() || (first.is_none() && version == Version::HTTP_11) {
            return Some(RejectReason::BadHost);
        }
    }
    // Upgrades (WebSocket and the like) are refused rather than silently downgraded to a plain
    // request the upstream would answer with a confusing error. `h2c` is the exception: a
    // server may ignore that offer (RFC 9113 §3.1 removed it; curl still sends it) and the
    // request is served over HTTP/1.1 as if it had not been made.
    if let Some(up) = headers.get(header::UPGRADE) {
        let only_h2c = up
            .to_str()
            .is_ok_and(|v| v.split(',').all(|t| t.trim().eq_ignore_ascii_case("h2c")));
        if !only_h2c {
            return Some(RejectReason::Upgrade);
        }
    }
    None
}

/// The status and message a refused request gets.
pub fn refusal(r: RejectReason) -> (StatusCode, &'static str) {
    match r {
        RejectReason::Connect => (
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not supported: this is a reverse proxy for one model server",
        ),
        RejectReason::BadHost => (
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request needs exactly one Host header",
        ),
        RejectReason::Upgrade => (
            StatusCode::NOT_IMPLEMENTED,
            "protocol upgrades (e.g. WebSocket) are not proxied",
        ),
        RejectReason::HeaderTooLarge => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request header over max_request_header_bytes",
        ),
    }
}

/// An upstream response with both `Transfer-Encoding` and `Content-Length` is framed by the
/// transfer coding (RFC 9112 §6.3), which hyper decodes; the length is wrong by definition and
/// must not reach the client, whose own framing would then cut the body short. Returns whether
/// a length was dropped.
pub fn drop_length_if_coded(headers: &mut HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING)
        && headers.remove(header::CONTENT_LENGTH).is_some()
    {
        return true;
    }
    false
}

/// Whether a client connection ended because its request head was over the limit (hyper then
/// answered 431 itself).
pub fn is_header_too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<hyper::Error>()
        .is_some_and(|h| h.is_parse_too_large())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn host_rules_follow_rfc_9112() {
        let get = Method::GET;
        assert_eq!(refuse(&get, Version::HTTP_11, &h(&[("host", "a")])), None);
        assert_eq!(
            refuse(&get, Version::HTTP_11, &h(&[])),
            Some(RejectReason::BadHost)
        );
        assert_eq!(
            refuse(&get, Version::HTTP_11, &h(&[("host", "a"), ("host", "b")])),
            Some(RejectReason::BadHost)
        );
        assert_eq!(refuse(&get, Version::HTTP_10, &h(&[])), None);
        assert_eq!(refuse(&get, Version::HTTP_2, &h(&[])), None);
    }

    #[test]
    fn connect_and_upgrades_are_refused_but_h2c_offers_ignored() {
        let host = ("host", "a");
        assert_eq!(
            refuse(&Method::CONNECT, Version::HTTP_11, &h(&[host])),
            Some(RejectReason::Connect)
        );
        assert_eq!(
            refuse(
                &Method::GET,
                Version::HTTP_11,
                &h(&[host, ("upgrade", "websocket")])
            ),
            Some(RejectReason::Upgrade)
        );
        assert_eq!(
            refuse(
                &Method::GET,
                Version::HTTP_11,
                &h(&[host, ("upgrade", "h2c")])
            ),
            None
        );
    }

    #[test]
    fn a_coded_body_loses_its_length() {
        let mut m = h(&[("transfer-encoding", "chunked"), ("content-length", "3")]);
        assert!(drop_length_if_coded(&mut m));
        assert!(!m.contains_key("content-length"));
        let mut m = h(&[("content-length", "3")]);
        assert!(!drop_length_if_coded(&mut m));
        assert!(m.contains_key("content-length"));
    }
}
