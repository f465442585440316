//! The filter's configuration: the JSON a user writes (serde, unknown fields refused),
//! checked and turned into the typed [`Config`] the rest of the filter uses.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::basic::PasswordHash;
use crate::credentials::{ApiKeys, BasicUsers, TokenSource};
use crate::duration::DurationSpec;
use crate::jwk::Jwks;
use crate::rules::{Authenticator, PathMatch, Rule, RuleMatch};

/// The config as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default = "default_realm")]
    pub realm: String,
    #[serde(default = "default_consumer_header")]
    pub consumer_header: String,
    #[serde(default)]
    pub jwt_providers: BTreeMap<String, RawProvider>,
    pub api_key: Option<RawApiKey>,
    pub basic: Option<RawBasic>,
    pub ext_authz: Option<RawExtAuthz>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    pub default: Option<RawRequirement>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub issuer: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    pub jwks: Option<serde_json::Value>,
    pub remote_jwks: Option<RawRemoteJwks>,
    pub from_headers: Option<Vec<RawFromHeader>>,
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default)]
    pub forward: bool,
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u64,
    #[serde(default)]
    pub require_expiration: bool,
    #[serde(default = "default_consumer_claim")]
    pub consumer_claim: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteJwks {
    pub cluster: String,
    pub path: String,
    pub authority: Option<String>,
    #[serde(default = "default_cache_duration")]
    pub cache_duration: DurationSpec,
    #[serde(default = "default_fetch_timeout")]
    pub timeout: DurationSpec,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawFromHeader {
    pub name: String,
    #[serde(default)]
    pub value_prefix: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    pub header: Option<String>,
    pub query: Option<String>,
    pub keys: Vec<RawKey>,
    #[serde(default)]
    pub forward: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub consumer: String,
    pub key: Option<String>,
    pub key_sha256: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawBasic {
    pub realm: Option<String>,
    pub users: Vec<RawUser>,
    #[serde(default)]
    pub forward: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub username: String,
    pub password_hash: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawExtAuthz {
    pub cluster: String,
    #[serde(default)]
    pub path_prefix: String,
    pub authority: Option<String>,
    #[serde(default = "default_authz_timeout")]
    pub timeout: DurationSpec,
    #[serde(default = "default_allowed_headers")]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub allowed_upstream_headers: Vec<String>,
    #[serde(default = "default_client_headers")]
    pub allowed_client_headers: Vec<String>,
    #[serde(default)]
    pub failure_mode_allow: bool,
    #[serde(default = "default_status_on_error")]
    pub status_on_error: u16,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(rename = "match", default)]
    pub match_: RawMatch,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub require_any: Vec<String>,
    pub ext_authz: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub path: Option<RawPath>,
    #[serde(default)]
    pub methods: Vec<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawPath {
    Exact(String),
    Prefix(String),
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRequirement {
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub require_any: Vec<String>,
    pub ext_authz: Option<bool>,
}

fn default_realm() -> String {
    "weft".into()
}
fn default_consumer_header() -> String {
    "x-consumer".into()
}
fn default_skew() -> u64 {
    60
}
fn default_consumer_claim() -> Option<String> {
    Some("sub".into())
}
fn default_cache_duration() -> DurationSpec {
    DurationSpec(Duration::from_secs(300))
}
fn default_fetch_timeout() -> DurationSpec {
    DurationSpec(Duration::from_secs(5))
}
fn default_authz_timeout() -> DurationSpec {
    DurationSpec(Duration::from_millis(500))
}
fn default_allowed_headers() -> Vec<String> {
    vec!["authorization".into()]
}
fn default_client_headers() -> Vec<String> {
    vec![
        "www-authenticate".into(),
        "location".into(),
        "content-type".into(),
    ]
}
fn default_status_on_error() -> u16 {
    403
}

// === typed config ===

/// The checked config.
#[derive(Debug)]
pub struct Config {
    pub realm: String,
    pub consumer_header: String,
    pub providers: Vec<Provider>,
    pub api_keys: Option<ApiKeys>,
    pub basic: Option<BasicUsers>,
    pub ext_authz: Option<ExtAuthz>,
    pub rules: Vec<Rule>,
    /// For requests no rule matches; `None` denies them (403).
    pub default: Option<Rule>,
}

/// A JWT provider.
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    pub keys: KeySource,
    pub sources: Vec<TokenSource>,
    pub forward: bool,
    /// (claim, header), in claim-name order.
    pub forward_claims: Vec<(String, String)>,
    pub clock_skew: u64,
    pub require_expiration: bool,
    pub consumer_claim: Option<String>,
}

/// Where a provider's keys come from.
#[derive(Debug)]
pub enum KeySource {
    Inline(Jwks),
    Remote(RemoteJwks),
}

#[derive(Debug, Clone)]
pub struct RemoteJwks {
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub cache_duration: Duration,
    pub timeout: Duration,
}

impl RemoteJwks {
    /// The shared-data key under which every VM keeps this document.
    pub fn shared_key(&self) -> String {
        format!(
            "weft.auth.jwks|{}|{}|{}",
            self.cluster, self.authority, self.path
        )
    }
}

#[derive(Debug)]
pub struct ExtAuthz {
    pub cluster: String,
    pub path_prefix: String,
    pub authority: String,
    pub timeout: Duration,
    pub allowed_headers: Vec<String>,
    pub allowed_upstream_headers: Vec<String>,
    pub allowed_client_headers: Vec<String>,
    pub failure_mode_allow: bool,
    pub status_on_error: u32,
}

impl Config {
    /// Parses and checks a config; the error names the field.
    pub fn parse(json: &[u8]) -> Result<Config, String> {
        let raw: RawConfig = weft_sdk::config::parse(json).map_err(|e| e.to_string())?;
        Self::from_raw(raw)
    }

    pub fn from_raw(raw: RawConfig) -> Result<Config, String> {
        let mut providers = Vec::new();
        for (name, p) in raw.jwt_providers {
            providers.push(provider(&name, p).map_err(|e| format!("jwt_providers.{name}: {e}"))?);
        }
        let api_keys = raw
            .api_key
            .map(|a| ApiKeys::from_raw(a).map_err(|e| format!("api_key: {e}")))
            .transpose()?;
        let basic = raw
            .basic
            .map(|b| basic(b, &raw.realm).map_err(|e| format!("basic: {e}")))
            .transpose()?;
        let ext_authz = raw.ext_authz.map(ext_authz).transpose()?;
        let mut config = Config {
            realm: raw.realm,
            consumer_header: lower_header(&raw.consumer_header, "consumer_header")?,
            providers,
            api_keys,
            basic,
            ext_authz,
            rules: Vec::new(),
            default: None,
        };
        let mut rules = Vec::new();
        for (i, r) in raw.rules.into_iter().enumerate() {
            let matcher = rule_match(r.match_).map_err(|e| format!("rules[{i}].match: {e}"))?;
            rules.push(
                config
                    .rule(
                        matcher,
                        RawRequirement {
                            public: r.public,
                            require_any: r.require_any,
                            ext_authz: r.ext_authz,
                        },
                    )
                    .map_err(|e| format!("rules[{i}]: {e}"))?,
            );
        }
        config.rules = rules;
        config.default = raw
            .default
            .map(|d| config.rule(RuleMatch::default(), d))
            .transpose()
            .map_err(|e| format!("default: {e}"))?;
        Ok(config)
    }

    fn rule(&self, matcher: RuleMatch, req: RawRequirement) -> Result<Rule, String> {
        if req.public {
            if !req.require_any.is_empty() || req.ext_authz == Some(true) {
                return Err("a public rule cannot also require authentication".into());
            }
            return Ok(Rule::public(matcher));
        }
        let mut any = Vec::new();
        for name in &req.require_any {
            any.push(
                self.authenticator(name)
                    .map_err(|e| format!("require_any: {e}"))?,
            );
        }
        let ext_authz = match req.ext_authz {
            Some(true) if self.ext_authz.is_none() => {
                return Err("ext_authz: true but no ext_authz service is configured".into());
            }
            Some(on) => on,
            None => self.ext_authz.is_some(),
        };
        if any.is_empty() && !ext_authz {
            return Err("needs `public: true`, a `require_any` list, or ext_authz".into());
        }
        Ok(Rule {
            matcher,
            public: false,
            require_any: any,
            ext_authz,
        })
    }

    fn authenticator(&self, name: &str) -> Result<Authenticator, String> {
        match name {
            "api_key" if self.api_keys.is_some() => Ok(Authenticator::ApiKey),
            "basic" if self.basic.is_some() => Ok(Authenticator::Basic),
            "api_key" | "basic" => Err(format!("{name:?} is used but not configured")),
            _ => {
                let provider = name.strip_prefix("jwt:").ok_or_else(|| {
                    format!("{name:?}: expected \"jwt:<provider>\", \"api_key\" or \"basic\"")
                })?;
                self.providers
                    .iter()
                    .position(|p| p.name == provider)
                    .map(Authenticator::Jwt)
                    .ok_or_else(|| format!("no jwt provider named {provider:?}"))
            }
        }
    }
}

fn provider(name: &str, p: RawProvider) -> Result<Provider, String> {
    let keys = match (p.jwks, p.remote_jwks) {
        (Some(jwks), None) => {
            KeySource::Inline(Jwks::from_value(&jwks).map_err(|e| format!("jwks: {e}"))?)
        }
        (None, Some(r)) => {
            if !r.path.starts_with('/') {
                return Err("remote_jwks.path must start with '/'".into());
            }
            KeySource::Remote(RemoteJwks {
                authority: r.authority.unwrap_or_else(|| r.cluster.clone()),
                cluster: r.cluster,
                path: r.path,
                cache_duration: r.cache_duration.0,
                timeout: r.timeout.0,
            })
        }
        _ => return Err("exactly one of `jwks` and `remote_jwks` is needed".into()),
    };
    let mut sources = Vec::new();
    match p.from_headers {
        None if p.from_params.is_empty() => sources.push(TokenSource::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }),
        None => {}
        Some(list) => {
            for h in list {
                sources.push(TokenSource::Header {
                    name: lower_header(&h.name, "from_headers.name")?,
                    prefix: h.value_prefix,
                });
            }
        }
    }
    sources.extend(p.from_params.into_iter().map(TokenSource::Param));
    let mut forward_claims = Vec::new();
    for (claim, header) in p.forward_claims {
        forward_claims.push((claim, lower_header(&header, "forward_claims")?));
    }
    Ok(Provider {
        name: name.to_string(),
        issuer: p.issuer,
        audiences: p.audiences,
        keys,
        sources,
        forward: p.forward,
        forward_claims,
        clock_skew: p.clock_skew_seconds,
        require_expiration: p.require_expiration,
        consumer_claim: p.consumer_claim,
    })
}

fn basic(b: RawBasic, realm: &str) -> Result<BasicUsers, String> {
    let mut users = Vec::new();
    for (i, u) in b.users.into_iter().enumerate() {
        if u.username.contains(':') || u.username.is_empty() {
            return Err(format!("users[{i}].username: empty or contains ':'"));
        }
        let hash = PasswordHash::parse(&u.password_hash)
            .map_err(|e| format!("users[{i}].password_hash: {e}"))?;
        users.push((u.username, hash));
    }
    Ok(BasicUsers {
        realm: b.realm.unwrap_or_else(|| realm.to_string()),
        users,
        forward: b.forward,
    })
}

fn ext_authz(e: RawExtAuthz) -> Result<ExtAuthz, String> {
    let lower = |list: Vec<String>, field: &str| -> Result<Vec<String>, String> {
        list.iter().map(|h| lower_header(h, field)).collect()
    };
    if !(200..=599).contains(&e.status_on_error) {
        return Err("ext_authz.status_on_error: not an HTTP status".into());
    }
    if !e.path_prefix.is_empty() && !e.path_prefix.starts_with('/') {
        return Err("ext_authz.path_prefix must start with '/'".into());
    }
    Ok(ExtAuthz {
        authority: e.authority.unwrap_or_else(|| e.cluster.clone()),
        cluster: e.cluster,
        path_prefix: e.path_prefix.trim_end_matches('/').to_string(),
        timeout: e.timeout.0,
        allowed_headers: lower(e.allowed_headers, "ext_authz.allowed_headers")?,
        allowed_upstream_headers: lower(
            e.allowed_upstream_headers,
            "ext_authz.allowed_upstream_headers",
        )?,
        allowed_client_headers: lower(
            e.allowed_client_headers,
            "ext_authz.allowed_client_headers",
        )?,
        failure_mode_allow: e.failure_mode_allow,
        status_on_error: u32::from(e.status_on_error),
    })
}

fn rule_match(m: RawMatch) -> Result<RuleMatch, String> {
    let path = match m.path {
        None => None,
        Some(RawPath::Exact(p)) | Some(RawPath::Prefix(p)) if !p.starts_with('/') => {
            return Err(format!("path {p:?} must start with '/'"));
        }
        Some(RawPath::Exact(p)) => Some(PathMatch::Exact(p)),
        Some(RawPath::Prefix(p)) => Some(PathMatch::Prefix(p)),
    };
    Ok(RuleMatch {
        path,
        methods: m.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
    })
}

/// A header name, lower-cased; an error for one that is empty or not a token.
pub(crate) fn lower_header(name: &str, field: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(format!("{field}: {name:?} is not a header name"))
    }
}
