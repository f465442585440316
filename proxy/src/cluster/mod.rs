//! Upstream clusters at run time: for each worker its own connection pool and balancer
//! state, so that picking an endpoint and checking out a connection never contend across
//! workers.

mod client;
mod connect;
pub mod health;
mod http1;
mod lb;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Cluster;
use crate::metrics::{ClusterMetrics, Metrics};

pub use client::{UpstreamBody, UpstreamClient, UpstreamError};
pub use connect::{ConnectError, Connector, UpstreamIo};
pub use lb::{Balancer, InFlight, hash64};

/// One cluster: its config, metrics, and one [`WorkerUpstream`] per worker.
#[derive(Debug)]
pub struct ClusterRuntime {
    pub config: Arc<Cluster>,
    pub metrics: ClusterMetrics,
    /// How connections to the endpoints are made (TCP, then TLS for a `tls` cluster).
    pub connector: Connector,
    workers: Vec<WorkerUpstream>,
    /// Each endpoint as a URI authority, made once.
    authorities: Vec<http::uri::Authority>,
    /// Which endpoints pass their health checks (all, without checks).
    pub health: health::Health,
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
        let connector =
            Connector::for_cluster(&config, cluster_metrics.tls_handshake_errors.clone());
        let workers = (0..workers.max(1))
            .map(|_| WorkerUpstream {
                client: UpstreamClient::new(&config, connector.clone()),
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
        ClusterRuntime {
            active: Arc::default(),
            retrying: Arc::default(),
            health: health::Health::new(gauges),
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
        // Skip endpoints out of the rotation; with none healthy, use any (panic mode).
        if !self.health.is_healthy(i) && self.health.any_healthy() {
            for attempt in 1..=2 * self.config.endpoints.len() as u64 {
                let next = balancer.pick(key.map(|k| hash64(&(k ^ attempt).to_le_bytes())));
                if self.health.is_healthy(next) {
                    i = next;
                    break;
                }
            }
        }
        (i, self.config.endpoints[i], &self.authorities[i])
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
        (before < self.config.max_requests).then_some(request)
    }

    /// Counts a retry against the retry budget (retries in flight may be 20% of the
    /// requests in flight, and at least 3, as Envoy's default budget); None when spent.
    pub fn start_retry(&self) -> Option<ActiveRequest> {
        use std::sync::atomic::Ordering;
        let active = self.active.load(Ordering::Relaxed);
        let budget = (active / 5).max(3);
        let before = self.retrying.fetch_add(1, Ordering::Relaxed);
        let retry = ActiveRequest(self.retrying.clone());
        (before < budget).then_some(retry)
    }

    fn pick_index(&self, worker: usize) -> usize {
        self.pick_for(worker, None).0
    }
}
