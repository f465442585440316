//! Header rules for forwarding: hop-by-hop headers removed both ways, and the
//! `x-forwarded-*` and `x-request-id` headers set on the way upstream.

use std::net::IpAddr;

use http::header::{
    CONNECTION, CONTENT_LENGTH, HeaderName, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
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

/// Whether `name` is one of the hop-by-hop headers every message loses at a proxy.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    // By length first: most names are ruled out without a comparison.
    let name = name.as_str();
    match name.len() {
        2 => name == "te",
        7 => name == "trailer" || name == "upgrade",
        10 => name == "connection" || name == "keep-alive",
        16 => name == "proxy-connection",
        17 => name == "transfer-encoding",
        _ => false,
    }
}

/// Which of the fields the request path looks for a request head may carry, so that it
/// looks up only those. weft's HTTP/1 parser knows, from its one pass over the fields; a
/// head from anywhere else may carry any ([`Present::ANY`]), as may one filters had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Present(u8);

impl Present {
    pub const NONE: Present = Present(0);
    pub const ANY: Present = Present(u8::MAX);
    const HOP_BY_HOP: u8 = 1;
    const CONTENT_LENGTH: u8 = 2;
    const FORWARDED: u8 = 4;
    const REQUEST_ID: u8 = 8;

    /// Notes a field the head carries.
    pub fn note(&mut self, name: &HeaderName) {
        self.0 |= if name == CONTENT_LENGTH {
            Self::CONTENT_LENGTH
        } else if name == X_FORWARDED_FOR || name == X_FORWARDED_PROTO {
            Self::FORWARDED
        } else if name == X_REQUEST_ID {
            Self::REQUEST_ID
        } else if is_hop_by_hop(name) {
            Self::HOP_BY_HOP
        } else {
            0
        };
    }

    pub fn hop_by_hop(self) -> bool {
        self.0 & Self::HOP_BY_HOP != 0
    }

    pub fn content_length(self) -> bool {
        self.0 & Self::CONTENT_LENGTH != 0
    }

    fn forwarded(self) -> bool {
        self.0 & Self::FORWARDED != 0
    }

    fn request_id(self) -> bool {
        self.0 & Self::REQUEST_ID != 0
    }
}

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
        && headers
            .get_all(TE)
            .iter()
            .any(|v| lists(v.as_bytes(), "trailers"));
    if present & (1 << CONNECTION_INDEX) != 0 {
        let mut connection = ConnectionField::default();
        for value in headers.get_all(CONNECTION) {
            connection.read(value.as_bytes());
        }
        connection.remove_named(headers);
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

/// What the `Connection` header of a head says (RFC 9110 §7.6.1), read value by value as
/// a parser meets them: `close`, `keep-alive`, and the other headers it names, which are
/// hop-by-hop too.
#[derive(Debug, Default)]
pub struct ConnectionField {
    pub close: bool,
    pub keep_alive: bool,
    named: Vec<HeaderName>,
}

impl ConnectionField {
    /// Reads one value (a value that is not visible ASCII lists nothing).
    pub fn read(&mut self, value: &[u8]) {
        if !visible_ascii(value) {
            return;
        }
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if let Ok(name) = HeaderName::from_bytes(token) {
                self.named.push(name);
            }
        }
    }

    /// Removes the headers it names from `headers`.
    pub fn remove_named(&self, headers: &mut HeaderMap) {
        for name in &self.named {
            headers.remove(name);
        }
    }
}

/// Whether a header value lists `token` (a comma-separated list), in any case. A value
/// that is not visible ASCII lists nothing.
pub fn lists(value: &[u8], token: &str) -> bool {
    visible_ascii(value)
        && value
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether a header value is visible ASCII (with spaces and tabs), as
/// [`HeaderValue::to_str`] requires: only such a value can be a list of tokens.
pub fn visible_ascii(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
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
pub fn set_forwarded(
    headers: &mut HeaderMap,
    present: Present,
    client: &HeaderValue,
    proto: &'static str,
) {
    if !present.forwarded() {
        headers.append(X_FORWARDED_FOR.clone(), client.clone());
        headers.append(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
        return;
    }
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
pub fn ensure_request_id(headers: &mut HeaderMap, present: Present) -> HeaderValue {
    if present.request_id() {
        if let Some(v) = headers.get(&X_REQUEST_ID) {
            if !v.is_empty() && v.len() <= 128 {
                return v.clone();
            }
        }
    }
    let id = new_request_id();
    if present.request_id() {
        headers.insert(X_REQUEST_ID.clone(), id.clone());
    } else {
        headers.append(X_REQUEST_ID.clone(), id.clone());
    }
    id
}

fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // UUID version 4 (the 13th hex digit), variant 1 (the top two bits of the 17th).
    let high = fastrand::u64(..) & !(0xf << 12) | (0x4 << 12);
    let low = fastrand::u64(..) & !(0x3 << 62) | (0x2 << 62);
    let mut digits = [0u8; 32];
    let bytes = (u128::from(high) << 64 | u128::from(low)).to_be_bytes();
    for (pair, byte) in digits.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    let mut out = [b'-'; 36];
    out[..8].copy_from_slice(&digits[..8]);
    out[9..13].copy_from_slice(&digits[8..12]);
    out[14..18].copy_from_slice(&digits[12..16]);
    out[19..23].copy_from_slice(&digits[16..20]);
    out[24..].copy_from_slice(&digits[20..]);
    HeaderValue::from_bytes(&out).expect("hex digits and dashes are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_names_are_known() {
        assert!(HOP_BY_HOP.iter().all(is_hop_by_hop));
        for other in [
            "trailers",
            "tk",
            "x-upgrade",
            "content-length",
            "connectionx",
            "host",
        ] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(other)), "{other}");
        }
    }

    #[test]
    fn only_visible_ascii_values_list_tokens() {
        assert!(lists(b"gzip, Trailers", "trailers"));
        assert!(!lists(b"trailers, \x80", "trailers"));
        let mut connection = ConnectionField::default();
        connection.read(b"close, x-secret\x80");
        connection.read(b"x-named");
        assert!(!connection.close);
        assert_eq!(connection.named, [HeaderName::from_static("x-named")]);
    }

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
            Present::NONE,
            &client_address_value("10.0.0.1".parse().unwrap()),
            "http",
        );
        set_forwarded(
            &mut h,
            Present::ANY,
            &client_address_value("::1".parse().unwrap()),
            "http",
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, ::1");
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    #[test]
    fn request_id_kept_or_made() {
        let mut h = HeaderMap::new();
        let id = ensure_request_id(&mut h, Present::NONE);
        assert_eq!(id.len(), 36);
        let text = id.to_str().unwrap();
        assert_eq!(&text[14..15], "4");
        assert!("89ab".contains(&text[19..20]), "{text}");
        assert_eq!(text.matches('-').count(), 4);
        assert!(
            [8, 13, 18, 23].iter().all(|&i| &text[i..=i] == "-"),
            "{text}"
        );
        assert_eq!(h["x-request-id"], id);
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc"));
        assert_eq!(ensure_request_id(&mut h, Present::ANY), "abc");
        let mut noted = Present::NONE;
        noted.note(&X_REQUEST_ID);
        assert_eq!(ensure_request_id(&mut h, noted), "abc");
    }
}
