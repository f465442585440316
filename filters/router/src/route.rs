//! A compiled rule and what it does to a matched request: choose the cluster (one, or a
//! weighted split, optionally sticky), rewrite the path and host, redirect, or answer
//! directly. Pure code: the filter ([`crate::filter`]) carries the decision out.

use weft_sdk::hash::fnv1a64;

use crate::matcher::{Matcher, RequestView};

/// One rule of the config, compiled.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub matcher: Matcher,
    pub action: RouteAction,
}

/// What a matched rule does.
#[derive(Debug)]
pub enum RouteAction {
    Forward(Forward),
    Redirect(Redirect),
    Direct(Direct),
}

/// Forward to a cluster chosen through the routing contract (`weft.cluster`).
#[derive(Debug)]
pub struct Forward {
    pub target: Target,
    /// (matched prefix, replacement).
    pub prefix_rewrite: Option<(String, String)>,
    pub host_rewrite: Option<String>,
}

/// Which cluster.
#[derive(Debug)]
pub enum Target {
    Cluster(String),
    /// Clusters with their weights (some may be 0); `total` is their sum, more than 0.
    Split {
        clusters: Vec<(String, u64)>,
        total: u64,
        sticky: Option<Sticky>,
    },
}

/// What keeps a client on one side of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    Cookie(String),
    /// Lowercase.
    Header(String),
}

/// A redirect; `None` fields keep the request's value.
#[derive(Debug)]
pub struct Redirect {
    pub status: u32,
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub prefix_rewrite: Option<(String, String)>,
    pub strip_query: bool,
}

/// A response the filter gives itself.
#[derive(Debug)]
pub struct Direct {
    pub status: u32,
    pub body: String,
    pub content_type: String,
}

/// What of the request head a set of rules can look at, worked out once per config: a
/// request then reads `:method` and `:path` alone instead of its whole header map when no
/// rule looks at other headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Every header: a rule matches headers, a split is sticky (cookie or header), or a
    /// redirect builds its location from `:scheme` and `:authority`.
    pub all_headers: bool,
    /// A rule matches the method.
    pub method: bool,
    /// A rule matches the path or the query, or rewrites the path prefix.
    pub path: bool,
}

impl Needs {
    pub fn of(routes: &[Route]) -> Needs {
        let mut needs = Needs::default();
        for r in routes {
            let m = &r.matcher;
            needs.all_headers |= !m.headers.is_empty();
            needs.method |= !m.methods.is_empty();
            needs.path |= m.path.is_some() || !m.query.is_empty();
            match &r.action {
                RouteAction::Forward(f) => {
                    needs.path |= f.prefix_rewrite.is_some();
                    if let Target::Split { sticky, .. } = &f.target {
                        needs.all_headers |= sticky.is_some();
                    }
                }
                RouteAction::Redirect(_) => needs.all_headers = true,
                RouteAction::Direct(_) => {}
            }
        }
        needs
    }
}

/// The first rule that matches the request.
pub fn select<'a>(routes: &'a [Route], req: &RequestView) -> Option<&'a Route> {
    routes.iter().find(|r| r.matcher.matches(req))
}

impl Target {
    /// The cluster for this request. `random` is called only when the choice is not
    /// sticky (no split, or no sticky value on the request).
    pub fn choose(&self, req: &RequestView, random: impl FnOnce() -> u64) -> &str {
        match self {
            Target::Cluster(name) => name,
            Target::Split {
                clusters,
                total,
                sticky,
            } => {
                let key = sticky.as_ref().and_then(|s| match s {
                    Sticky::Cookie(name) => req.cookie(name),
                    Sticky::Header(name) => req.header(name),
                });
                let roll = match key {
                    Some(value) => fnv1a64(value.as_bytes()),
                    None => random(),
                };
                pick(clusters, *total, roll)
            }
        }
    }
}

/// The cluster whose share of `0..total` holds `roll % total` (weights laid end to end
/// in config order, so raising the last cluster's weight only moves clients onto it).
pub fn pick(clusters: &[(String, u64)], total: u64, roll: u64) -> &str {
    let mut point = roll % total.max(1);
    for (name, weight) in clusters {
        if point < *weight {
            return name;
        }
        point -= weight;
    }
    // Unreachable while `total` is the sum of the weights; the last one is a safe answer.
    clusters.last().map_or("", |(name, _)| name.as_str())
}

/// `path` with `old` (a prefix it has) replaced by `new`.
pub fn rewrite_prefix(path: &str, old: &str, new: &str) -> String {
    let rest = path.strip_prefix(old).unwrap_or(path);
    let mut out = String::with_capacity(new.len() + rest.len());
    out.push_str(new);
    // "/api/" + "/x" or "/api" + "x" would give a double or a missing slash only by the
    // config's own choice; one exception keeps `prefix: /api, prefix_rewrite: /` tidy.
    if new.ends_with('/') && rest.starts_with('/') {
        out.push_str(&rest[1..]);
    } else {
        out.push_str(rest);
    }
    out
}

/// `path` and `query` as a `:path` value.
pub fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

impl Forward {
    /// The new `:path`, when the rule rewrites it.
    pub fn new_path(&self, req: &RequestView) -> Option<String> {
        let (old, new) = self.prefix_rewrite.as_ref()?;
        Some(with_query(
            rewrite_prefix(req.path(), old, new),
            req.raw_query(),
        ))
    }
}

impl Redirect {
    /// The `location` for this request: an absolute URL.
    pub fn location(&self, req: &RequestView) -> String {
        let scheme = self
            .scheme
            .as_deref()
            .or_else(|| req.header(":scheme"))
            .unwrap_or("http");
        let host = self
            .host
            .as_deref()
            .or_else(|| req.header(":authority"))
            .or_else(|| req.header("host"))
            .unwrap_or("");
        let path = match (&self.path, &self.prefix_rewrite) {
            (Some(p), _) => p.clone(),
            (None, Some((old, new))) => rewrite_prefix(req.path(), old, new),
            (None, None) => req.path().to_string(),
        };
        let query = if self.strip_query {
            ""
        } else {
            req.raw_query()
        };
        with_query(format!("{scheme}://{host}{path}"), query)
    }
}
