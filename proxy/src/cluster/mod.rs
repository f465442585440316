//! Upstream clusters at run time: for each worker its own connection pool and balancer
//! state, so that picking an endpoint and checking out a connection never contend across
//! workers.

mod client;
mod lb;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Cluster;
use crate::metrics::{ClusterMetrics, Metrics};

pub use client::{UpstreamClient, UpstreamError};
pub use lb::Balancer;

/// One cluster: its config, metrics, and one [`WorkerUpstream`] per worker.
#[derive(Debug)]
pub struct ClusterRuntime {
    pub config: Arc<Cluster>,
    pub metrics: ClusterMetrics,
    workers: Vec<WorkerUpstream>,
    /// Each endpoint as a URI authority, made once.
    authorities: Vec<http::uri::Authority>,
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
        let workers = (0..workers.max(1))
            .map(|_| WorkerUpstream {
                client: UpstreamClient::new(&config),
                balancer: Balancer::new(config.lb_policy),
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
        ClusterRuntime {
            authorities,
            metrics: metrics.cluster(&config.name),
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

    fn pick_index(&self, worker: usize) -> usize {
        self.worker(worker)
            .balancer
            .pick(self.config.endpoints.len())
    }
}
