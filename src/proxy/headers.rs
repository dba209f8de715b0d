//! Header rewriting on the live path: hop-by-hop headers are connection-scoped (RFC 9110 §7.6.1)
//! and must not be forwarded; everything else passes untouched.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Whether a header is hop-by-hop by definition, whether or not `Connection` names it.
/// Standard names compare as enum tags, so this costs a few comparisons per header.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::TRAILER
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
        || name == header::TE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Remove hop-by-hop headers, including those listed in `Connection`. `TE` is hop-by-hop too,
/// but `TE: trailers` must reach an HTTP/2 upstream for gRPC, so it is kept when `keep_te_trailers`.
///
/// Most requests carry none, so one pass over the names decides; only then is anything looked
/// up or removed (removing by name hashes it, which was a tenth of a request's cost).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    let only_connection = {
        let mut hop = headers.keys().filter(|k| is_hop_by_hop(k));
        match hop.next() {
            None => return,
            Some(first) => first == header::CONNECTION && hop.next().is_none(),
        }
    };
    // Nearly every HTTP/1.1 response (and many requests) carries `Connection: keep-alive` (or
    // `close`) and no other hop-by-hop header: remove it with one lookup, without gathering
    // names into lists (that path was a twentieth of a proxied request's instructions).
    if only_connection {
        if let header::Entry::Occupied(e) = headers.entry(header::CONNECTION) {
            if e.iter().all(names_no_header) {
                e.remove();
                return;
            }
        }
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // The usual tokens name no header to remove beyond the hop-by-hop ones; skipping them
        // saves parsing (and allocating) a header name on nearly every response.
        .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let te_trailers = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_hop_by_hop(k))
        .cloned()
        .collect();
    for name in hop {
        headers.remove(name);
    }
    if keep_te_trailers && te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Whether a `Connection` value names no header beyond the hop-by-hop ones (`keep-alive`,
/// `close`, or nothing).
fn names_no_header(v: &HeaderValue) -> bool {
    v.as_bytes().split(|&b| b == b',').all(|t| {
        let t = t.trim_ascii();
        t.is_empty() || t.eq_ignore_ascii_case(b"keep-alive") || t.eq_ignore_ascii_case(b"close")
    })
}

/// Append the client address to `X-Forwarded-For` (comma-separated, as the de-facto standard).
pub fn append_forwarded_for(headers: &mut HeaderMap, client: std::net::IpAddr) {
    let ip = client.to_string();
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_standard_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("te", HeaderValue::from_static("trailers, deflate"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        let mut h2 = h.clone();
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
        strip_hop_by_hop(&mut h2, true);
        assert_eq!(h2.get("te").unwrap(), "trailers");
    }

    #[test]
    fn a_lone_keep_alive_connection_header_goes_and_named_ones_still_do() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Keep-Alive"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
        // Connection is the only hop-by-hop name, but it names another header.
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn leaves_end_to_end_headers_alone() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-request-id", HeaderValue::from_static("abc"));
        let before = h.clone();
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h, before);
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h, before);
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "10.0.0.1".parse().unwrap());
        append_forwarded_for(&mut h, "::1".parse().unwrap());
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1, ::1");
    }
}
