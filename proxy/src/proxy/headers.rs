//! Header rules for forwarding: hop-by-hop headers removed both ways, and the
//! `x-forwarded-*` and `x-request-id` headers set on the way upstream.

use std::net::IpAddr;

use http::header::{CONNECTION, HeaderName, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderValue};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Where `connection` and `te` are in [`HOP_BY_HOP`].
const CONNECTION_INDEX: usize = 0;
const TE_INDEX: usize = 3;
/// Connection-level headers (RFC 9110 §7.6.1) that never cross a proxy. As `HeaderName`s,
/// so that looking them up does not parse a string each time.
static HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes hop-by-hop headers and any header the `Connection` header names. `te: trailers`
/// is kept on requests when asked (gRPC needs it end to end).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    // One pass over the names (no hashing) finds which of them are present; most requests
    // have none, most HTTP/1.1 responses only `connection`.
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    let te_trailers = keep_te_trailers
        && present & (1 << TE_INDEX) != 0
        && headers.get_all(TE).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        });
    if present & (1 << CONNECTION_INDEX) != 0 {
        let named: Vec<HeaderName> = connection_options(headers)
            // The usual tokens name hop-by-hop headers removed below anyway.
            .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    debug_assert!(!headers.contains_key(TRANSFER_ENCODING) && !headers.contains_key(UPGRADE));
}

/// The options the `Connection` header lists (RFC 9110 §7.6.1), trimmed.
pub fn connection_options(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Whether the `Connection` header lists `option` (`close`, `keep-alive`), in any case.
pub fn connection_has(headers: &HeaderMap, option: &str) -> bool {
    connection_options(headers).any(|o| o.eq_ignore_ascii_case(option))
}

/// A `content-length` value: 1 to 19 ASCII digits (so it always fits a `u64`), nothing
/// else (no sign, no spaces, no list). `None` for anything invalid.
pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Appends the client's address to `x-forwarded-for` and sets `x-forwarded-proto`.
pub fn set_forwarded(headers: &mut HeaderMap, client: &HeaderValue, proto: &'static str) {
    let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => {
            HeaderValue::from_str(&format!("{prev}, {}", client.to_str().unwrap_or_default())).ok()
        }
        _ => Some(client.clone()),
    };
    if let Some(v) = value {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
}

/// The client address as an `x-forwarded-for` value (made once per connection).
pub fn client_address_value(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_string()).expect("an IP address is a valid header value")
}

/// Keeps a sane incoming `x-request-id`, or sets a new random (UUID v4 form) one.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        if !v.is_empty() && v.len() <= 128 {
            return v.clone();
        }
    }
    let id = new_request_id();
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = fastrand::u128(..);
    // UUID version 4, variant 1.
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let mut out = [0u8; 36];
    let mut nibble = 0;
    for (i, byte) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            *byte = b'-';
        } else {
            *byte = HEX[((bits >> (124 - 4 * nibble)) & 0xf) as usize];
            nibble += 1;
        }
    }
    HeaderValue::from_bytes(&out).expect("hex digits and dashes are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_listed_headers_go() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers, deflate"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let mut requests = h.clone();
        strip_hop_by_hop(&mut requests, true);
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert_eq!(requests["te"], "trailers");
        assert_eq!(requests["x-kept"], "yes");
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        set_forwarded(
            &mut h,
            &client_address_value("10.0.0.1".parse().unwrap()),
            "http",
        );
        set_forwarded(
            &mut h,
            &client_address_value("::1".parse().unwrap()),
            "http",
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, ::1");
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    #[test]
    fn request_id_kept_or_made() {
        let mut h = HeaderMap::new();
        let id = ensure_request_id(&mut h);
        assert_eq!(id.len(), 36);
        assert_eq!(&id.to_str().unwrap()[14..15], "4");
        assert_eq!(h["x-request-id"], id);
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc"));
        assert_eq!(ensure_request_id(&mut h), "abc");
    }
}
