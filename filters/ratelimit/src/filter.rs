//! The proxy-wasm glue: the root context compiles the config and defines the metrics; each
//! request's context finds the rules that apply and their keys, asks [`engine::decide`],
//! and refuses (429) or lets the request on, adding the `x-ratelimit-*` headers to the
//! response.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use weft_sdk::hash::fnv1a64;
use weft_sdk::http::split_path;
use weft_sdk::prelude::*;

use crate::config::{Config, Key, Settings};
use crate::engine::{self, Applied, Decision, Report, decimal};
use crate::key::into_client_ip;
use crate::store::SharedData;

#[derive(Clone, Copy)]
struct Metrics {
    allowed: Metric,
    limited: Metric,
    shadow_limited: Metric,
    fail_open: Metric,
}

impl Metrics {
    fn define() -> Metrics {
        Metrics {
            allowed: Metric::counter("ratelimit_allowed"),
            limited: Metric::counter("ratelimit_limited"),
            shadow_limited: Metric::counter("ratelimit_shadow_limited"),
            fail_open: Metric::counter("ratelimit_fail_open"),
        }
    }
}

/// The compiled config and what every request needs.
struct Shared {
    settings: Settings,
    domain: String,
    metrics: Metrics,
    /// Some rule matches on the method: read `:method`.
    needs_method: bool,
    /// Some rule matches on the path or keys on it: read `:path`.
    needs_path: bool,
}

/// One per VM (per worker on Weft).
#[derive(Default)]
pub struct RateLimitRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for RateLimitRoot {}

impl RootContext for RateLimitRoot {
    fn on_configure(&mut self, _: usize) -> bool {
        let Some(config) = config::load::<Config>() else {
            return false;
        };
        let settings = match config.compile() {
            Ok(settings) => settings,
            Err(e) => {
                error!("{e}");
                return false;
            }
        };
        let domain = settings
            .domain
            .clone()
            .or_else(|| property::string("plugin_name").filter(|n| !n.is_empty()))
            .unwrap_or_else(|| "ratelimit".to_string())
            .replace('/', "_");
        info!("ratelimit: {} rules, domain {domain}", settings.rules.len());
        let needs_method = settings.rules.iter().any(|r| !r.methods.is_empty());
        let needs_path = settings
            .rules
            .iter()
            .any(|r| r.path.is_some() || r.key == Key::Path);
        self.shared = Some(Rc::new(Shared {
            settings,
            domain,
            metrics: Metrics::define(),
            needs_method,
            needs_path,
        }));
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RateLimitHttp {
            shared: self.shared.clone(),
            report: None,
            refused: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct RateLimitHttp {
    shared: Option<Rc<Shared>>,
    /// The headers to add to the response.
    report: Option<Report>,
    /// This filter refused the request (its own 429 passes the response phase too).
    refused: bool,
}

impl Context for RateLimitHttp {}

/// The `x-ratelimit-*` headers for a report.
fn report_headers(r: &Report) -> [(&'static str, u64); 3] {
    [
        ("x-ratelimit-limit", r.limit),
        ("x-ratelimit-remaining", r.remaining),
        ("x-ratelimit-reset", r.reset),
    ]
}

/// How a key appears in logs: header values (API keys, tokens) only as a hash.
fn key_for_log(key: &Key, value: &str) -> String {
    match key {
        Key::Header(name) => format!("header {name} #{:08x}", fnv1a64(value.as_bytes()) >> 32),
        Key::ClientIp => format!("client {value}"),
        Key::Path => format!("path {value}"),
        Key::Route => "route".to_string(),
    }
}

impl HttpContext for RateLimitHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        let s = &shared.settings;
        // Only what some rule looks at is read (`matches` ignores what a rule does not
        // test, so an unread value is never compared).
        let method = match shared.needs_method {
            true => Request::method().unwrap_or_default(),
            false => String::new(),
        };
        let full_path = match shared.needs_path {
            true => Request::header(":path").unwrap_or_default(),
            false => String::new(),
        };
        let path = split_path(&full_path).0;
        let mut ip: Option<Option<String>> = None;
        let mut applied = Vec::with_capacity(s.rules.len());
        for rule in s.rules.iter().filter(|r| r.matches(&method, path)) {
            let key = match &rule.key {
                Key::ClientIp => ip
                    .get_or_insert_with(|| property::string("source.address").map(into_client_ip))
                    .clone(),
                Key::Path => Some(path.to_string()),
                Key::Route => Some(String::new()),
                Key::Header(name) => Request::header(name).filter(|v| !v.is_empty()),
            };
            // No key value (no such header): the rule does not count this request.
            if let Some(key) = key {
                applied.push(Applied { rule, key });
            }
        }
        if applied.is_empty() {
            return Action::Continue;
        }
        let now = weft_sdk::time::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let decision = engine::decide(&SharedData, &shared.domain, s.cas_tries, &applied, now);
        self.carry_out(&shared, &applied, decision)
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        let wanted = self
            .shared
            .as_ref()
            .is_some_and(|s| s.settings.response_headers);
        if let (false, true, Some(report)) = (self.refused, wanted, &self.report) {
            let mut buf = [0u8; 20];
            for (name, value) in report_headers(report) {
                Response::set_header(name, decimal(&mut buf, value));
            }
        }
        Action::Continue
    }
}

impl RateLimitHttp {
    fn carry_out(&mut self, shared: &Shared, applied: &[Applied<'_>], d: Decision) -> Action {
        let m = shared.metrics;
        if d.contended > 0 {
            m.fail_open.add(i64::from(d.contended));
            warn!(
                "ratelimit: {} bucket(s) skipped after {} CAS conflicts each (failed open)",
                d.contended, shared.settings.cas_tries
            );
        }
        if !d.shadow_hits.is_empty() {
            m.shadow_limited.inc();
            for hit in &d.shadow_hits {
                let key = applied
                    .iter()
                    .find(|a| a.rule.name == hit.rule)
                    .map_or_else(String::new, |a| key_for_log(&a.rule.key, &hit.key));
                info!(
                    "ratelimit shadow: rule {} would refuse {key} ({} per {:?})",
                    hit.rule, hit.limit.requests, hit.limit.period
                );
            }
        }
        if let Some(r) = d.refused {
            m.limited.inc();
            self.refused = true;
            let mut reply = LocalResponse::new(shared.settings.status)
                .header("retry-after", &r.retry_after.to_string())
                .header("content-type", "text/plain; charset=utf-8")
                .body("rate limit exceeded\n");
            let mut buf = [0u8; 20];
            for (name, value) in report_headers(&r) {
                reply = reply.header(name, decimal(&mut buf, value));
            }
            return reply.send();
        }
        m.allowed.inc();
        self.report = d.report;
        Action::Continue
    }
}
