//! Matching a request against a rule: path (exact, prefix, whole-path regex), method,
//! headers and query parameters. Pure code over a [`RequestView`], read from the host once
//! per request.

use std::cell::OnceCell;

use weft_sdk::http::{parse_cookies, parse_query, split_path};

/// The parts of a request the rules look at.
#[derive(Debug)]
pub struct RequestView {
    /// Every header, pseudo-headers included, names lowercase, one pair per value.
    headers: Vec<(String, String)>,
    method: String,
    /// `:path` without the query.
    path: String,
    /// The raw query string (without `?`), empty when there is none.
    raw_query: String,
    query: OnceCell<Vec<(String, String)>>,
}

impl RequestView {
    /// A view of a request given by its headers as the host lists them.
    pub fn new(headers: Vec<(String, String)>) -> RequestView {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map_or("", |(_, v)| v.as_str())
        };
        let method = get(":method").to_string();
        let (path, query) = split_path(get(":path"));
        let (path, raw_query) = (path.to_string(), query.to_string());
        RequestView {
            headers,
            method,
            path,
            raw_query,
            query: OnceCell::new(),
        }
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn raw_query(&self) -> &str {
        &self.raw_query
    }

    /// Every value of the header `name` (lowercase).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of the header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of the cookie `name`, from any `cookie` header.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .find_map(|(_, h)| parse_cookies(h).find(|(k, _)| *k == name).map(|(_, v)| v))
    }
    fn query(&self) -> &[(String, String)] {
        self.query.get_or_init(|| parse_query(&self.raw_query))
    }
}

/// How a rule matches the path (never the query).
#[derive(Debug)]
pub enum PathMatch {
    Exact(String),
    /// A string prefix, as in weft's routes: `/api` matches `/api2` too.
    Prefix(String),
    /// Anchored at compile time: it must match the whole path.
    Regex(regex_lite::Regex),
}

/// What a header or query value must be.
#[derive(Debug)]
pub enum ValueTest {
    Exact(String),
    Prefix(String),
    /// Anchored: the whole value.
    Regex(regex_lite::Regex),
    /// `true`: the name is there (any value); `false`: it is not.
    Present(bool),
}

impl ValueTest {
    /// Whether some value passes (for `Present`, whether there is one at all).
    fn test<'a>(&self, mut values: impl Iterator<Item = &'a str>) -> bool {
        match self {
            ValueTest::Exact(e) => values.any(|v| v == e),
            ValueTest::Prefix(p) => values.any(|v| v.starts_with(p.as_str())),
            ValueTest::Regex(r) => values.any(|v| r.is_match(v)),
            ValueTest::Present(want) => values.next().is_some() == *want,
        }
    }
}

/// A header (name lowercase) or query parameter (name decoded) and its test.
#[derive(Debug)]
pub struct ValueMatch {
    pub name: String,
    pub test: ValueTest,
}

/// All given conditions must hold; an empty matcher matches everything.
#[derive(Debug, Default)]
pub struct Matcher {
    pub path: Option<PathMatch>,
    /// Upper-case; empty: any method.
    pub methods: Vec<String>,
    pub headers: Vec<ValueMatch>,
    pub query: Vec<ValueMatch>,
}

impl Matcher {
    /// The path prefix this matcher requires, for prefix rewrites.
    pub fn prefix(&self) -> Option<&str> {
        match &self.path {
            Some(PathMatch::Prefix(p)) => Some(p),
            _ => None,
        }
    }

    pub fn matches(&self, req: &RequestView) -> bool {
        let path_ok = match &self.path {
            None => true,
            Some(PathMatch::Exact(p)) => req.path() == p,
            Some(PathMatch::Prefix(p)) => req.path().starts_with(p.as_str()),
            Some(PathMatch::Regex(r)) => r.is_match(req.path()),
        };
        path_ok
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == req.method()))
            && self
                .headers
                .iter()
                .all(|h| h.test.test(req.header_values(&h.name)))
            && self.query.iter().all(|q| {
                let values = req
                    .query()
                    .iter()
                    .filter(|(k, _)| *k == q.name)
                    .map(|(_, v)| v.as_str());
                q.test.test(values)
            })
    }
}
