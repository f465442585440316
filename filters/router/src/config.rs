//! The router's configuration: the JSON the filter entry's `config:` holds, as serde reads
//! it ([`Config`]), and [`Config::compile`], which checks what serde cannot (one action per
//! rule, weights, regexes, statuses) and builds the [`Route`]s the filter runs. Every error
//! names its field: `routes[2].match.path.regex: ...`.

use serde::Deserialize;

use crate::matcher::{Matcher, PathMatch, ValueMatch, ValueTest};
use crate::route::{Direct, Forward, Redirect, Route, RouteAction, Sticky, Target};

/// The whole configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Tried in order; the first that matches wins.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// One rule: a match and exactly one action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// In logs; default `route<index>`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matcher: MatchConfig,
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub weighted_clusters: Option<Vec<WeightedCluster>>,
    /// With `weighted_clusters`: what keeps a client on one side of the split.
    #[serde(default)]
    pub sticky: Option<StickyConfig>,
    #[serde(default)]
    pub redirect: Option<RedirectConfig>,
    #[serde(default)]
    pub direct_response: Option<DirectConfig>,
    /// With `cluster` or `weighted_clusters`: replaces the matched path prefix.
    #[serde(default)]
    pub prefix_rewrite: Option<String>,
    /// With `cluster` or `weighted_clusters`: the new `:authority` (Host).
    #[serde(default)]
    pub host_rewrite: Option<String>,
}

/// All given conditions must hold; an empty match matches everything.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    #[serde(default)]
    pub path: Option<PathConfig>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: Vec<ValueMatchConfig>,
    #[serde(default)]
    pub query: Vec<ValueMatchConfig>,
}

/// `{"exact": P}`, `{"prefix": P}` or `{"regex": R}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathConfig {
    Exact(String),
    Prefix(String),
    Regex(String),
}

/// A header or query parameter test: `name` and exactly one of the others.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatchConfig {
    pub name: String,
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub present: Option<bool>,
}

/// One side of a weighted split.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedCluster {
    pub cluster: String,
    pub weight: u32,
}

/// `{"cookie": NAME}` or `{"header": NAME}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StickyConfig {
    Cookie(String),
    Header(String),
}

/// A redirect: what is not given is kept from the request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    #[serde(default)]
    pub status: Option<u32>,
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub prefix_rewrite: Option<String>,
    #[serde(default)]
    pub strip_query: bool,
}

/// A response the filter gives itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectConfig {
    pub status: u32,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub content_type: Option<String>,
}

/// A configuration error: the field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config: {}: {}", self.field, self.message)
    }
}

fn err<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        field: field.into(),
        message: message.into(),
    })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Text that may go in a header value or a path: no control characters.
fn check_text(field: &str, s: &str) -> Result<(), ConfigError> {
    if s.bytes().any(|b| b.is_ascii_control()) {
        return err(field, "control characters are not allowed");
    }
    Ok(())
}

fn check_path(field: &str, p: &str) -> Result<(), ConfigError> {
    check_text(field, p)?;
    if !p.starts_with('/') || p.contains(['?', '#', ' ']) {
        return err(
            field,
            format!("{p:?} is not a path (it starts with /, has no ?, # or space)"),
        );
    }
    Ok(())
}

/// A whole-value regex, compiled once here (anchored: it must match the whole value).
fn compile_regex(field: &str, re: &str) -> Result<regex_lite::Regex, ConfigError> {
    regex_lite::Regex::new(&format!("^(?:{re})$")).or_else(|e| err(field, e.to_string()))
}

impl Config {
    /// Checks the configuration and builds the routes.
    pub fn compile(self) -> Result<Vec<Route>, ConfigError> {
        self.routes
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.compile(&format!("routes[{i}]"), i))
            .collect()
    }
}

impl RouteConfig {
    fn compile(mut self, at: &str, index: usize) -> Result<Route, ConfigError> {
        let name = self.name.take().unwrap_or_else(|| format!("route{index}"));
        let matcher = std::mem::take(&mut self.matcher).compile(&format!("{at}.match"))?;
        let actions = [
            self.cluster.is_some(),
            self.weighted_clusters.is_some(),
            self.redirect.is_some(),
            self.direct_response.is_some(),
        ];
        if actions.iter().filter(|a| **a).count() != 1 {
            return err(
                at,
                "exactly one of cluster, weighted_clusters, redirect, direct_response is needed",
            );
        }
        let forwards = self.cluster.is_some() || self.weighted_clusters.is_some();
        if !forwards {
            for (set, field) in [
                (self.prefix_rewrite.is_some(), "prefix_rewrite"),
                (self.host_rewrite.is_some(), "host_rewrite"),
            ] {
                if set {
                    return err(
                        format!("{at}.{field}"),
                        "only goes with cluster or weighted_clusters",
                    );
                }
            }
        }
        if self.sticky.is_some() && self.weighted_clusters.is_none() {
            return err(format!("{at}.sticky"), "only goes with weighted_clusters");
        }
        let prefix = matcher.prefix().map(str::to_string);
        let action = if let Some(cluster) = self.cluster.take() {
            check_cluster(&format!("{at}.cluster"), &cluster)?;
            self.forward(at, Target::Cluster(cluster), prefix.as_deref())?
        } else if let Some(split) = self.weighted_clusters.take() {
            let target = compile_split(at, split, self.sticky.take())?;
            self.forward(at, target, prefix.as_deref())?
        } else if let Some(redirect) = self.redirect {
            RouteAction::Redirect(redirect.compile(&format!("{at}.redirect"), prefix)?)
        } else if let Some(direct) = self.direct_response {
            RouteAction::Direct(direct.compile(&format!("{at}.direct_response"))?)
        } else {
            unreachable!("exactly one action was checked above")
        };
        Ok(Route {
            name,
            matcher,
            action,
        })
    }

    fn forward(
        &self,
        at: &str,
        target: Target,
        prefix: Option<&str>,
    ) -> Result<RouteAction, ConfigError> {
        let prefix_rewrite = match &self.prefix_rewrite {
            None => None,
            Some(new) => {
                let field = format!("{at}.prefix_rewrite");
                let Some(old) = prefix else {
                    return err(field, "needs a prefix path match (match.path.prefix)");
                };
                check_path(&field, new)?;
                Some((old.to_string(), new.clone()))
            }
        };
        if let Some(host) = &self.host_rewrite {
            check_host(&format!("{at}.host_rewrite"), host)?;
        }
        Ok(RouteAction::Forward(Forward {
            target,
            prefix_rewrite,
            host_rewrite: self.host_rewrite.clone(),
        }))
    }
}

fn check_cluster(field: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return err(field, "a cluster name is needed");
    }
    check_text(field, name)
}

fn check_host(field: &str, host: &str) -> Result<(), ConfigError> {
    if host.is_empty() || host.contains(['/', ' ', '?', '#', '@']) {
        return err(field, format!("{host:?} is not a host[:port]"));
    }
    check_text(field, host)
}

fn compile_split(
    at: &str,
    split: Vec<WeightedCluster>,
    sticky: Option<StickyConfig>,
) -> Result<Target, ConfigError> {
    let field = format!("{at}.weighted_clusters");
    if split.is_empty() {
        return err(field, "at least one cluster is needed");
    }
    let mut total = 0u64;
    let mut clusters = Vec::with_capacity(split.len());
    for (i, c) in split.into_iter().enumerate() {
        check_cluster(&format!("{field}[{i}].cluster"), &c.cluster)?;
        total += u64::from(c.weight);
        clusters.push((c.cluster, u64::from(c.weight)));
    }
    if total == 0 {
        return err(field, "the weights must sum to more than 0");
    }
    let sticky = match sticky {
        None => None,
        Some(StickyConfig::Cookie(name)) if !name.is_empty() => Some(Sticky::Cookie(name)),
        Some(StickyConfig::Header(name)) if is_token(&name) => {
            Some(Sticky::Header(name.to_ascii_lowercase()))
        }
        Some(_) => return err(format!("{at}.sticky"), "not a cookie or header name"),
    };
    Ok(Target::Split {
        clusters,
        total,
        sticky,
    })
}

impl MatchConfig {
    fn compile(self, at: &str) -> Result<Matcher, ConfigError> {
        let path = match self.path {
            None => None,
            Some(PathConfig::Exact(p)) => {
                check_path(&format!("{at}.path.exact"), &p)?;
                Some(PathMatch::Exact(p))
            }
            Some(PathConfig::Prefix(p)) => {
                check_path(&format!("{at}.path.prefix"), &p)?;
                Some(PathMatch::Prefix(p))
            }
            Some(PathConfig::Regex(r)) => Some(PathMatch::Regex(compile_regex(
                &format!("{at}.path.regex"),
                &r,
            )?)),
        };
        let mut methods = Vec::with_capacity(self.methods.len());
        for (i, m) in self.methods.into_iter().enumerate() {
            if !is_token(&m) {
                return err(
                    format!("{at}.methods[{i}]"),
                    format!("{m:?} is not a method"),
                );
            }
            methods.push(m.to_ascii_uppercase());
        }
        let headers = compile_values(&format!("{at}.headers"), self.headers, true)?;
        let query = compile_values(&format!("{at}.query"), self.query, false)?;
        Ok(Matcher {
            path,
            methods,
            headers,
            query,
        })
    }
}

fn compile_values(
    at: &str,
    list: Vec<ValueMatchConfig>,
    header: bool,
) -> Result<Vec<ValueMatch>, ConfigError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.into_iter().enumerate() {
        let here = format!("{at}[{i}]");
        let name = if header {
            // Pseudo-headers (`:authority`, `:method`, ...) may be matched too.
            let bare = v.name.strip_prefix(':').unwrap_or(&v.name);
            if !is_token(bare) {
                return err(
                    format!("{here}.name"),
                    format!("{:?} is not a header name", v.name),
                );
            }
            v.name.to_ascii_lowercase()
        } else if v.name.is_empty() {
            return err(format!("{here}.name"), "a parameter name is needed");
        } else {
            v.name
        };
        let given = [
            v.exact.is_some(),
            v.prefix.is_some(),
            v.regex.is_some(),
            v.present.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return err(
                here,
                "exactly one of exact, prefix, regex, present is needed",
            );
        }
        let test = if let Some(e) = v.exact {
            ValueTest::Exact(e)
        } else if let Some(p) = v.prefix {
            ValueTest::Prefix(p)
        } else if let Some(r) = v.regex {
            ValueTest::Regex(compile_regex(&format!("{here}.regex"), &r)?)
        } else {
            ValueTest::Present(v.present.unwrap_or(true))
        };
        out.push(ValueMatch { name, test });
    }
    Ok(out)
}

impl RedirectConfig {
    fn compile(self, at: &str, prefix: Option<String>) -> Result<Redirect, ConfigError> {
        let status = self.status.unwrap_or(301);
        if ![301, 302, 303, 307, 308].contains(&status) {
            return err(
                format!("{at}.status"),
                format!("{status} is not a redirect status (301, 302, 303, 307 or 308)"),
            );
        }
        if let Some(s) = &self.scheme {
            if !matches!(s.as_str(), "http" | "https") {
                return err(format!("{at}.scheme"), format!("{s:?}: http or https"));
            }
        }
        if let Some(h) = &self.host {
            check_host(&format!("{at}.host"), h)?;
        }
        if self.path.is_some() && self.prefix_rewrite.is_some() {
            return err(at, "path and prefix_rewrite exclude each other");
        }
        if let Some(p) = &self.path {
            check_path(&format!("{at}.path"), p)?;
        }
        let prefix_rewrite = match self.prefix_rewrite {
            None => None,
            Some(new) => {
                let field = format!("{at}.prefix_rewrite");
                let Some(old) = prefix else {
                    return err(field, "needs a prefix path match (match.path.prefix)");
                };
                check_path(&field, &new)?;
                Some((old, new))
            }
        };
        Ok(Redirect {
            status,
            scheme: self.scheme,
            host: self.host,
            path: self.path,
            prefix_rewrite,
            strip_query: self.strip_query,
        })
    }
}

impl DirectConfig {
    fn compile(self, at: &str) -> Result<Direct, ConfigError> {
        if !(200..=599).contains(&self.status) {
            return err(
                format!("{at}.status"),
                format!("{} is not a final HTTP status (200 to 599)", self.status),
            );
        }
        let content_type = self
            .content_type
            .unwrap_or_else(|| "text/plain; charset=utf-8".to_string());
        check_text(&format!("{at}.content_type"), &content_type)?;
        Ok(Direct {
            status: self.status,
            body: self.body,
            content_type,
        })
    }
}
