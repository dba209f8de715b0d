//! Requests refused before routing, and response framing fixed before forwarding: the checks a
//! transparent proxy owes the protocol (RFC 9112) so that nothing ambiguous passes through it.
//!
//! Per request: a method comparison and two header lookups (HTTP/2: also a pass adding up the
//! header list's length); per response, one lookup.

use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Uri, Version};

use crate::metrics::RejectReason;

/// How many times `max_request_header_bytes` the HTTP/2 layer itself lets through (its
/// SETTINGS_MAX_HEADER_LIST_SIZE). h2 answers 431 past its own limit inside its layer, where the
/// proxy never sees the request and cannot count it; letting a margin through to
/// [`refuse`] means heads between the limit and this many times it are answered and counted
/// here, like HTTP/1.1 ones. A head over the margin (an abusive client: four times the limit
/// it was told) still gets h2's own 431, uncounted, and over 16 times h2 closes the connection.
/// h2 stores no field past its limit, so a connection's head memory stays bounded by it.
pub const H2_LAYER_MARGIN: usize = 4;

/// Why a request cannot be forwarded at all, with the status it gets. `max_head`: the
/// largest HTTP/2 header list, in SETTINGS_MAX_HEADER_LIST_SIZE's measure (HTTP/1.1 heads are
/// limited by hyper's buffer before they get here).
pub fn refuse(
    method: &Method,
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
    max_head: usize,
) -> Option<RejectReason> {
    if method == Method::CONNECT {
        return Some(RejectReason::Connect);
    }
    if version == Version::HTTP_2 && h2_header_list_size(method, uri, headers) > max_head {
        return Some(RejectReason::HeaderTooLarge);
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

/// An HTTP/2 request's decoded header list size as RFC 9113 §6.5.2 counts it (and h2 enforces
/// it): each field's name and value plus 32, pseudo-header fields included. One pass over a
/// handful of headers, additions only.
fn h2_header_list_size(method: &Method, uri: &Uri, headers: &HeaderMap) -> usize {
    const FIELD: usize = 32;
    // ":method", ":scheme", ":authority", ":path" with their values.
    let mut size = 7 + method.as_str().len() + FIELD;
    if let Some(s) = uri.scheme_str() {
        size += 7 + s.len() + FIELD;
    }
    if let Some(a) = uri.authority() {
        size += 10 + a.as_str().len() + FIELD;
    }
    size += 5 + uri.path_and_query().map_or(1, |p| p.as_str().len()) + FIELD;
    for (name, value) in headers {
        size += name.as_str().len() + value.len() + FIELD;
    }
    size
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
        assert_eq!(refuse_v(&get, Version::HTTP_11, &h(&[("host", "a")])), None);
        assert_eq!(
            refuse_v(&get, Version::HTTP_11, &h(&[])),
            Some(RejectReason::BadHost)
        );
        assert_eq!(
            refuse_v(&get, Version::HTTP_11, &h(&[("host", "a"), ("host", "b")])),
            Some(RejectReason::BadHost)
        );
        assert_eq!(refuse_v(&get, Version::HTTP_10, &h(&[])), None);
        assert_eq!(refuse_v(&get, Version::HTTP_2, &h(&[])), None);
    }

    fn refuse_v(m: &Method, v: Version, headers: &HeaderMap) -> Option<RejectReason> {
        refuse(m, v, &Uri::from_static("/p"), headers, 60 * 1024)
    }

    #[test]
    fn http2_header_lists_over_the_limit_are_refused_in_h2s_measure() {
        let uri = Uri::from_static("http://a:1/v2/models/m/infer");
        let base = h2_header_list_size(&Method::POST, &uri, &HeaderMap::new());
        // :method POST, :scheme http, :authority a:1, :path /v2/models/m/infer.
        assert_eq!(base, (7 + 4) + (7 + 4) + (10 + 3) + (5 + 18) + 4 * 32);
        let one = h(&[("x-big", &"a".repeat(1000))]);
        let size = base + 5 + 1000 + 32;
        assert_eq!(h2_header_list_size(&Method::POST, &uri, &one), size);
        let at = |max| refuse(&Method::POST, Version::HTTP_2, &uri, &one, max);
        assert_eq!(at(size), None);
        assert_eq!(at(size - 1), Some(RejectReason::HeaderTooLarge));
        // HTTP/1.1 heads are measured by hyper's buffer, not here.
        let h1 = h(&[("host", "a"), ("x-big", &"a".repeat(1000))]);
        assert_eq!(
            refuse(&Method::POST, Version::HTTP_11, &uri, &h1, 100),
            None
        );
    }

    #[test]
    fn connect_and_upgrades_are_refused_but_h2c_offers_ignored() {
        let host = ("host", "a");
        assert_eq!(
            refuse_v(&Method::CONNECT, Version::HTTP_11, &h(&[host])),
            Some(RejectReason::Connect)
        );
        assert_eq!(
            refuse_v(
                &Method::GET,
                Version::HTTP_11,
                &h(&[host, ("upgrade", "websocket")])
            ),
            Some(RejectReason::Upgrade)
        );
        assert_eq!(
            refuse_v(
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
