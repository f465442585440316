//! A read-only view of the request head the decision needs, and query-string helpers.

use weft_sdk::http::{decode, parse_query, split_path};

/// The request as the filter saw it at the request-headers phase.
#[derive(Clone, Debug, Default)]
pub struct RequestView {
    pub method: String,
    /// `:path`, query included.
    pub path: String,
    /// Lower-case names (as proxy-wasm hosts give them), in order.
    pub headers: Vec<(String, String)>,
}

impl RequestView {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let (_, query) = split_path(&self.path);
        parse_query(query)
            .into_iter()
            .find_map(|(k, v)| (k == name).then_some(v))
    }
}

/// `path` with every `name=...` query parameter removed (the `?` too when none is left).
pub fn without_query_param(path: &str, name: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            decode(key) != name
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}
