//! The rate limit filter's configuration: the JSON of the filter entry's `config:` as serde
//! reads it ([`Config`]), and [`Config::compile`], which checks what serde cannot and builds
//! the [`Rule`]s the filter runs. Every error names its field: `rules[1].limits[0].per: ...`.

use std::time::Duration;

use serde::Deserialize;

use crate::bucket::Limit;

/// The whole configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Prefix of the shared-data keys: filters with the same domain share buckets.
    /// Default: the filter entry's name (the `plugin_name` property).
    #[serde(default)]
    pub domain: Option<String>,
    /// Every rule whose match holds applies.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Count only, never refuse (every rule).
    #[serde(default)]
    pub shadow: bool,
    /// Add `x-ratelimit-limit/remaining/reset` to allowed responses too.
    #[serde(default = "yes")]
    pub response_headers: bool,
    /// The status of a refused request.
    #[serde(default = "too_many")]
    pub status: u32,
    /// Tries of a CAS update before failing open.
    #[serde(default = "default_tries")]
    pub cas_tries: u32,
}

fn yes() -> bool {
    true
}
fn too_many() -> u32 {
    429
}
fn default_tries() -> u32 {
    16
}

/// One rule: which requests, keyed by what, limited how.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// In shared-data keys and logs; default `rule<index>`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matcher: MatchConfig,
    pub key: KeyConfig,
    pub limits: Vec<LimitConfig>,
    /// Count only, never refuse (this rule).
    #[serde(default)]
    pub shadow: bool,
}

/// All given conditions must hold; an empty match matches everything.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    #[serde(default)]
    pub path: Option<PathConfig>,
    #[serde(default)]
    pub methods: Vec<String>,
}

/// `{"exact": P}` or `{"prefix": P}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathConfig {
    Exact(String),
    Prefix(String),
}

/// What a bucket is per: `"client_ip"`, `"path"`, `"route"` or `{"header": NAME}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyConfig {
    ClientIp,
    Path,
    Route,
    Header(String),
}

/// `{"requests": N, "per": "minute", "burst": B}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    pub requests: u64,
    pub per: String,
    #[serde(default)]
    pub burst: Option<u64>,
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

/// How a rule matches the path (never the query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// A string prefix, as in weft's routes.
    Prefix(String),
}

/// What a bucket is per, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `source.address` without the port.
    ClientIp,
    /// The path without the query.
    Path,
    /// One bucket for everything the rule matches.
    Route,
    /// A request header's value (name lowercase); no header, no limit.
    Header(String),
}

/// One rule, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub path: Option<PathMatch>,
    /// Upper-case; empty: any.
    pub methods: Vec<String>,
    pub key: Key,
    pub limits: Vec<Limit>,
    pub shadow: bool,
}

impl Rule {
    /// Whether the rule applies to a request with this method and path (no query).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let path_ok = match &self.path {
            None => true,
            Some(PathMatch::Exact(p)) => path == p,
            Some(PathMatch::Prefix(p)) => path.starts_with(p.as_str()),
        };
        path_ok && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
    }
}

/// The compiled configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Empty: use the filter's name.
    pub domain: Option<String>,
    pub rules: Vec<Rule>,
    pub response_headers: bool,
    pub status: u32,
    pub cas_tries: u32,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A name that goes in shared-data keys and log lines: no `/`, no spaces or controls.
fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.bytes().any(|b| b == b'/' || !b.is_ascii_graphic()) {
        return err(
            field,
            format!("{name:?}: printable ASCII without spaces or /"),
        );
    }
    Ok(())
}

/// `second`, `minute`, `hour`, `day`, or a duration such as `10s`, `5m`, `1h`, `500ms`.
pub fn parse_period(text: &str) -> Option<Duration> {
    let named = match text {
        "second" => Some(1),
        "minute" => Some(60),
        "hour" => Some(3600),
        "day" => Some(86_400),
        _ => None,
    };
    if let Some(secs) = named {
        return Some(Duration::from_secs(secs));
    }
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    };
    (d >= Duration::from_millis(1)).then_some(d)
}

impl Config {
    /// Checks the configuration and builds the rules.
    pub fn compile(self) -> Result<Settings, ConfigError> {
        if let Some(domain) = &self.domain {
            check_name("domain", domain)?;
        }
        if !(400..=599).contains(&self.status) {
            return err("status", format!("{}: a 4xx or 5xx status", self.status));
        }
        if !(1..=1000).contains(&self.cas_tries) {
            return err("cas_tries", format!("{}: 1 to 1000", self.cas_tries));
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.into_iter().enumerate() {
            let rule = r.compile(&format!("rules[{i}]"), i, self.shadow)?;
            if rules.iter().any(|other| other.name == rule.name) {
                return err(
                    format!("rules[{i}].name"),
                    format!("{:?} is used twice", rule.name),
                );
            }
            rules.push(rule);
        }
        Ok(Settings {
            domain: self.domain,
            rules,
            response_headers: self.response_headers,
            status: self.status,
            cas_tries: self.cas_tries,
        })
    }
}

impl RuleConfig {
    fn compile(self, at: &str, index: usize, shadow: bool) -> Result<Rule, ConfigError> {
        let name = self.name.unwrap_or_else(|| format!("rule{index}"));
        check_name(&format!("{at}.name"), &name)?;
        let path = match self.matcher.path {
            None => None,
            Some(PathConfig::Exact(p)) => Some(PathMatch::Exact(check_path(
                &format!("{at}.match.path.exact"),
                p,
            )?)),
            Some(PathConfig::Prefix(p)) => Some(PathMatch::Prefix(check_path(
                &format!("{at}.match.path.prefix"),
                p,
            )?)),
        };
        let mut methods = Vec::new();
        for (j, m) in self.matcher.methods.into_iter().enumerate() {
            if !is_token(&m) {
                return err(
                    format!("{at}.match.methods[{j}]"),
                    format!("{m:?} is not a method"),
                );
            }
            methods.push(m.to_ascii_uppercase());
        }
        let key = match self.key {
            KeyConfig::ClientIp => Key::ClientIp,
            KeyConfig::Path => Key::Path,
            KeyConfig::Route => Key::Route,
            KeyConfig::Header(h) if is_token(&h) => Key::Header(h.to_ascii_lowercase()),
            KeyConfig::Header(h) => {
                return err(
                    format!("{at}.key.header"),
                    format!("{h:?} is not a header name"),
                );
            }
        };
        if self.limits.is_empty() {
            return err(format!("{at}.limits"), "at least one limit is needed");
        }
        let mut limits: Vec<Limit> = Vec::with_capacity(self.limits.len());
        for (j, l) in self.limits.into_iter().enumerate() {
            let here = format!("{at}.limits[{j}]");
            let Some(period) = parse_period(&l.per) else {
                return err(
                    format!("{here}.per"),
                    format!(
                        "{:?}: second, minute, hour, day, or a duration such as 10s, 5m",
                        l.per
                    ),
                );
            };
            if l.requests == 0 || l.requests > 1_000_000_000 {
                return err(
                    format!("{here}.requests"),
                    format!("{}: 1 to 1000000000", l.requests),
                );
            }
            let burst = l.burst.unwrap_or(l.requests);
            if burst == 0 || burst > 1_000_000_000 {
                return err(format!("{here}.burst"), format!("{burst}: 1 to 1000000000"));
            }
            if limits.iter().any(|other| other.period == period) {
                return err(
                    format!("{here}.per"),
                    format!(
                        "{:?}: another limit of this rule has the same period",
                        l.per
                    ),
                );
            }
            limits.push(Limit {
                requests: l.requests,
                period,
                burst,
            });
        }
        Ok(Rule {
            name,
            path,
            methods,
            key,
            limits,
            shadow: shadow || self.shadow,
        })
    }
}

fn check_path(field: &str, p: String) -> Result<String, ConfigError> {
    if !p.starts_with('/') || p.contains(['?', '#']) || p.bytes().any(|b| b.is_ascii_control()) {
        return err(
            field,
            format!("{p:?} is not a path (it starts with /, has no ? or #)"),
        );
    }
    Ok(p)
}
