//! The proxy-wasm glue: reads the request, asks [`engine::decide`], and carries out the
//! decision with host calls (header changes, `send_http_response`, http calls that pause
//! the request until their answer arrives).
//!
//! The root context parses the config and keeps remote key sets fresh: it fetches them
//! right after `on_configure` and then on a one-second tick once their `cache_duration`
//! has passed. A request that finds no keys at all (the first ones after start) fetches
//! them itself and waits.

use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use crate::cache::{Shared, encode_shared};
use crate::config::{Config, KeySource, RemoteJwks};
use crate::engine::{self, Decision, Env, Grant, RemoteKeys};
use crate::ext_authz;
use crate::request::RequestView;

const TICK: Duration = Duration::from_secs(1);

/// The root context: one per VM.
#[derive(Default)]
pub struct AuthRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for AuthRoot {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        let Some(shared) = &self.shared else { return };
        let provider = shared
            .keys
            .borrow()
            .iter()
            .position(|k| k.refreshing == Some(token));
        let Some(provider) = provider else { return };
        shared.keys.borrow_mut()[provider].refreshing = None;
        let (ok, body) = jwks_response(self, body_size);
        let name = &shared.config.providers[provider].name;
        if ok {
            let now = now_secs(self);
            match shared.store(provider, &body, now) {
                Ok(()) => {
                    if let KeySource::Remote(remote) = &shared.config.providers[provider].keys {
                        let _ = self.set_shared_data(
                            &remote.shared_key(),
                            Some(&encode_shared(now, &body)),
                            None,
                        );
                    }
                }
                Err(e) => log::warn!("auth: provider {name}: refreshed JWKS refused: {e}"),
            }
        } else {
            log::warn!("auth: provider {name}: JWKS refresh failed; keeping the keys held so far");
        }
    }
}

impl RootContext for AuthRoot {
    fn on_configure(&mut self, _: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        let config = match Config::parse(&raw) {
            Ok(config) => config,
            Err(e) => {
                log::error!("auth: bad configuration: {e}");
                return false;
            }
        };
        let shared = Rc::new(Shared::new(config));
        let remote = shared.remote_providers().count() > 0;
        self.shared = Some(shared);
        if remote {
            self.set_tick_period(TICK);
            self.refresh();
        }
        true
    }

    fn on_tick(&mut self) {
        self.refresh();
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(AuthStream {
            shared: self.shared.clone()?,
            request: RequestView::default(),
            pending: Pending::None,
            failed_fetches: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl AuthRoot {
    /// Starts a fetch for every remote key set that is missing or past its cache duration,
    /// unless another worker has already put a fresh one in shared data.
    fn refresh(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let now = now_secs(self);
        for (i, remote) in shared.remote_providers() {
            if !shared.needs_refresh(i, remote, now) {
                continue;
            }
            let (value, _) = self.get_shared_data(&remote.shared_key());
            let fresh_from = now.saturating_sub(remote.cache_duration.as_secs());
            if shared.adopt_shared(i, value.as_deref(), fresh_from) {
                continue;
            }
            match fetch(self, remote) {
                Ok(token) => shared.keys.borrow_mut()[i].refreshing = Some(token),
                Err(e) => log::warn!("auth: cannot fetch the JWKS of {}: {e}", remote.cluster),
            }
        }
    }
}

/// What a paused request waits for.
enum Pending {
    None,
    Jwks { token: u32, provider: usize },
    ExtAuthz { token: u32, grant: Grant },
}

/// One request.
pub struct AuthStream {
    shared: Rc<Shared>,
    request: RequestView,
    pending: Pending,
    /// Providers whose key fetch failed for this request (their tokens then fail).
    failed_fetches: Vec<usize>,
}

impl Context for AuthStream {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _: usize,
    ) {
        let decision = match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::Jwks { token: t, provider } if t == token => {
                self.take_keys(provider, body_size);
                self.decide()
            }
            Pending::ExtAuthz { token: t, grant } if t == token => {
                // A failed call (refused, timed out) arrives with no headers; the
                // SDK's header-map getter would panic on it, so it is not asked.
                let (status, headers) = if num_headers == 0 {
                    (None, Vec::new())
                } else {
                    let status = self
                        .get_http_call_response_header(":status")
                        .and_then(|s| s.parse().ok());
                    (status, self.get_http_call_response_headers())
                };
                let body = self
                    .get_http_call_response_body(0, body_size)
                    .unwrap_or_default();
                let cfg = ext_authz_config(&self.shared);
                ext_authz::outcome(cfg, status, &headers, &body, grant)
            }
            other => {
                self.pending = other;
                return;
            }
        };
        if let Action::Continue = self.act(decision) {
            self.resume_http_request();
        }
    }
}

impl HttpContext for AuthStream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.request = self.read_request();
        let decision = self.decide();
        self.act(decision)
    }
}

impl AuthStream {
    /// The request head as the decision sees it: the headers it can look at, read one by
    /// one, and `:method` and `:path` when it looks at them. The host joins the values
    /// of a repeated header with `,`; a value with a comma may be such a join, so then
    /// (and when the authorization service is asked) the whole header map is read
    /// instead, which lists every value on its own, as before.
    fn read_request(&self) -> RequestView {
        let needs = &self.shared.needs;
        if !needs.all_headers {
            let mut headers = Vec::with_capacity(needs.headers.len());
            let mut joined = false;
            for name in &needs.headers {
                if let Some(value) = self.get_http_request_header(name) {
                    joined |= value.contains(',');
                    headers.push((name.clone(), value));
                }
            }
            if !joined {
                let pseudo = |wanted: bool, name: &str| match wanted {
                    true => self.get_http_request_header(name).unwrap_or_default(),
                    false => String::new(),
                };
                return RequestView {
                    method: pseudo(needs.method, ":method"),
                    path: pseudo(needs.path, ":path"),
                    headers,
                };
            }
        }
        let headers = self.get_http_request_headers();
        let pseudo = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        RequestView {
            method: pseudo(":method"),
            path: pseudo(":path"),
            headers,
        }
    }

    fn decide(&self) -> Decision {
        let remote_keys = |i: usize| {
            if self.failed_fetches.contains(&i) {
                RemoteKeys::Failed
            } else {
                self.shared.remote_keys(i)
            }
        };
        let remembered = |d: &[u8; 32]| self.shared.remembered(d);
        // Only JWTs look at the time.
        let now = match self.shared.config.providers.is_empty() {
            true => 0,
            false => now_secs(self),
        };
        let env = Env {
            now,
            remote_keys: &remote_keys,
            remembered: &remembered,
        };
        engine::decide(&self.shared.config, &self.request, &env)
    }

    /// Carries out a decision; `Pause` when the request now waits or was answered.
    fn act(&mut self, decision: Decision) -> Action {
        match decision {
            Decision::Allow(grant) => {
                self.apply(&grant);
                Action::Continue
            }
            Decision::Deny(reply) => {
                self.send_http_response(
                    reply.status,
                    as_pairs(&reply.headers),
                    Some(reply.body.as_bytes()),
                );
                Action::Pause
            }
            Decision::FetchJwks(provider) => self.fetch_keys(provider),
            Decision::AskExtAuthz(grant) => {
                let cfg = ext_authz_config(&self.shared);
                let headers = ext_authz::check_request(cfg, &self.request, &grant);
                let call = self.dispatch_http_call(
                    &cfg.cluster,
                    as_pairs(&headers),
                    None,
                    vec![],
                    cfg.timeout,
                );
                match call {
                    Ok(token) => {
                        self.pending = Pending::ExtAuthz { token, grant };
                        Action::Pause
                    }
                    Err(e) => {
                        log::warn!(
                            "auth: cannot call the authorization service {}: {e:?}",
                            cfg.cluster
                        );
                        let decision = ext_authz::outcome(cfg, None, &[], &[], grant);
                        self.act(decision)
                    }
                }
            }
        }
    }

    fn apply(&mut self, grant: &Grant) {
        // A header set below loses its old values anyway: no need to remove it first.
        for name in &grant.remove_headers {
            if !grant.set_headers.iter().any(|(n, _)| n == name) {
                self.set_http_request_header(name, None);
            }
        }
        for (name, value) in &grant.set_headers {
            self.set_http_request_header(name, Some(value));
        }
        if let Some(path) = &grant.path {
            self.set_http_request_header(":path", Some(path));
        }
        if let Some(digest) = grant.remember {
            self.shared.remember(digest);
        }
    }

    /// Takes the keys from shared data if another worker fetched them, else fetches them
    /// and pauses.
    fn fetch_keys(&mut self, provider: usize) -> Action {
        let remote = match &self.shared.config.providers[provider].keys {
            KeySource::Remote(remote) => remote.clone(),
            KeySource::Inline(_) => unreachable!("only remote providers are fetched"),
        };
        let (value, _) = self.get_shared_data(&remote.shared_key());
        if !self.shared.adopt_shared(provider, value.as_deref(), 0) {
            match fetch(self, &remote) {
                Ok(token) => {
                    self.pending = Pending::Jwks { token, provider };
                    return Action::Pause;
                }
                Err(e) => {
                    log::warn!("auth: cannot fetch the JWKS of {}: {e}", remote.cluster);
                    self.failed_fetches.push(provider);
                }
            }
        }
        let decision = self.decide();
        self.act(decision)
    }

    fn take_keys(&mut self, provider: usize, body_size: usize) {
        let (ok, body) = jwks_response(self, body_size);
        let now = now_secs(self);
        let stored = ok && {
            match self.shared.store(provider, &body, now) {
                Ok(()) => true,
                Err(e) => {
                    log::warn!("auth: fetched JWKS refused: {e}");
                    false
                }
            }
        };
        if stored {
            if let KeySource::Remote(remote) = &self.shared.config.providers[provider].keys {
                let _ = self.set_shared_data(
                    &remote.shared_key(),
                    Some(&encode_shared(now, &body)),
                    None,
                );
            }
        } else {
            self.failed_fetches.push(provider);
        }
    }
}

/// The ext_authz settings; the engine only asks for the service when they exist.
fn ext_authz_config(shared: &Shared) -> &crate::config::ExtAuthz {
    shared
        .config
        .ext_authz
        .as_ref()
        .expect("ext_authz configured")
}

/// Header pairs as the SDK takes them.
fn as_pairs(list: &[(String, String)]) -> Vec<(&str, &str)> {
    list.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Sends the GET for a key set.
fn fetch(ctx: &dyn Context, remote: &RemoteJwks) -> Result<u32, String> {
    let headers = vec![
        (":method", "GET"),
        (":path", remote.path.as_str()),
        (":authority", remote.authority.as_str()),
        ("accept", "application/json"),
    ];
    ctx.dispatch_http_call(&remote.cluster, headers, None, vec![], remote.timeout)
        .map_err(|e| format!("{e:?}"))
}

/// Whether an http-call answer is a 200, and its body.
fn jwks_response(ctx: &dyn Context, body_size: usize) -> (bool, Vec<u8>) {
    let ok = ctx.get_http_call_response_header(":status").as_deref() == Some("200");
    let body = ctx
        .get_http_call_response_body(0, body_size)
        .unwrap_or_default();
    (ok, body)
}

fn now_secs(ctx: &dyn Context) -> u64 {
    ctx.get_current_time()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
