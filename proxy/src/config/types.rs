//! The typed, validated config: names resolved to indices, regexes compiled, addresses
//! resolved. Built only by `validate`, so everything in it is known to be consistent.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use regex::Regex;

use super::raw::{RawConfig, UpstreamProtocol};

#[derive(Clone, Debug)]
pub struct Config {
    /// File path or `<embedded default>`.
    pub source: String,
    pub admin: Option<SocketAddr>,
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    pub demo_upstream: Option<SocketAddr>,
    pub wasm: WasmSettings,
    /// The config as written, with defaults filled in (for `/config_dump`).
    pub raw: RawConfig,
}

#[derive(Clone, Debug)]
pub struct WasmSettings {
    pub cache_dir: Option<std::path::PathBuf>,
    pub limits: crate::wasm::limits::WasmLimits,
}

#[derive(Clone, Debug)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub limits: Limits,
    pub access_log: bool,
    pub routes: Vec<Route>,
    pub filters: Vec<crate::wasm::plugin::PluginSpec>,
    /// TLS termination, with the certificates read and parsed.
    pub tls: Option<std::sync::Arc<crate::tls::TlsSettings>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub max_request_header_bytes: usize,
    pub max_request_headers: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub http2_max_concurrent_streams: u32,
    pub http2_initial_stream_window: u32,
    pub http2_initial_connection_window: u32,
}

impl Limits {
    /// How long a connection may wait for a request head: the header-read timeout, or the
    /// idle timeout when that is shorter (an idle kept-alive connection waits for one too).
    pub fn head_wait(&self) -> Duration {
        self.header_read_timeout.min(self.idle_timeout)
    }
}

#[cfg(test)]
impl Limits {
    /// Small limits for unit tests: 1 KiB of request head, 5 headers, 1 s timeouts.
    pub fn small() -> Limits {
        Limits {
            max_request_header_bytes: 1024,
            max_request_headers: 5,
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_connections: 1,
            http2_max_concurrent_streams: 1,
            http2_initial_stream_window: 65535,
            http2_initial_connection_window: 65535,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    pub timeout: Option<Duration>,
    pub fault: Option<Fault>,
    pub retry: Option<RetryPolicy>,
}

/// A route's retry policy (see docs/config.md).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub num_retries: u32,
    pub on_connect_failure: bool,
    pub on_reset: bool,
    pub on_5xx: bool,
    pub on_gateway_error: bool,
    pub retriable_status_codes: Vec<u16>,
    pub per_try_timeout: Option<Duration>,
    pub base_interval: Duration,
    pub max_interval: Duration,
    pub retry_non_idempotent: bool,
    /// Request bodies of a known length up to this are buffered, so they can be retried.
    pub max_buffered_body_bytes: usize,
}

/// Fault injection on a route: delay and/or abort a share of the (eligible) requests.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The delay and the share (0.0..=1.0) of requests it applies to.
    pub delay: Option<(Duration, f64)>,
    /// The status and the share of requests answered with it.
    pub abort: Option<(StatusCode, f64)>,
    /// Only requests with this header are eligible.
    pub only_with_header: Option<http::HeaderName>,
}

#[derive(Clone, Debug, Default)]
pub struct RouteMatch {
    pub host: Option<HostMatch>,
    pub path: Option<PathMatch>,
    pub methods: Option<Vec<Method>>,
    pub headers: Vec<ValueMatch>,
    pub query: Vec<ValueMatch>,
    /// On the client certificate: names `uri_san`, `dns_san`, `subject`.
    pub peer: Vec<ValueMatch>,
}

#[derive(Clone, Debug)]
pub enum HostMatch {
    Any,
    /// Lower-case host without port.
    Exact(String),
    /// `*.example.com` is stored as `.example.com`.
    Suffix(String),
}

#[derive(Clone, Debug)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    /// Anchored so that it must match the whole path.
    Regex(Regex),
}

#[derive(Clone, Debug)]
pub struct ValueMatch {
    pub name: String,
    pub test: ValueTest,
}

#[derive(Clone, Debug)]
pub enum ValueTest {
    Exact(String),
    Regex(Regex),
    Present(bool),
}

#[derive(Clone, Debug)]
pub enum RouteAction {
    /// Index into `Config::clusters`.
    Cluster(usize),
    Weighted(Vec<WeightedTarget>),
    Direct {
        status: StatusCode,
        body: Bytes,
        content_type: String,
    },
    Redirect(Redirect),
}

#[derive(Clone, Debug)]
pub struct WeightedTarget {
    pub cluster: usize,
    pub weight: u32,
}

#[derive(Clone, Debug)]
pub struct Redirect {
    pub status: StatusCode,
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub prefix_rewrite: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    pub name: String,
    /// Hostnames expanded to their addresses (sorted), in the order written.
    pub endpoints: Vec<SocketAddr>,
    /// How often to resolve again, when some endpoint is a hostname.
    pub dns_refresh: Option<Duration>,
    /// One per endpoint, each > 0.
    pub weights: Vec<u32>,
    /// What the hash policies hash.
    pub hash_key: Option<HashKey>,
    pub health_check: Option<HealthCheck>,
    pub breakers: CircuitBreakers,
    pub outlier_detection: Option<OutlierDetection>,
    pub protocol: UpstreamProtocol,
    pub lb_policy: LbPolicy,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_endpoint: usize,
    /// TLS to the endpoints, with the CA and client certificate read and parsed.
    pub tls: Option<std::sync::Arc<crate::tls::UpstreamTls>>,
}

/// A cluster's circuit breakers: past these limits requests get 503 at once (see
/// docs/config.md).
#[derive(Clone, Debug, PartialEq)]
pub struct CircuitBreakers {
    /// Requests in flight to the cluster, across workers.
    pub max_requests: usize,
    /// Open HTTP/1.1 connections to the cluster, across workers.
    pub max_connections: usize,
    /// Requests waiting for a connection while `max_connections` are open.
    pub max_pending_requests: usize,
    /// Retries in flight; None: the retry budget below.
    pub max_retries: Option<usize>,
    /// The retry budget: a share (0.0..=1.0) of the requests in flight...
    pub retry_budget: f64,
    /// ...and at least this many.
    pub min_retry_concurrency: usize,
}

/// Passive health checking of a cluster's endpoints (see `cluster::outlier`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlierDetection {
    /// 0: off.
    pub consecutive_5xx: u32,
    /// 0: off.
    pub consecutive_gateway_failure: u32,
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejection_percent: u32,
}

/// How a cluster picks an endpoint (see `cluster::lb`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    Random,
    LeastRequest,
    RingHash,
    Maglev,
}

/// Active health checking of a cluster's endpoints (see `cluster::health`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

/// The request key of the hash policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    SourceIp,
    Header(http::HeaderName),
    Cookie(String),
}

impl Route {
    /// The cluster indices this route may send to (none for direct responses and redirects).
    pub fn clusters(&self) -> Vec<usize> {
        match &self.action {
            RouteAction::Cluster(c) => vec![*c],
            RouteAction::Weighted(targets) => targets.iter().map(|t| t.cluster).collect(),
            RouteAction::Direct { .. } | RouteAction::Redirect(_) => Vec::new(),
        }
    }
}
