//! A read-only view of the request head the decision needs, and query-string helpers.

use weft_sdk::http::{decode, parse_query, split_path};

use crate::config::Config;
use crate::credentials::TokenSource;

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

/// The parts of the request head a config's decision can look at, worked out once per
/// config, so a request reads those (single header values) instead of its whole header
/// map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// A rule matches on the method, or the check request carries it.
    pub method: bool,
    /// A rule matches on the path, a credential may be in the query, or the check request
    /// carries the path.
    pub path: bool,
    /// The headers credentials are looked for in (lower-case, each once).
    pub headers: Vec<String>,
    /// Every header, in order: the check request to the authorization service copies the
    /// allowed ones as the request has them.
    pub all_headers: bool,
}

impl Needs {
    pub fn of(config: &Config) -> Needs {
        let rules = config.rules.iter().chain(config.default.as_ref());
        let mut needs = Needs {
            method: rules.clone().any(|r| !r.matcher.methods.is_empty()),
            path: rules.clone().any(|r| r.matcher.path.is_some()),
            headers: Vec::new(),
            all_headers: config.ext_authz.is_some(),
        };
        if needs.all_headers {
            needs.method = true;
            needs.path = true;
        }
        let sources = config
            .providers
            .iter()
            .flat_map(|p| &p.sources)
            .chain(config.api_keys.iter().flat_map(|k| &k.sources));
        for source in sources {
            match source {
                TokenSource::Header { name, .. } => needs.add_header(name),
                TokenSource::Param(_) => needs.path = true,
            }
        }
        if config.basic.is_some() {
            needs.add_header("authorization");
        }
        needs
    }

    fn add_header(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        if !self.headers.contains(&name) {
            self.headers.push(name);
        }
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
