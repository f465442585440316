//! Route selection: the first route of a listener whose match accepts the request wins.
//! Matching reads only the request head (host, path, method, headers, query).

use std::borrow::Cow;

use http::HeaderMap;
use http::request::Parts;

use crate::config::{HostMatch, PathMatch, Route, RouteMatch, ValueMatch, ValueTest};

#[cfg(test)]
mod tests;

/// The parts of a request head that routes match on.
#[derive(Debug)]
pub struct RequestHead<'a> {
    /// Lower-case host without port (from `:authority` or `Host`).
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a http::Method,
    pub headers: &'a HeaderMap,
    /// The verified client certificate's identity, on an mTLS connection.
    pub peer: Option<&'a crate::tls::PeerIdentity>,
}

impl<'a> RequestHead<'a> {
    /// `host` must already be lower-cased and stripped of its port (see [`request_host`]).
    pub fn new(parts: &'a Parts, host: &'a str) -> Self {
        RequestHead {
            host,
            path: parts.uri.path(),
            query: parts.uri.query(),
            method: &parts.method,
            headers: &parts.headers,
            peer: None,
        }
    }

    /// With the client certificate's identity (mTLS).
    pub fn with_peer(mut self, peer: Option<&'a crate::tls::PeerIdentity>) -> Self {
        self.peer = peer;
        self
    }
}

/// The request's authority as a header value: the request target's (absolute form,
/// HTTP/2's `:authority`), else the `Host` header itself (shared, not copied).
pub fn request_authority(parts: &Parts) -> Option<http::HeaderValue> {
    match parts.uri.authority() {
        Some(authority) => http::HeaderValue::from_str(authority.as_str()).ok(),
        None => parts
            .headers
            .get(http::header::HOST)
            .filter(|h| h.to_str().is_ok())
            .cloned(),
    }
}

/// Lower-case host without the port, for matching (borrowed when already lower-case).
pub fn request_host(authority: Option<&str>) -> std::borrow::Cow<'_, str> {
    let authority = authority.unwrap_or("");
    let host = if authority.starts_with('[') {
        // [v6]:port
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

/// Index of the first route that matches.
pub fn select(routes: &[Route], head: &RequestHead<'_>) -> Option<usize> {
    routes.iter().position(|r| matches(&r.matcher, head))
}

/// Whether one route's match accepts the request.
pub fn matches(m: &RouteMatch, head: &RequestHead<'_>) -> bool {
    if let Some(host) = &m.host {
        let ok = match host {
            HostMatch::Any => true,
            HostMatch::Exact(h) => head.host == h,
            HostMatch::Suffix(s) => head.host.len() > s.len() && head.host.ends_with(s.as_str()),
        };
        if !ok {
            return false;
        }
    }
    if let Some(path) = &m.path {
        let ok = match path {
            PathMatch::Exact(p) => head.path == p,
            PathMatch::Prefix(p) => head.path.starts_with(p.as_str()),
            PathMatch::Regex(re) => re.is_match(head.path),
        };
        if !ok {
            return false;
        }
    }
    if let Some(methods) = &m.methods {
        if !methods.contains(head.method) {
            return false;
        }
    }
    let headers_ok = m.headers.iter().all(|h| {
        let values = head
            .headers
            .get_all(h.name.as_str())
            .iter()
            .map(|v| Cow::Borrowed(v.to_str().unwrap_or("")));
        test_values(h, values)
    });
    if !headers_ok {
        return false;
    }
    let peer_ok = m.peer.iter().all(|p| {
        let values: Vec<&str> = match (head.peer, p.name.as_str()) {
            (None, _) => Vec::new(),
            (Some(id), "uri_san") => id.uri_sans.iter().map(String::as_str).collect(),
            (Some(id), "dns_san") => id.dns_sans.iter().map(String::as_str).collect(),
            (Some(id), _) => vec![id.subject.as_str()],
        };
        test_values(p, values.into_iter().map(Cow::Borrowed))
    });
    if !peer_ok {
        return false;
    }
    m.query.iter().all(|q| {
        let values = query_values(head.query, &q.name);
        test_values(q, values)
    })
}

fn test_values<'v>(m: &ValueMatch, mut values: impl Iterator<Item = Cow<'v, str>>) -> bool {
    match &m.test {
        ValueTest::Present(want) => values.next().is_some() == *want,
        ValueTest::Exact(want) => values.any(|v| v == want.as_str()),
        ValueTest::Regex(re) => values.any(|v| re.is_match(&v)),
    }
}

/// The decoded values of query parameter `name` (`+` is a space, `%XX` is decoded).
pub fn query_values<'q>(
    query: Option<&'q str>,
    name: &'q str,
) -> impl Iterator<Item = Cow<'q, str>> + 'q {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(move |pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
}

/// Decodes `%XX` escapes and `+`; malformed escapes are kept as written.
pub fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
