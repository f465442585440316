//! Turns the raw schema into typed config, collecting every problem with the field path
//! that holds it (`listeners[0].routes[2].cluster: no cluster named "api"`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Method, StatusCode};
use regex::Regex;

use super::raw::*;
use super::types::*;
use super::{ConfigError, ConfigErrors};

/// Collects errors for one config source.
struct Checker<'a> {
    source: &'a str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            source: self.source.to_string(),
            location: None,
            path: path.into(),
            message: message.into(),
        });
    }

    /// Resolves `ip:port` or `host:port` to one address (the first one the resolver gives).
    fn socket_addr(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        match super::resolve::addresses(text, &super::resolve::system_lookup) {
            Ok((addresses, _)) => match addresses.first() {
                Some(addr) => Some(*addr),
                None => {
                    self.error(path, format!("{text:?} resolved to no address"));
                    None
                }
            },
            Err(message) => {
                self.error(path, message);
                None
            }
        }
    }

    fn regex(&mut self, path: &str, pattern: &str) -> Option<Regex> {
        match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(re) => Some(re),
            Err(e) => {
                self.error(path, format!("invalid regex {pattern:?}: {e}"));
                None
            }
        }
    }

    fn status(&mut self, path: &str, code: u16) -> Option<StatusCode> {
        match StatusCode::from_u16(code) {
            Ok(s) if (100..=599).contains(&code) => Some(s),
            _ => {
                self.error(path, format!("{code} is not an HTTP status code (100-599)"));
                None
            }
        }
    }
}

pub(super) fn validate(
    source: &str,
    raw: RawConfig,
    base_dir: &Path,
) -> Result<Config, ConfigErrors> {
    let mut c = Checker {
        source,
        errors: Vec::new(),
    };
    let node = std::sync::Arc::new(crate::wasm::state::NodeInfo {
        id: raw.node.id.clone(),
        cluster: raw.node.cluster.clone(),
        metadata: raw
            .node
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), config_bytes(&Some(v.clone())).to_vec()))
            .collect(),
        metadata_json: serde_json::to_string(&raw.node.metadata).unwrap_or_default(),
    });

    let admin = raw
        .admin
        .address
        .as_deref()
        .and_then(|a| c.socket_addr("admin.address", a));
    let demo_upstream = raw
        .demo_upstream
        .as_ref()
        .and_then(|d| c.socket_addr("demo_upstream.address", &d.address));

    let mut cluster_index = HashMap::new();
    let clusters: Vec<Cluster> = raw
        .clusters
        .iter()
        .enumerate()
        .filter_map(|(i, cluster)| {
            let path = format!("clusters[{i}]");
            if cluster_index.insert(cluster.name.clone(), i).is_some() {
                c.error(
                    format!("{path}.name"),
                    format!("duplicate cluster name {:?}", cluster.name),
                );
            }
            cluster_from_raw(&mut c, &path, cluster, base_dir)
        })
        .collect();

    if raw.listeners.is_empty() {
        c.error("listeners", "at least one listener is required");
    }
    let mut listener_names = HashMap::new();
    let mut listener_addrs = HashMap::new();
    let listeners = raw
        .listeners
        .iter()
        .enumerate()
        .filter_map(|(i, listener)| {
            let path = format!("listeners[{i}]");
            if listener_names.insert(listener.name.clone(), i).is_some() {
                c.error(
                    format!("{path}.name"),
                    format!("duplicate listener name {:?}", listener.name),
                );
            }
            let address = c.socket_addr(&format!("{path}.address"), &listener.address);
            if let Some(addr) = address.filter(|a| a.port() != 0) {
                if let Some(other) = listener_addrs.insert(addr, i) {
                    c.error(
                        format!("{path}.address"),
                        format!("{addr} is already used by listeners[{other}]"),
                    );
                }
            }
            let limits = limits_from_raw(&mut c, &format!("{path}.limits"), &listener.limits);
            let tls = listener.tls.as_ref().and_then(|raw| {
                match crate::tls::TlsSettings::load(raw, base_dir) {
                    Ok(settings) => Some(std::sync::Arc::new(settings)),
                    Err((field, message)) => {
                        c.error(format!("{path}.tls{field}"), message);
                        None
                    }
                }
            });
            let filters = filters_from_raw(&mut c, &path, &listener.filters, base_dir, &node);
            let mut route_names = HashMap::new();
            let routes: Vec<Route> = listener
                .routes
                .iter()
                .enumerate()
                .filter_map(|(j, route)| {
                    let rpath = format!("{path}.routes[{j}]");
                    let name = route.name.clone().unwrap_or_else(|| format!("route{j}"));
                    if route_names.insert(name.clone(), j).is_some() {
                        c.error(
                            format!("{rpath}.name"),
                            format!("duplicate route name {name:?}"),
                        );
                    }
                    route_from_raw(&mut c, &rpath, name, route, &cluster_index)
                })
                .collect();
            Some(Listener {
                name: listener.name.clone(),
                address: address?,
                limits,
                access_log: listener.access_log,
                routes,
                filters,
                tls,
            })
        })
        .collect();

    let wasm = wasm_from_raw(&mut c, &raw.wasm, base_dir);
    if c.errors.is_empty() {
        Ok(Config {
            wasm,
            source: source.to_string(),
            admin,
            listeners,
            clusters,
            demo_upstream,
            raw,
        })
    } else {
        Err(ConfigErrors(c.errors))
    }
}

fn limits_from_raw(c: &mut Checker<'_>, path: &str, raw: &ListenerLimits) -> Limits {
    let positive = [
        ("max_request_headers_kb", raw.max_request_headers_kb),
        ("max_request_headers", raw.max_request_headers),
        ("max_connections", raw.max_connections),
        (
            "http2_max_concurrent_streams",
            raw.http2_max_concurrent_streams,
        ),
    ];
    for (field, value) in positive {
        if value == 0 {
            c.error(format!("{path}.{field}"), "must be greater than 0");
        }
    }
    if raw.max_request_headers_kb > 8192 {
        c.error(
            format!("{path}.max_request_headers_kb"),
            "must be at most 8192 (8 MiB)",
        );
    }
    for (field, kb) in [
        (
            "http2_initial_stream_window_kb",
            raw.http2_initial_stream_window_kb,
        ),
        (
            "http2_initial_connection_window_kb",
            raw.http2_initial_connection_window_kb,
        ),
    ] {
        if !(64..=2 * 1024 * 1024).contains(&kb) {
            c.error(
                format!("{path}.{field}"),
                "must be between 64 and 2097152 (KiB)",
            );
        }
    }
    if raw.header_read_timeout.0.is_zero() {
        c.error(
            format!("{path}.header_read_timeout"),
            "must be greater than 0",
        );
    }
    if raw.idle_timeout.0.is_zero() {
        c.error(format!("{path}.idle_timeout"), "must be greater than 0");
    }
    Limits {
        max_request_header_bytes: raw.max_request_headers_kb as usize * 1024,
        max_request_headers: raw.max_request_headers as usize,
        header_read_timeout: raw.header_read_timeout.0,
        idle_timeout: raw.idle_timeout.0,
        max_connections: raw.max_connections as usize,
        http2_max_concurrent_streams: raw.http2_max_concurrent_streams,
        http2_initial_stream_window: raw.http2_initial_stream_window_kb.saturating_mul(1024),
        http2_initial_connection_window: raw
            .http2_initial_connection_window_kb
            .saturating_mul(1024),
    }
}

fn route_from_raw(
    c: &mut Checker<'_>,
    path: &str,
    name: String,
    raw: &RouteConfig,
    clusters: &HashMap<String, usize>,
) -> Option<Route> {
    let matcher = match_from_raw(c, &format!("{path}.match"), &raw.matcher);
    let actions = [
        raw.cluster.is_some(),
        raw.weighted_clusters.is_some(),
        raw.direct_response.is_some(),
        raw.redirect.is_some(),
    ];
    let count = actions.iter().filter(|a| **a).count();
    if count != 1 {
        c.error(
            path,
            format!(
                "a route needs exactly one of cluster, weighted_clusters, direct_response, redirect (found {count})"
            ),
        );
        return None;
    }
    let lookup = |c: &mut Checker<'_>, field: String, cluster: &str| match clusters.get(cluster) {
        Some(i) => Some(*i),
        None => {
            c.error(field, format!("no cluster named {cluster:?}"));
            None
        }
    };
    let action = if let Some(cluster) = &raw.cluster {
        RouteAction::Cluster(lookup(c, format!("{path}.cluster"), cluster)?)
    } else if let Some(weighted) = &raw.weighted_clusters {
        let field = format!("{path}.weighted_clusters");
        if weighted.is_empty() {
            c.error(&field, "needs at least one cluster");
        }
        let total: u64 = weighted.iter().map(|w| u64::from(w.weight)).sum();
        if !weighted.is_empty() && total == 0 {
            c.error(&field, "the weights add up to 0");
        }
        let targets: Vec<_> = weighted
            .iter()
            .enumerate()
            .map(|(k, w)| {
                lookup(c, format!("{field}[{k}].cluster"), &w.cluster).map(|cluster| {
                    WeightedTarget {
                        cluster,
                        weight: w.weight,
                    }
                })
            })
            .collect();
        if total > u64::from(u32::MAX) {
            c.error(&field, "the weights add up to more than 4294967295");
        }
        RouteAction::Weighted(targets.into_iter().collect::<Option<Vec<_>>>()?)
    } else if let Some(direct) = &raw.direct_response {
        let status = c.status(&format!("{path}.direct_response.status"), direct.status)?;
        RouteAction::Direct {
            status,
            body: Bytes::from(direct.body.clone()),
            content_type: direct.content_type.clone(),
        }
    } else {
        let redirect = raw.redirect.as_ref()?;
        let field = format!("{path}.redirect");
        if ![301, 302, 303, 307, 308].contains(&redirect.status) {
            c.error(
                format!("{field}.status"),
                "must be one of 301, 302, 303, 307, 308",
            );
        }
        if let Some(scheme) = &redirect.scheme {
            if scheme != "http" && scheme != "https" {
                c.error(format!("{field}.scheme"), "must be http or https");
            }
        }
        if redirect.path.is_some() && redirect.prefix_rewrite.is_some() {
            c.error(&field, "path and prefix_rewrite cannot both be set");
        }
        if redirect.prefix_rewrite.is_some() && !matches!(matcher.path, Some(PathMatch::Prefix(_)))
        {
            c.error(
                format!("{field}.prefix_rewrite"),
                "needs a prefix path match on the route",
            );
        }
        RouteAction::Redirect(Redirect {
            status: StatusCode::from_u16(redirect.status).unwrap_or(StatusCode::MOVED_PERMANENTLY),
            scheme: redirect.scheme.clone(),
            host: redirect.host.clone(),
            path: redirect.path.clone(),
            prefix_rewrite: redirect.prefix_rewrite.clone(),
        })
    };
    if raw.timeout.is_some_and(|t| t.0.is_zero()) {
        c.error(format!("{path}.timeout"), "must be greater than 0");
    }
    let fault = raw
        .fault
        .as_ref()
        .and_then(|f| fault_from_raw(c, &format!("{path}.fault"), f));
    let retry = raw.retry_policy.as_ref().map(|r| {
        let field = format!("{path}.retry_policy");
        let mut policy = RetryPolicy {
            num_retries: r.num_retries,
            on_connect_failure: false,
            on_reset: false,
            on_5xx: false,
            on_gateway_error: false,
            retriable_status_codes: r.retriable_status_codes.clone(),
            per_try_timeout: r.per_try_timeout.map(|t| t.0),
            base_interval: r.base_interval.0,
            max_interval: r.max_interval.0,
            retry_non_idempotent: r.retry_non_idempotent,
            max_buffered_body_bytes: r.max_buffered_body_bytes,
        };
        for (i, on) in r.retry_on.iter().enumerate() {
            match on.as_str() {
                "connect_failure" => policy.on_connect_failure = true,
                "reset" => policy.on_reset = true,
                "5xx" => policy.on_5xx = true,
                "gateway_error" => policy.on_gateway_error = true,
                "retriable_status_codes" => {}
                other => c.error(
                    format!("{field}.retry_on[{i}]"),
                    format!("{other:?}: one of connect_failure, reset, 5xx, gateway_error, retriable_status_codes"),
                ),
            }
        }
        if r.num_retries > 10 {
            c.error(format!("{field}.num_retries"), "at most 10");
        }
        if r.per_try_timeout.is_some_and(|t| t.0.is_zero()) {
            c.error(format!("{field}.per_try_timeout"), "must be greater than 0");
        }
        policy
    });
    Some(Route {
        name,
        matcher,
        action,
        timeout: raw.timeout.map(|t| t.0),
        fault,
        retry,
    })
}

fn match_from_raw(c: &mut Checker<'_>, path: &str, raw: &MatchConfig) -> RouteMatch {
    let host = raw.host.as_ref().map(|h| {
        let h = h.to_ascii_lowercase();
        if h == "*" {
            HostMatch::Any
        } else if let Some(suffix) = h.strip_prefix('*') {
            if !suffix.starts_with('.') || suffix.len() < 2 {
                c.error(
                    format!("{path}.host"),
                    format!("{h:?}: a wildcard host looks like *.example.com"),
                );
            }
            HostMatch::Suffix(suffix.to_string())
        } else {
            if h.contains('*') {
                c.error(
                    format!("{path}.host"),
                    format!("{h:?}: '*' is only allowed as the first label"),
                );
            }
            HostMatch::Exact(h)
        }
    });
    let path_match = raw.path.as_ref().and_then(|p| {
        let field = format!("{path}.path");
        let given = [p.exact.is_some(), p.prefix.is_some(), p.regex.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            c.error(&field, "needs exactly one of exact, prefix, regex");
            return None;
        }
        for (kind, value) in [("exact", &p.exact), ("prefix", &p.prefix)] {
            if value.as_ref().is_some_and(|v| !v.starts_with('/')) {
                c.error(format!("{field}.{kind}"), "must start with '/'");
            }
        }
        if let Some(exact) = &p.exact {
            Some(PathMatch::Exact(exact.clone()))
        } else if let Some(prefix) = &p.prefix {
            Some(PathMatch::Prefix(prefix.clone()))
        } else {
            let pattern = p.regex.as_deref()?;
            c.regex(&format!("{field}.regex"), pattern)
                .map(PathMatch::Regex)
        }
    });
    let methods = raw.methods.as_ref().map(|methods| {
        methods
            .iter()
            .enumerate()
            .filter_map(
                |(i, m)| match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                    Ok(method) => Some(method),
                    Err(_) => {
                        c.error(
                            format!("{path}.methods[{i}]"),
                            format!("{m:?} is not an HTTP method"),
                        );
                        None
                    }
                },
            )
            .collect()
    });
    let mut values = |kind: &str,
                      list: &[ValueMatchConfig],
                      lower_names: bool|
     -> Vec<ValueMatch> {
        list.iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let field = format!("{path}.{kind}[{i}]");
                if kind == "peer" && !matches!(v.name.as_str(), "uri_san" | "dns_san" | "subject") {
                    c.error(
                        format!("{field}.name"),
                        format!(
                            "{:?}: a peer test is on uri_san, dns_san or subject",
                            v.name
                        ),
                    );
                }
                if kind == "headers" && http::HeaderName::from_bytes(v.name.as_bytes()).is_err() {
                    c.error(
                        format!("{field}.name"),
                        format!("{:?} is not a valid header name", v.name),
                    );
                }
                let given = [v.exact.is_some(), v.regex.is_some(), v.present.is_some()];
                if given.iter().filter(|g| **g).count() != 1 {
                    c.error(&field, "needs exactly one of exact, regex, present");
                    return None;
                }
                let test = if let Some(exact) = &v.exact {
                    ValueTest::Exact(exact.clone())
                } else if let Some(pattern) = &v.regex {
                    ValueTest::Regex(c.regex(&format!("{field}.regex"), pattern)?)
                } else {
                    ValueTest::Present(v.present.unwrap_or(true))
                };
                let name = if lower_names {
                    v.name.to_ascii_lowercase()
                } else {
                    v.name.clone()
                };
                Some(ValueMatch { name, test })
            })
            .collect()
    };
    let headers = values("headers", &raw.headers, true);
    let query = values("query", &raw.query, false);
    let peer = values("peer", &raw.peer, false);
    RouteMatch {
        host,
        path: path_match,
        methods,
        headers,
        query,
        peer,
    }
}

fn fault_from_raw(c: &mut Checker<'_>, path: &str, raw: &FaultConfig) -> Option<Fault> {
    if raw.delay.is_none() && raw.abort.is_none() {
        c.error(path, "needs a delay, an abort, or both");
        return None;
    }
    let mut share = |field: String, percent: f64| {
        if (0.0..=100.0).contains(&percent) {
            Some(percent / 100.0)
        } else {
            c.error(field, format!("{percent} is not a percentage (0 to 100)"));
            None
        }
    };
    let delay = match &raw.delay {
        Some(d) => Some((
            d.fixed.0,
            share(format!("{path}.delay.percent"), d.percent)?,
        )),
        None => None,
    };
    let abort = match &raw.abort {
        Some(a) => {
            let status = share(format!("{path}.abort.percent"), a.percent);
            let code = c.status(&format!("{path}.abort.status"), a.status)?;
            Some((code, status?))
        }
        None => None,
    };
    let only_with_header = match &raw.only_with_header {
        Some(name) => match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) => Some(name),
            Err(_) => {
                c.error(
                    format!("{path}.only_with_header"),
                    format!("{name:?} is not a valid header name"),
                );
                return None;
            }
        },
        None => None,
    };
    Some(Fault {
        delay,
        abort,
        only_with_header,
    })
}

fn cluster_from_raw(
    c: &mut Checker<'_>,
    path: &str,
    raw: &ClusterConfig,
    base_dir: &Path,
) -> Option<Cluster> {
    if raw.name.is_empty() {
        c.error(format!("{path}.name"), "must not be empty");
    }
    if raw.endpoints.is_empty() {
        c.error(format!("{path}.endpoints"), "needs at least one endpoint");
    }
    for (i, e) in raw.endpoints.iter().enumerate() {
        if matches!(e, EndpointConfig::Weighted { weight: 0, .. }) {
            c.error(
                format!("{path}.endpoints[{i}].weight"),
                "must be at least 1",
            );
        }
    }
    let resolved = match super::resolve::cluster_endpoints(raw, &super::resolve::system_lookup) {
        Ok(resolved) => Some(resolved),
        Err(errors) => {
            for (i, message) in errors {
                c.error(format!("{path}.endpoints[{i}]"), message);
            }
            None
        }
    };
    if raw.dns_refresh_rate.0.is_zero() {
        c.error(format!("{path}.dns_refresh_rate"), "must be greater than 0");
    }
    let lb_policy = match raw.lb_policy {
        LbPolicyConfig::RoundRobin => LbPolicy::RoundRobin,
        LbPolicyConfig::Random => LbPolicy::Random,
        LbPolicyConfig::LeastRequest => LbPolicy::LeastRequest,
        LbPolicyConfig::RingHash => LbPolicy::RingHash,
        LbPolicyConfig::Maglev => LbPolicy::Maglev,
    };
    let hashing = matches!(lb_policy, LbPolicy::RingHash | LbPolicy::Maglev);
    let hash_key = match &raw.hash_key {
        None if hashing => {
            c.error(
                format!("{path}.hash_key"),
                "ring_hash and maglev need a hash_key (source_ip, header or cookie)",
            );
            None
        }
        None => None,
        Some(_) if !hashing => {
            c.error(
                format!("{path}.hash_key"),
                "only ring_hash and maglev use a hash_key",
            );
            None
        }
        Some(k) => match (k.source_ip, &k.header, &k.cookie) {
            (Some(true), None, None) => Some(HashKey::SourceIp),
            (None, Some(h), None) => match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(name) => Some(HashKey::Header(name)),
                Err(_) => {
                    c.error(
                        format!("{path}.hash_key.header"),
                        format!("{h:?} is not a valid header name"),
                    );
                    None
                }
            },
            (None, None, Some(cookie)) => Some(HashKey::Cookie(cookie.clone())),
            _ => {
                c.error(
                    format!("{path}.hash_key"),
                    "needs exactly one of source_ip: true, header, cookie",
                );
                None
            }
        },
    };
    for (field, value) in [
        ("connect_timeout", raw.connect_timeout),
        ("request_timeout", raw.request_timeout),
        ("idle_timeout", raw.idle_timeout),
    ] {
        if value.0.is_zero() {
            c.error(format!("{path}.{field}"), "must be greater than 0");
        }
    }
    let health_check = raw.health_check.as_ref().map(|h| {
        let field = format!("{path}.health_check");
        if !h.path.starts_with('/') || h.path.parse::<http::uri::PathAndQuery>().is_err() {
            c.error(
                format!("{field}.path"),
                format!("{:?} is not a path like /healthz", h.path),
            );
        }
        for (name, value) in [("interval", h.interval), ("timeout", h.timeout)] {
            if value.0.is_zero() {
                c.error(format!("{field}.{name}"), "must be greater than 0");
            }
        }
        for (name, value) in [
            ("healthy_threshold", h.healthy_threshold),
            ("unhealthy_threshold", h.unhealthy_threshold),
        ] {
            if value == 0 {
                c.error(format!("{field}.{name}"), "must be at least 1");
            }
        }
        HealthCheck {
            path: h.path.clone(),
            interval: h.interval.0,
            timeout: h.timeout.0,
            healthy_threshold: h.healthy_threshold,
            unhealthy_threshold: h.unhealthy_threshold,
        }
    });
    let breakers = breakers_from_raw(c, path, &raw.circuit_breakers);
    let outlier_detection = raw
        .outlier_detection
        .as_ref()
        .map(|o| outlier_from_raw(c, &format!("{path}.outlier_detection"), o));
    let resolved = resolved?;
    let tls = match &raw.tls {
        None => None,
        Some(tls) => Some(upstream_tls(c, path, raw, tls, &resolved, base_dir)?),
    };
    Some(Cluster {
        name: raw.name.clone(),
        endpoints: resolved.addresses,
        dns_refresh: resolved.by_name.then_some(raw.dns_refresh_rate.0),
        weights: resolved.weights,
        hash_key,
        health_check,
        breakers,
        outlier_detection,
        protocol: raw.protocol,
        lb_policy,
        connect_timeout: raw.connect_timeout.0,
        request_timeout: raw.request_timeout.0,
        idle_timeout: raw.idle_timeout.0,
        max_idle_per_endpoint: raw.max_idle_per_endpoint,
        tls,
    })
}

fn breakers_from_raw(
    c: &mut Checker<'_>,
    path: &str,
    raw: &CircuitBreakersConfig,
) -> CircuitBreakers {
    let field = format!("{path}.circuit_breakers");
    for (name, value) in [
        ("max_requests", raw.max_requests),
        ("max_connections", raw.max_connections),
    ] {
        if value == 0 {
            c.error(format!("{field}.{name}"), "must be at least 1");
        }
    }
    let budget = &raw.retry_budget;
    if !(0.0..=100.0).contains(&budget.budget_percent) {
        c.error(
            format!("{field}.retry_budget.budget_percent"),
            "must be between 0 and 100",
        );
    }
    CircuitBreakers {
        max_requests: raw.max_requests,
        max_connections: raw.max_connections,
        max_pending_requests: raw.max_pending_requests,
        max_retries: raw.max_retries,
        retry_budget: budget.budget_percent / 100.0,
        min_retry_concurrency: budget.min_retry_concurrency,
    }
}

fn outlier_from_raw(
    c: &mut Checker<'_>,
    field: &str,
    raw: &OutlierDetectionConfig,
) -> OutlierDetection {
    for (name, value) in [
        ("interval", raw.interval),
        ("base_ejection_time", raw.base_ejection_time),
    ] {
        if value.0.is_zero() {
            c.error(format!("{field}.{name}"), "must be greater than 0");
        }
    }
    if raw.max_ejection_time.0 < raw.base_ejection_time.0 {
        c.error(
            format!("{field}.max_ejection_time"),
            format!(
                "{} is shorter than base_ejection_time ({})",
                raw.max_ejection_time, raw.base_ejection_time
            ),
        );
    }
    if raw.max_ejection_percent > 100 {
        c.error(
            format!("{field}.max_ejection_percent"),
            "must be between 0 and 100",
        );
    }
    if raw.consecutive_5xx == 0 && raw.consecutive_gateway_failure == 0 {
        c.error(
            field.to_string(),
            "consecutive_5xx and consecutive_gateway_failure are both 0: nothing would eject an endpoint",
        );
    }
    OutlierDetection {
        consecutive_5xx: raw.consecutive_5xx,
        consecutive_gateway_failure: raw.consecutive_gateway_failure,
        interval: raw.interval.0,
        base_ejection_time: raw.base_ejection_time.0,
        max_ejection_time: raw.max_ejection_time.0,
        max_ejection_percent: raw.max_ejection_percent,
    }
}

/// Loads a cluster's `tls` block (see `crate::tls::upstream`). An endpoint is reached by
/// its address, so two endpoints at one address must be verified as the same name; a
/// hostname's addresses are all verified as that hostname.
fn upstream_tls(
    c: &mut Checker<'_>,
    path: &str,
    cluster: &ClusterConfig,
    raw: &UpstreamTlsConfig,
    resolved: &super::resolve::Endpoints,
    base_dir: &Path,
) -> Option<std::sync::Arc<crate::tls::UpstreamTls>> {
    // Each address with the endpoint as written (a hostname stands for several).
    let endpoints = &resolved.addresses;
    let written: Vec<&str> = resolved
        .written
        .iter()
        .map(|&i| cluster.endpoints[i].address())
        .collect();
    let tls = match crate::tls::UpstreamTls::load(raw, cluster.protocol, &written, base_dir) {
        Ok(tls) => tls,
        Err((field, message)) => {
            c.error(format!("{path}.tls{field}"), message);
            return None;
        }
    };
    for (i, address) in endpoints.iter().enumerate() {
        let first = endpoints.iter().position(|a| a == address).unwrap_or(i);
        if tls.server_names[first] != tls.server_names[i] {
            c.error(
                format!("{path}.endpoints[{i}]"),
                format!(
                    "{address} is also endpoints[{first}], verified as another server name; set tls.sni"
                ),
            );
            return None;
        }
    }
    Some(std::sync::Arc::new(tls))
}

fn wasm_from_raw(c: &mut Checker<'_>, raw: &WasmConfig, base_dir: &Path) -> WasmSettings {
    if !(1..=4096).contains(&raw.memory_limit_mb) {
        c.error("wasm.memory_limit_mb", "must be between 1 and 4096");
    }
    if raw.callback_deadline.0.is_zero() {
        c.error("wasm.callback_deadline", "must be greater than 0");
    }
    if !(1..=1024 * 1024).contains(&raw.max_buffered_body_kb) {
        c.error(
            "wasm.max_buffered_body_kb",
            "must be between 1 and 1048576 (1 GiB)",
        );
    }
    if raw.startup_deadline.0.is_zero() {
        c.error("wasm.startup_deadline", "must be greater than 0");
    }
    let cache_dir = match &raw.cache_dir {
        Some(dir) => Some(base_dir.join(dir)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("weft")),
    };
    WasmSettings {
        cache_dir,
        limits: crate::wasm::limits::WasmLimits {
            memory_bytes: raw.memory_limit_mb as usize * 1024 * 1024,
            callback_deadline: raw.callback_deadline.0,
            startup_deadline: raw.startup_deadline.0,
            max_buffered_body: raw.max_buffered_body_kb as usize * 1024,
            pause_timeout: raw.pause_timeout.0,
        },
    }
}

/// Bytes handed to a filter: a YAML string as is, anything else as JSON.
fn config_bytes(value: &Option<serde_json::Value>) -> Bytes {
    match value {
        None => Bytes::new(),
        Some(serde_json::Value::String(s)) => Bytes::from(s.clone()),
        Some(other) => Bytes::from(other.to_string()),
    }
}

fn filters_from_raw(
    c: &mut Checker<'_>,
    listener_path: &str,
    raw: &[FilterConfig],
    base_dir: &Path,
    node: &std::sync::Arc<crate::wasm::state::NodeInfo>,
) -> Vec<crate::wasm::plugin::PluginSpec> {
    let mut names = HashMap::new();
    raw.iter()
        .enumerate()
        .map(|(i, f)| {
            let path = format!("{listener_path}.filters[{i}]");
            if f.name.is_empty() {
                c.error(format!("{path}.name"), "must not be empty");
            }
            if names.insert(f.name.clone(), i).is_some() {
                c.error(
                    format!("{path}.name"),
                    format!("duplicate filter name {:?}", f.name),
                );
            }
            if let Some(pin) = &f.sha256 {
                if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
                    c.error(format!("{path}.sha256"), "must be 64 hex digits");
                }
            }
            let module = match f.module.strip_prefix(crate::wasm::builtin::PREFIX) {
                Some(name) => {
                    if crate::wasm::builtin::module(name).is_none() {
                        let message = if crate::wasm::builtin::missing().contains(&name) {
                            format!(
                                "the built-in filter {name:?} is not in this weft: it was built before scripts/build-filters.sh built the filters; run that script, then build weft again"
                            )
                        } else {
                            format!(
                                "no built-in filter named {name:?} (there are: {})",
                                crate::wasm::builtin::names().join(", ")
                            )
                        };
                        c.error(format!("{path}.module"), message);
                    }
                    PathBuf::from(&f.module)
                }
                None => {
                    let module = base_dir.join(&f.module);
                    if !module.is_file() {
                        c.error(
                            format!("{path}.module"),
                            format!("no module file at {}", module.display()),
                        );
                    }
                    module
                }
            };
            crate::wasm::plugin::PluginSpec {
                name: f.name.clone(),
                module,
                sha256: f.sha256.clone(),
                vm_config: config_bytes(&f.vm_config),
                plugin_config: config_bytes(&f.config),
                root_id: f.root_id.clone(),
                vm_id: f.vm_id.clone(),
                fail_open: f.fail_open,
                node: node.clone(),
            }
        })
        .collect()
}
