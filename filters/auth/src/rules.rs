//! Per-path rules: which authenticators a request needs, chosen by path and method.
//! The first rule that matches wins; the config's `default` covers the rest.

/// How a rule matches the path (the query string is not part of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// A string prefix, as in weft's routes: `/api` matches `/api2` too.
    Prefix(String),
}

/// All given conditions must hold; an empty match matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleMatch {
    pub path: Option<PathMatch>,
    /// Upper-case method names; empty means any method.
    pub methods: Vec<String>,
}

impl RuleMatch {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        let path_ok = match &self.path {
            None => true,
            Some(PathMatch::Exact(p)) => path == p,
            Some(PathMatch::Prefix(p)) => path.starts_with(p.as_str()),
        };
        path_ok && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
    }
}

/// One way to prove who the client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authenticator {
    /// The JWT provider at this index of `Config::providers`.
    Jwt(usize),
    ApiKey,
    Basic,
}

/// What a matched request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub matcher: RuleMatch,
    /// No authentication at all.
    pub public: bool,
    /// Any one of these must succeed (none listed: only ext_authz decides).
    pub require_any: Vec<Authenticator>,
    /// Ask the external authorization service after the authenticators pass.
    pub ext_authz: bool,
}

impl Rule {
    pub fn public(matcher: RuleMatch) -> Rule {
        Rule {
            matcher,
            public: true,
            require_any: Vec::new(),
            ext_authz: false,
        }
    }
}

/// The first rule matching the request, else `default`.
pub fn select<'a>(
    rules: &'a [Rule],
    default: Option<&'a Rule>,
    method: &str,
    path: &str,
) -> Option<&'a Rule> {
    rules
        .iter()
        .find(|r| r.matcher.matches(method, path))
        .or(default)
}
