//! The decision for one request, without any host call: given the request head, the
//! config, the time and the keys at hand, say allow (with header changes), deny (with the
//! reply), fetch a provider's keys first, or ask the external authorization service.
//! The proxy-wasm glue in `filter.rs` only carries these out.

use std::rc::Rc;

use serde_json::{Map, Value};

use crate::config::{Config, KeySource, Provider};
use crate::credentials::{BasicOutcome, Found, TokenSource, find_token};
use crate::jwk::Jwks;
use crate::jwt::{self, JwtError, Validation};
use crate::request::{RequestView, without_query_param};
use crate::rules::{Authenticator, select};

/// Changes to make to the request on its way upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// Removed first (identity headers a client must not set, credentials not forwarded).
    pub remove_headers: Vec<String>,
    /// Then set (replacing any value).
    pub set_headers: Vec<(String, String)>,
    /// A new `:path` (a credential taken out of the query).
    pub path: Option<String>,
    /// A basic-auth pair that verified, for the caller to remember (see `BasicUsers::check`).
    pub remember: Option<[u8; 32]>,
}

/// A local reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn text(status: u32, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: format!("{body}\n"),
        }
    }
}

/// What to do with the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(Grant),
    Deny(Reply),
    /// The provider at this index has a remote key set not fetched yet: fetch, then decide again.
    FetchJwks(usize),
    /// Authentication passed; the external authorization service decides.
    AskExtAuthz(Grant),
}

/// What the caller knows of a provider's remote key set.
#[derive(Clone, Debug)]
pub enum RemoteKeys {
    Ready(Rc<Jwks>),
    /// Never fetched: fetching would help.
    Missing,
    /// A fetch was tried for this request and failed.
    Failed,
}

/// What the decision needs besides the request and the config.
pub struct Env<'a> {
    /// Seconds since the Unix epoch.
    pub now: u64,
    pub remote_keys: &'a dyn Fn(usize) -> RemoteKeys,
    /// Whether a basic-auth pair digest verified before.
    pub remembered: &'a dyn Fn(&[u8; 32]) -> bool,
}

/// A credential that was presented and refused.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Failure {
    Jwt(String),
    ApiKey,
    Basic,
}

/// Which challenge to send for a missing credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Challenge {
    Bearer,
    ApiKey,
    Basic,
}

/// Decides what to do with `req`.
pub fn decide(config: &Config, req: &RequestView, env: &Env<'_>) -> Decision {
    let mut grant = Grant {
        remove_headers: identity_headers(config),
        ..Grant::default()
    };
    let Some(rule) = select(
        &config.rules,
        config.default.as_ref(),
        &req.method,
        &req.path,
    ) else {
        return Decision::Deny(Reply::text(403, "forbidden"));
    };
    if rule.public {
        return Decision::Allow(grant);
    }
    let mut failures = Vec::new();
    let mut missing = Vec::new();
    let mut authenticated = rule.require_any.is_empty();
    for authenticator in &rule.require_any {
        let outcome = match *authenticator {
            Authenticator::Jwt(i) => {
                jwt_step(&config.providers[i], i, req, env, &mut grant, config)
            }
            Authenticator::ApiKey => api_key_step(config, req, &mut grant),
            Authenticator::Basic => basic_step(config, req, env, &mut grant),
        };
        match outcome {
            Step::Passed => {
                authenticated = true;
                break;
            }
            Step::Missing(c) => missing.push(c),
            Step::Failed(f) => failures.push(f),
            Step::Fetch(i) => return Decision::FetchJwks(i),
        }
    }
    if !authenticated {
        return Decision::Deny(unauthorized(config, failures.first(), &missing));
    }
    if rule.ext_authz {
        Decision::AskExtAuthz(grant)
    } else {
        Decision::Allow(grant)
    }
}

enum Step {
    Passed,
    Missing(Challenge),
    Failed(Failure),
    Fetch(usize),
}

/// Headers only this filter may set: removed from every request, public ones included.
fn identity_headers(config: &Config) -> Vec<String> {
    let mut names = vec![config.consumer_header.clone()];
    for p in &config.providers {
        for (_, header) in &p.forward_claims {
            if !names.contains(header) {
                names.push(header.clone());
            }
        }
    }
    names
}

fn jwt_step(
    p: &Provider,
    index: usize,
    req: &RequestView,
    env: &Env<'_>,
    grant: &mut Grant,
    config: &Config,
) -> Step {
    let Some(found) = find_token(req, &p.sources) else {
        return Step::Missing(Challenge::Bearer);
    };
    let remote;
    let jwks = match &p.keys {
        KeySource::Inline(jwks) => jwks,
        KeySource::Remote(_) => {
            remote = (env.remote_keys)(index);
            match &remote {
                RemoteKeys::Ready(jwks) => jwks.as_ref(),
                RemoteKeys::Missing => return Step::Fetch(index),
                RemoteKeys::Failed => {
                    return Step::Failed(Failure::Jwt(
                        "the signing keys could not be fetched".into(),
                    ));
                }
            }
        }
    };
    let validation = Validation {
        issuer: p.issuer.as_deref(),
        audiences: &p.audiences,
        clock_skew: p.clock_skew,
        require_expiration: p.require_expiration,
        now: env.now,
    };
    match jwt::verify(&found.value, jwks, &validation) {
        Ok(claims) => {
            forward_claims(p, &claims, grant, config);
            if !p.forward {
                strip(&found, req, grant);
            }
            Step::Passed
        }
        Err(e) => Step::Failed(Failure::Jwt(describe(&e))),
    }
}

fn forward_claims(p: &Provider, claims: &Map<String, Value>, grant: &mut Grant, config: &Config) {
    for (claim, header) in &p.forward_claims {
        if let Some(value) = claims.get(claim).and_then(jwt::claim_header_value) {
            grant.set_headers.push((header.clone(), value));
        }
    }
    let consumer = p
        .consumer_claim
        .as_ref()
        .and_then(|c| claims.get(c))
        .and_then(Value::as_str)
        .and_then(|s| jwt::claim_header_value(&Value::String(s.into())));
    if let Some(consumer) = consumer {
        grant
            .set_headers
            .push((config.consumer_header.clone(), consumer));
    }
}

/// Takes a credential out of the request.
fn strip(found: &Found, req: &RequestView, grant: &mut Grant) {
    match &found.source {
        TokenSource::Header { name, .. } => grant.remove_headers.push(name.clone()),
        TokenSource::Param(name) => {
            let current = grant.path.as_deref().unwrap_or(&req.path);
            grant.path = Some(without_query_param(current, name));
        }
    }
}

fn api_key_step(config: &Config, req: &RequestView, grant: &mut Grant) -> Step {
    let Some(keys) = &config.api_keys else {
        return Step::Missing(Challenge::ApiKey);
    };
    let Some(found) = find_token(req, &keys.sources) else {
        return Step::Missing(Challenge::ApiKey);
    };
    match keys.lookup(&found.value) {
        Some(consumer) => {
            grant
                .set_headers
                .push((config.consumer_header.clone(), consumer.to_string()));
            if !keys.forward {
                strip(&found, req, grant);
            }
            Step::Passed
        }
        None => Step::Failed(Failure::ApiKey),
    }
}

fn basic_step(config: &Config, req: &RequestView, env: &Env<'_>, grant: &mut Grant) -> Step {
    let Some(users) = &config.basic else {
        return Step::Missing(Challenge::Basic);
    };
    match users.check(req, env.remembered) {
        (BasicOutcome::Missing, _) => Step::Missing(Challenge::Basic),
        (BasicOutcome::Invalid, _) => Step::Failed(Failure::Basic),
        (BasicOutcome::Valid(user), digest) => {
            grant
                .set_headers
                .push((config.consumer_header.clone(), user));
            grant.remember = digest;
            if !users.forward {
                grant.remove_headers.push("authorization".into());
            }
            Step::Passed
        }
    }
}

/// The `error_description` text: only the characters RFC 6750 allows there, bounded.
fn describe(e: &JwtError) -> String {
    e.to_string()
        .chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .take(200)
        .collect()
}

/// A quoted-string value: quotes and backslashes escaped, control characters dropped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The 401: the first refused credential says why; else one challenge per scheme allowed.
fn unauthorized(config: &Config, failure: Option<&Failure>, missing: &[Challenge]) -> Reply {
    let realm = quoted(&config.realm);
    let basic_realm = quoted(config.basic.as_ref().map_or(&config.realm, |b| &b.realm));
    let challenge = |c: Challenge| match c {
        Challenge::Bearer => format!("Bearer realm={realm}"),
        Challenge::ApiKey => format!("ApiKey realm={realm}"),
        Challenge::Basic => format!("Basic realm={basic_realm}, charset=\"UTF-8\""),
    };
    let (mut reply, challenges) = match failure {
        Some(Failure::Jwt(why)) => (
            Reply::text(401, why),
            vec![format!(
                "Bearer realm={realm}, error=\"invalid_token\", error_description=\"{why}\""
            )],
        ),
        Some(Failure::ApiKey) => (
            Reply::text(401, "invalid API key"),
            vec![challenge(Challenge::ApiKey)],
        ),
        Some(Failure::Basic) => (
            Reply::text(401, "invalid user name or password"),
            vec![challenge(Challenge::Basic)],
        ),
        None => {
            let mut list: Vec<String> = Vec::new();
            for c in missing {
                let text = challenge(*c);
                if !list.contains(&text) {
                    list.push(text);
                }
            }
            (Reply::text(401, "authentication required"), list)
        }
    };
    for c in challenges {
        reply.headers.push(("www-authenticate".into(), c));
    }
    reply
}
