//! The config file's schema, exactly as written in YAML: serde structs with defaults and
//! `deny_unknown_fields`. Nothing here is checked beyond its shape; `validate` turns it into
//! the typed [`crate::config::Config`].

use serde::{Deserialize, Serialize};

use super::duration::ConfigDuration;

/// The whole config file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub admin: AdminConfig,
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub clusters: Vec<ClusterConfig>,
    /// A small echo server built into weft, for trying weft out without an upstream of your own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demo_upstream: Option<DemoUpstreamConfig>,
    /// Limits and the compiled-module cache for wasm filters.
    #[serde(default)]
    pub wasm: WasmConfig,
    /// Who this proxy is, for filters (the `node.*` properties).
    #[serde(default)]
    pub node: NodeConfig,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub id: String,
    pub cluster: String,
    /// Values are strings, or any JSON value (handed to filters as JSON text).
    pub metadata: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WasmConfig {
    /// Where compiled modules are cached; default `$XDG_CACHE_HOME/weft` or `~/.cache/weft`.
    pub cache_dir: Option<String>,
    /// Linear memory one VM may use, in MiB.
    pub memory_limit_mb: u32,
    /// CPU time one filter callback may take.
    pub callback_deadline: ConfigDuration,
    /// CPU time a VM's start-up (`on_vm_start`, `on_configure`) may take.
    pub startup_deadline: ConfigDuration,
    /// Body a request may hold while a filter pauses its body phase, in KiB; past it the
    /// request gets 413 (a response is cut off).
    pub max_buffered_body_kb: u32,
    /// How long a request a filter paused waits to be resumed before it gets 500.
    pub pause_timeout: ConfigDuration,
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            cache_dir: None,
            memory_limit_mb: 64,
            callback_deadline: ConfigDuration::millis(10),
            startup_deadline: ConfigDuration::secs(2),
            max_buffered_body_kb: 1024,
            pause_timeout: ConfigDuration::secs(30),
        }
    }
}

/// One proxy-wasm filter in a listener's chain.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub name: String,
    /// Path of the `.wasm` module, relative to the config file.
    pub module: String,
    /// Expected sha256 of the module (hex); a different module is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Plugin configuration handed to `on_configure`: a string is passed as is, anything
    /// else as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// VM configuration handed to `on_vm_start`, the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_config: Option<serde_json::Value>,
    /// On a filter failure, skip the filter instead of answering 500.
    #[serde(default)]
    pub fail_open: bool,
    #[serde(default)]
    pub root_id: String,
    #[serde(default)]
    pub vm_id: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin endpoint; `null` turns it off.
    #[serde(default = "default_admin_address")]
    pub address: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            address: default_admin_address(),
        }
    }
}

fn default_admin_address() -> Option<String> {
    Some("127.0.0.1:9901".to_string())
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DemoUpstreamConfig {
    pub address: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub limits: ListenerLimits,
    /// The filter chain: request phases run in this order, response phases in reverse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<FilterConfig>,
    /// One access-log line per request (target `weft::access`).
    #[serde(default = "yes")]
    pub access_log: bool,
    /// TLS termination; plain HTTP without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    pub routes: Vec<RouteConfig>,
}

/// TLS termination on a listener.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificates; the client's SNI picks one by `server_names`, and a client that
    /// names none (or one no certificate lists) gets the first.
    pub certificates: Vec<TlsCertificateConfig>,
    /// ALPN protocols offered, in order of preference.
    #[serde(default = "default_alpn")]
    pub alpn: Vec<String>,
    /// Time from accept to a finished handshake; the connection is closed past it.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: ConfigDuration,
    /// The oldest TLS version accepted: "1.2" or "1.3".
    #[serde(default = "default_min_tls")]
    pub min_version: String,
    /// PEM file of the CAs that client certificates must chain to (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<String>,
    /// With `client_ca`: refuse clients without a certificate (default), or accept them
    /// and verify only the certificates that are sent.
    #[serde(default = "yes")]
    pub require_client_certificate: bool,
    /// With `client_ca`: PEM file of certificate revocation lists. A client certificate
    /// they revoke is refused, and so is one below an intermediate none of them covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_crl: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificateConfig {
    /// PEM file: the certificate, then its chain (relative to the config file).
    pub cert: String,
    /// PEM file: its private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: String,
    /// Host names (exact, or `*.example.com`) this certificate is for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<String>,
}

fn default_alpn() -> Vec<String> {
    vec!["h2".to_string(), "http/1.1".to_string()]
}
fn default_handshake_timeout() -> ConfigDuration {
    ConfigDuration::secs(10)
}
fn default_min_tls() -> String {
    "1.2".to_string()
}

fn yes() -> bool {
    true
}

/// Edge limits for one listener; defaults follow Envoy's edge advice.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerLimits {
    /// Total size of the request line and headers, in KiB (431 past it).
    pub max_request_headers_kb: u32,
    /// Number of request headers (431 past it).
    pub max_request_headers: u32,
    /// Time allowed to receive a request's headers (slowloris guard).
    pub header_read_timeout: ConfigDuration,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    pub idle_timeout: ConfigDuration,
    /// Connections open at once on this listener (across all workers); more are refused.
    pub max_connections: u32,
    pub http2_max_concurrent_streams: u32,
    pub http2_initial_stream_window_kb: u32,
    pub http2_initial_connection_window_kb: u32,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_request_headers_kb: 60,
            max_request_headers: 100,
            header_read_timeout: ConfigDuration::secs(10),
            idle_timeout: ConfigDuration::secs(300),
            max_connections: 10_000,
            http2_max_concurrent_streams: 100,
            http2_initial_stream_window_kb: 64,
            http2_initial_connection_window_kb: 1024,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Used in metrics and logs; defaults to `route<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "match", default)]
    pub matcher: MatchConfig,
    // Exactly one of the four actions below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted_clusters: Option<Vec<WeightedClusterConfig>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<DirectResponseConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectConfig>,
    /// Time to wait for the upstream's response headers; overrides the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<ConfigDuration>,
    /// Fault injection (Istio-style): delay or abort a share of the requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultConfig>,
    /// Retries of failed upstream attempts (requests without a body only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicyConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicyConfig {
    /// Retries after the first attempt.
    #[serde(default = "default_num_retries")]
    pub num_retries: u32,
    /// When to retry: connect_failure, reset, 5xx, gateway_error (502, 503, 504, and a
    /// per-try timeout), retriable_status_codes.
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retriable_status_codes: Vec<u16>,
    /// Time one attempt may take (default: the route's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<ConfigDuration>,
    /// Exponential backoff with full jitter between attempts.
    #[serde(default = "default_backoff_base")]
    pub base_interval: ConfigDuration,
    #[serde(default = "default_backoff_max")]
    pub max_interval: ConfigDuration,
    /// Also retry methods that are not idempotent (POST, PATCH).
    #[serde(default)]
    pub retry_non_idempotent: bool,
    /// A request body of a known length up to this many bytes is read whole before the
    /// first attempt and kept, so that it can be sent again; a longer one (or one of
    /// unknown length) is streamed, and that request is not retried. 0: bodies never are.
    #[serde(default = "default_retry_buffer")]
    pub max_buffered_body_bytes: usize,
}

fn default_retry_buffer() -> usize {
    64 * 1024
}

fn default_num_retries() -> u32 {
    1
}
fn default_retry_on() -> Vec<String> {
    vec![
        "connect_failure".to_string(),
        "reset".to_string(),
        "gateway_error".to_string(),
    ]
}
fn default_backoff_base() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_millis(25))
}
fn default_backoff_max() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_millis(250))
}

/// Delays and aborts for testing how clients cope with a slow or failing service.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelayConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbortConfig>,
    /// Only requests with this header are eligible (any value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_with_header: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultDelayConfig {
    pub fixed: ConfigDuration,
    /// Share of eligible requests delayed, 0..=100.
    #[serde(default = "hundred")]
    pub percent: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAbortConfig {
    /// The status answered instead of forwarding.
    pub status: u16,
    /// Share of eligible requests aborted, 0..=100.
    #[serde(default = "hundred")]
    pub percent: f64,
}

fn hundred() -> f64 {
    100.0
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// `api.example.com`, `*.example.com` or `*`; compared without the port, case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatchConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatchConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<ValueMatchConfig>,
    /// Tests on the client certificate of an mTLS connection: `name` is `uri_san`,
    /// `dns_san` or `subject`. A request without a client certificate matches none of
    /// them (except `present: false`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peer: Vec<ValueMatchConfig>,
}

/// Exactly one of `exact`, `prefix`, `regex` (a regex must match the whole path).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PathMatchConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A header or query parameter test: exactly one of `exact`, `regex` (whole value), `present`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatchConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedClusterConfig {
    pub cluster: String,
    pub weight: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponseConfig {
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default = "text_plain")]
    pub content_type: String,
}

fn text_plain() -> String {
    "text/plain; charset=utf-8".to_string()
}

/// Parts of the redirect target; what is not given is taken from the request.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    #[serde(default = "moved_permanently")]
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Replaces the matched path prefix (needs a `prefix` path match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_rewrite: Option<String>,
}

fn moved_permanently() -> u16 {
    301
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub name: String,
    /// `ip:port` or `hostname:port` (each address a hostname resolves to is an endpoint),
    /// or `{address, weight}`.
    pub endpoints: Vec<EndpointConfig>,
    /// How often hostnames are resolved again; a change of addresses reloads the config.
    #[serde(default = "default_dns_refresh_rate")]
    pub dns_refresh_rate: ConfigDuration,
    #[serde(default)]
    pub dns_lookup_family: DnsLookupFamily,
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    #[serde(default)]
    pub lb_policy: LbPolicyConfig,
    /// What `ring_hash` and `maglev` hash: exactly one of `source_ip: true`,
    /// `header: NAME`, `cookie: NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<HashKeyConfig>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// Time to wait for response headers, unless the route sets its own `timeout`.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: ConfigDuration,
    /// Pooled upstream connections unused for this long are closed.
    #[serde(default = "default_pool_idle_timeout")]
    pub idle_timeout: ConfigDuration,
    #[serde(default = "default_max_idle")]
    pub max_idle_per_endpoint: usize,
    /// Active health checks of the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
    #[serde(default)]
    pub circuit_breakers: CircuitBreakersConfig,
    /// Passive health: endpoints that fail in a row leave the rotation for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetectionConfig>,
    /// TLS to the endpoints (mTLS with a client certificate); plain TCP without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTlsConfig>,
}

/// TLS from weft to a cluster's endpoints.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// PEM bundle of the CAs the endpoints' certificates must chain to (relative to the
    /// config file). Required: weft has no built-in set of public roots.
    pub ca_file: String,
    /// The name sent as SNI and that the certificates must be valid for. Default: the
    /// endpoint's hostname when it was written as `host:port`; an endpoint written as
    /// `ip:port` is then verified by IP address (no SNI is sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// PEM file: the client certificate, then its chain, for mTLS (needs `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// PEM file: the client certificate's private key (needs `certificate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// ALPN protocols offered; default: the cluster's protocol (`http/1.1` or `h2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<Vec<String>>,
    /// Identities the endpoints' certificates may carry, matched exactly against their DNS
    /// and URI subject alternative names (a SPIFFE id such as
    /// `spiffe://cluster.local/ns/shop/sa/api`). When given, a certificate that chains to
    /// `ca_file` and carries one of them is accepted in place of the server-name check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_subject_alt_names: Vec<String>,
    /// PEM file of certificate revocation lists: an endpoint certificate they revoke is
    /// refused, and so is one below an intermediate none of them covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_file: Option<String>,
    /// The oldest TLS version offered: "1.2" or "1.3".
    #[serde(default = "default_min_tls")]
    pub min_version: String,
}

/// Limits past which requests to a cluster fail fast with 503 instead of queueing.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakersConfig {
    /// Requests in flight to the cluster, across workers (Envoy's default: 1024).
    pub max_requests: usize,
    /// Open HTTP/1.1 connections to the cluster, across workers (Envoy's default: 1024).
    pub max_connections: usize,
    /// Requests waiting for a connection while `max_connections` are open (Envoy's
    /// default: 1024).
    pub max_pending_requests: usize,
    /// Retries in flight to the cluster. Unset: the retry budget decides (a share of the
    /// requests in flight, see `retry_budget`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<usize>,
    pub retry_budget: RetryBudgetConfig,
}

impl Default for CircuitBreakersConfig {
    fn default() -> Self {
        CircuitBreakersConfig {
            max_requests: 1024,
            max_connections: 1024,
            max_pending_requests: 1024,
            max_retries: None,
            retry_budget: RetryBudgetConfig::default(),
        }
    }
}

/// Retries in flight may be `budget_percent` of the requests in flight, and at least
/// `min_retry_concurrency` (Envoy's retry budget and its defaults).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudgetConfig {
    pub budget_percent: f64,
    pub min_retry_concurrency: usize,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            budget_percent: 20.0,
            min_retry_concurrency: 3,
        }
    }
}

/// Outlier detection (passive health checking), with Envoy's defaults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierDetectionConfig {
    /// Failures in a row that eject an endpoint: 5xx answers, and connect failures,
    /// resets and timeouts. 0 turns this check off.
    pub consecutive_5xx: u32,
    /// Gateway failures in a row that eject an endpoint: 502, 503, 504, and connect
    /// failures, resets and timeouts. 0 (the default) turns this check off.
    pub consecutive_gateway_failure: u32,
    /// How often ejections are reviewed: ejected endpoints whose time is up come back, and
    /// the ejection count of an endpoint that stayed in drops by one.
    pub interval: ConfigDuration,
    /// An ejection lasts this long times the number of times the endpoint was ejected...
    pub base_ejection_time: ConfigDuration,
    /// ...but no longer than this.
    pub max_ejection_time: ConfigDuration,
    /// At most this share of the endpoints is ejected at once (yet always at least one).
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetectionConfig {
    fn default() -> Self {
        OutlierDetectionConfig {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 0,
            interval: ConfigDuration::secs(10),
            base_ejection_time: ConfigDuration::secs(30),
            max_ejection_time: ConfigDuration::secs(300),
            max_ejection_percent: 10,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Path of the GET; a 2xx answer is a pass.
    pub path: String,
    #[serde(default = "default_hc_interval")]
    pub interval: ConfigDuration,
    #[serde(default = "default_hc_timeout")]
    pub timeout: ConfigDuration,
    /// Passes in a row that bring an unhealthy endpoint back.
    #[serde(default = "default_hc_healthy")]
    pub healthy_threshold: u32,
    /// Failures in a row that take an endpoint out.
    #[serde(default = "default_hc_unhealthy")]
    pub unhealthy_threshold: u32,
}

fn default_hc_interval() -> ConfigDuration {
    ConfigDuration::secs(5)
}
fn default_hc_timeout() -> ConfigDuration {
    ConfigDuration::secs(1)
}
fn default_hc_healthy() -> u32 {
    2
}
fn default_hc_unhealthy() -> u32 {
    3
}

fn default_dns_refresh_rate() -> ConfigDuration {
    ConfigDuration::secs(5)
}

/// Which of a hostname's addresses become endpoints.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DnsLookupFamily {
    /// The IPv4 addresses if there are any, else the IPv6 ones (Envoy's default).
    #[default]
    V4Preferred,
    V4Only,
    V6Only,
    /// Every address.
    All,
}

fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration::secs(5)
}
fn default_request_timeout() -> ConfigDuration {
    ConfigDuration::secs(15)
}
fn default_pool_idle_timeout() -> ConfigDuration {
    ConfigDuration::secs(60)
}
fn default_max_idle() -> usize {
    64
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 cleartext with prior knowledge (h2c).
    Http2,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicyConfig {
    /// Weighted by the endpoints' weights (smooth weighted round robin).
    #[default]
    RoundRobin,
    Random,
    /// Power of two choices on requests in flight, weighted.
    LeastRequest,
    RingHash,
    Maglev,
}

/// An endpoint: `"host:port"`, or `{address: "host:port", weight: 3}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum EndpointConfig {
    Address(String),
    Weighted {
        address: String,
        #[serde(default = "one")]
        weight: u32,
    },
}

impl EndpointConfig {
    /// The address as written (`host:port` or `ip:port`).
    pub fn address(&self) -> &str {
        match self {
            EndpointConfig::Address(address) | EndpointConfig::Weighted { address, .. } => address,
        }
    }
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HashKeyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
}
