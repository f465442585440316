//! Request and response headers, the query string and cookies, for the HTTP context whose
//! callback is running.
//!
//! Header names are case-insensitive: they are lowercased before they reach the host (as
//! HTTP/2 and Envoy require). The request line is in the pseudo-headers `:method`,
//! `:path` (with the query string), `:authority` and `:scheme`; the response status in
//! `:status`. Where a header has several values the host joins them with `,`.

use std::borrow::Cow;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;

fn lower(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

// The SDK panics on every status a host may give these calls other than the ones it maps
// to `Ok`, so their `Err` arm is unreachable; the helpers do not pass it on.
fn get(map: MapType, name: &str) -> Option<String> {
    hostcalls::get_map_value(map, &lower(name)).ok().flatten()
}
fn set(map: MapType, name: &str, value: &str) {
    let _ = hostcalls::set_map_value(map, &lower(name), Some(value));
}
fn add(map: MapType, name: &str, value: &str) {
    let _ = hostcalls::add_map_value(map, &lower(name), value);
}
fn remove(map: MapType, name: &str) {
    let _ = hostcalls::remove_map_value(map, &lower(name));
}
fn all(map: MapType) -> Vec<(String, String)> {
    hostcalls::get_map(map).unwrap_or_default()
}

/// The request of the running HTTP context (request phases; readable in response phases
/// too on Weft).
#[derive(Debug)]
pub struct Request;

impl Request {
    /// A header's value (`None` when absent).
    pub fn header(name: &str) -> Option<String> {
        get(MapType::HttpRequestHeaders, name)
    }
    /// Sets a header, replacing any values it had.
    pub fn set_header(name: &str, value: &str) {
        set(MapType::HttpRequestHeaders, name, value)
    }
    /// Adds a value to a header.
    pub fn add_header(name: &str, value: &str) {
        add(MapType::HttpRequestHeaders, name, value)
    }
    /// Removes a header.
    pub fn remove_header(name: &str) {
        remove(MapType::HttpRequestHeaders, name)
    }
    /// Every header, pseudo-headers first.
    pub fn headers() -> Vec<(String, String)> {
        all(MapType::HttpRequestHeaders)
    }
    /// `:method`.
    pub fn method() -> Option<String> {
        Request::header(":method")
    }
    /// `:path` without the query string.
    pub fn path() -> Option<String> {
        let path = Request::header(":path")?;
        Some(split_path(&path).0.to_string())
    }
    /// The query parameters of `:path`, decoded, in order.
    pub fn query() -> Vec<(String, String)> {
        Request::header(":path")
            .map(|p| parse_query(split_path(&p).1))
            .unwrap_or_default()
    }
    /// The first value of the query parameter `name`, decoded.
    pub fn query_param(name: &str) -> Option<String> {
        Request::query()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
    /// The value of the cookie `name` (from every `cookie` header).
    pub fn cookie(name: &str) -> Option<String> {
        Request::headers()
            .iter()
            .filter(|(k, _)| k == "cookie")
            .find_map(|(_, v)| {
                parse_cookies(v)
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
    }
}

/// The response of the running HTTP context (response phases).
#[derive(Debug)]
pub struct Response;

impl Response {
    /// A header's value (`None` when absent).
    pub fn header(name: &str) -> Option<String> {
        get(MapType::HttpResponseHeaders, name)
    }
    /// Sets a header, replacing any values it had.
    pub fn set_header(name: &str, value: &str) {
        set(MapType::HttpResponseHeaders, name, value)
    }
    /// Adds a value to a header.
    pub fn add_header(name: &str, value: &str) {
        add(MapType::HttpResponseHeaders, name, value)
    }
    /// Removes a header.
    pub fn remove_header(name: &str) {
        remove(MapType::HttpResponseHeaders, name)
    }
    /// Every header, `:status` first.
    pub fn headers() -> Vec<(String, String)> {
        all(MapType::HttpResponseHeaders)
    }
    /// `:status` as a number.
    pub fn status() -> Option<u16> {
        Response::header(":status")?.parse().ok()
    }
}

/// Splits a `:path` into the path and the query string (without the `?`, and without a
/// `#fragment`).
pub fn split_path(path: &str) -> (&str, &str) {
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    path.split_once('?').unwrap_or((path, ""))
}

/// Parses a query string (`a=1&b=x%20y&c`) into decoded pairs; `+` is a space, a missing
/// `=` gives an empty value, empty segments are skipped.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap_or((s, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decodes a query component (`+` is a space); invalid escapes stay as they are,
/// and bytes that do not form UTF-8 become U+FFFD.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The `name=value` pairs of a `cookie` header (`a=1; b=2`), trimmed, values unquoted.
pub fn parse_cookies(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|part| {
        let (k, v) = part.split_once('=')?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        Some((k.trim(), v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_at_the_query_and_drop_the_fragment() {
        assert_eq!(split_path("/a/b?x=1&y=2"), ("/a/b", "x=1&y=2"));
        assert_eq!(split_path("/a"), ("/a", ""));
        assert_eq!(split_path("/a?x=1#top"), ("/a", "x=1"));
        assert_eq!(split_path("/a#f?x"), ("/a", ""));
    }

    #[test]
    fn query_strings_are_decoded() {
        assert_eq!(
            parse_query("a=1&b=x%20y&c&&d=%E2%82%AC+ok&e=%zz%4"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "".into()),
                ("d".into(), "€ ok".into()),
                ("e".into(), "%zz%4".into()),
            ]
        );
        assert_eq!(parse_query(""), vec![]);
        assert_eq!(decode("%41%"), "A%");
    }

    #[test]
    fn cookies_are_split_trimmed_and_unquoted() {
        let c: Vec<_> = parse_cookies("sid=abc; theme=\"dark\";flag; empty=").collect();
        assert_eq!(c, vec![("sid", "abc"), ("theme", "dark"), ("empty", "")]);
        assert_eq!(lower("X-Foo"), "x-foo");
        assert!(matches!(lower("x-foo"), Cow::Borrowed(_)));
    }
}
