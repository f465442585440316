//! Upstream clusters at run time: for each worker its own connection pool and balancer
//! state, so that picking an endpoint and checking out a connection never contend across
//! workers.

mod client;
mod connect;
pub mod health;
mod http1;
mod lb;
mod limits;
pub mod outlier;

use std::net::SocketAddr;
use std::sync::Arc;

use http::Response;

use crate::config::Cluster;
use crate::metrics::{ClusterMetrics, Metrics};

pub use client::{UpstreamBody, UpstreamClient, UpstreamError};
pub use connect::{ConnectError, Connector, UpstreamIo};
pub use lb::{Balancer, InFlight, hash64};

/// Starts the background tasks of `clusters` (active health checks, outlier reviews) on
/// the current runtime; they end when `clusters` is dropped.
pub fn spawn_tasks(clusters: &Arc<Vec<ClusterRuntime>>) {
    health::spawn_checks(clusters);
    outlier::spawn_reviews(clusters);
}

/// One cluster: its config, metrics, and one [`WorkerUpstream`] per worker.
#[derive(Debug)]
pub struct ClusterRuntime {
    pub config: Arc<Cluster>,
    /// The cluster's name, shared (filters read it per request as `cluster_name`).
    pub name: Arc<str>,
    pub metrics: ClusterMetrics,
    /// How connections to the endpoints are made (TCP, then TLS for a `tls` cluster).
    pub connector: Connector,
    workers: Vec<WorkerUpstream>,
    /// Each endpoint as a URI authority, made once.
    authorities: Vec<http::uri::Authority>,
    /// Which endpoints pass their health checks (all, without checks).
    pub health: health::Health,
    /// Which endpoints outlier detection has ejected (with `outlier_detection`).
    pub outliers: Option<outlier::Outliers>,
    /// Requests in flight per endpoint, across workers (for `/clusters`).
    endpoint_active: Box<[Arc<std::sync::atomic::AtomicUsize>]>,
    /// Requests in flight to the cluster, across workers (the circuit breaker's count).
    active: Arc<std::sync::atomic::AtomicUsize>,
    /// Retries in flight, across workers (the retry budget's count).
    retrying: Arc<std::sync::atomic::AtomicUsize>,
}

/// A request counted against a cluster's circuit breaker until dropped.
#[derive(Debug)]
pub struct ActiveRequest(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What one worker uses to reach a cluster.
#[derive(Debug)]
pub struct WorkerUpstream {
    pub client: UpstreamClient,
    pub balancer: Balancer,
}

impl ClusterRuntime {
    pub fn new(config: &Cluster, metrics: &Metrics, workers: usize) -> Self {
        let config = Arc::new(config.clone());
        let names: Vec<String> = config.endpoints.iter().map(|e| e.to_string()).collect();
        let plan = lb::BalancerPlan::new(config.lb_policy, &names, &config.weights);
        let cluster_metrics = metrics.cluster(&config.name);
        let limits = Arc::new(limits::ConnectionLimits::new(
            config.breakers.max_connections,
            config.breakers.max_pending_requests,
            cluster_metrics.cx_active.clone(),
            cluster_metrics.pending_overflow.clone(),
        ));
        let connector =
            Connector::for_cluster(&config, cluster_metrics.tls_handshake_errors.clone());
        let workers = (0..workers.max(1))
            .map(|_| WorkerUpstream {
                client: UpstreamClient::new(&config, connector.clone(), &limits),
                balancer: plan.balancer(),
            })
            .collect();
        let authorities = config
            .endpoints
            .iter()
            .map(|e| {
                e.to_string()
                    .parse()
                    .expect("a socket address is a valid URI authority")
            })
            .collect();
        let gauges = names
            .iter()
            .map(|n| metrics.endpoint_health(&config.name, n))
            .collect();
        let outliers = config.outlier_detection.clone().map(|o| {
            let gauges = names
                .iter()
                .map(|n| metrics.endpoint_ejected(&config.name, n))
                .collect();
            outlier::Outliers::new(o, cluster_metrics.ejections.clone(), gauges)
        });
        ClusterRuntime {
            name: Arc::from(config.name.as_str()),
            active: Arc::default(),
            retrying: Arc::default(),
            health: health::Health::new(gauges),
            outliers,
            endpoint_active: names.iter().map(|_| Arc::default()).collect(),
            authorities,
            metrics: cluster_metrics,
            connector,
            config,
            workers,
        }
    }

    pub fn worker(&self, worker: usize) -> &WorkerUpstream {
        &self.workers[worker % self.workers.len()]
    }

    /// Picks the endpoint for the next request on `worker`.
    pub fn pick(&self, worker: usize) -> SocketAddr {
        self.config.endpoints[self.pick_index(worker)]
    }

    /// Like [`Self::pick`], with the endpoint's URI authority.
    pub fn pick_with_authority(&self, worker: usize) -> (SocketAddr, &http::uri::Authority) {
        let i = self.pick_index(worker);
        (self.config.endpoints[i], &self.authorities[i])
    }

    /// The endpoint for a request with hash key `key` (see [`Self::hash_key`]): its index,
    /// address and URI authority.
    pub fn pick_for(
        &self,
        worker: usize,
        key: Option<u64>,
    ) -> (usize, SocketAddr, &http::uri::Authority) {
        let balancer = &self.worker(worker).balancer;
        let mut i = balancer.pick(key);
        // Skip endpoints out of the rotation; with none in it, use any (panic mode).
        if !self.in_rotation(i) && self.any_in_rotation() {
            for attempt in 1..=2 * self.config.endpoints.len() as u64 {
                let next = balancer.pick(key.map(|k| hash64(&(k ^ attempt).to_le_bytes())));
                if self.in_rotation(next) {
                    i = next;
                    break;
                }
            }
        }
        (i, self.config.endpoints[i], &self.authorities[i])
    }

    /// Whether endpoint `index` passes its health checks and is not ejected.
    pub fn in_rotation(&self, index: usize) -> bool {
        self.health.is_healthy(index)
            && !self.outliers.as_ref().is_some_and(|o| o.is_ejected(index))
    }

    fn any_in_rotation(&self) -> bool {
        (0..self.config.endpoints.len()).any(|i| self.in_rotation(i))
    }

    /// Counts a request in flight to endpoint `index` until dropped.
    pub fn endpoint_request(&self, index: usize) -> ActiveRequest {
        let counter = &self.endpoint_active[index];
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ActiveRequest(counter.clone())
    }

    /// Requests in flight to endpoint `index`, across workers.
    pub fn endpoint_active(&self, index: usize) -> usize {
        self.endpoint_active[index].load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Tells outlier detection how a request to endpoint `index` went.
    pub fn report(&self, index: usize, result: &Result<Response<UpstreamBody>, UpstreamError>) {
        let Some(outliers) = &self.outliers else {
            return;
        };
        let outcome = match result {
            Ok(response) if response.status().is_server_error() => {
                outlier::Outcome::Status(response.status().as_u16())
            }
            Ok(_) => outlier::Outcome::Success,
            // Refused before reaching the endpoint: says nothing of it.
            Err(UpstreamError::Overflow { .. }) => return,
            Err(_) => outlier::Outcome::LocalFailure,
        };
        if outliers.report(index, outcome) {
            tracing::warn!(cluster = %self.config.name, endpoint = %self.config.endpoints[index], ?outcome, "endpoint ejected by outlier detection");
        }
    }

    /// The request's hash key under the cluster's `hash_key` (None for the other policies,
    /// or when the request has no such header or cookie).
    pub fn hash_key(&self, peer: std::net::IpAddr, headers: &http::HeaderMap) -> Option<u64> {
        match self.config.hash_key.as_ref()? {
            crate::config::HashKey::SourceIp => Some(hash64(peer.to_string().as_bytes())),
            crate::config::HashKey::Header(name) => headers.get(name).map(|v| hash64(v.as_bytes())),
            crate::config::HashKey::Cookie(name) => headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| hash64(v.as_bytes())),
        }
    }

    /// Counts a request against the circuit breaker; None (and nothing counted) when
    /// `max_requests` are already in flight.
    pub fn admit(&self) -> Option<ActiveRequest> {
        use std::sync::atomic::Ordering;
        let before = self.active.fetch_add(1, Ordering::Relaxed);
        let request = ActiveRequest(self.active.clone());
        (before < self.config.breakers.max_requests).then_some(request)
    }

    /// Counts a retry against `max_retries`, or without it the retry budget (retries in
    /// flight may be `retry_budget` of the requests in flight, and at least
    /// `min_retry_concurrency`: by default 20% and 3, as Envoy's budget); None when spent.
    pub fn start_retry(&self) -> Option<ActiveRequest> {
        use std::sync::atomic::Ordering;
        let breakers = &self.config.breakers;
        let budget = breakers.max_retries.unwrap_or_else(|| {
            let active = self.active.load(Ordering::Relaxed);
            ((active as f64 * breakers.retry_budget) as usize).max(breakers.min_retry_concurrency)
        });
        let before = self.retrying.fetch_add(1, Ordering::Relaxed);
        let retry = ActiveRequest(self.retrying.clone());
        (before < budget).then_some(retry)
    }

    fn pick_index(&self, worker: usize) -> usize {
        self.pick_for(worker, None).0
    }
}
