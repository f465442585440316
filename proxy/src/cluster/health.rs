//! Active health checks: for a cluster with a `health_check`, one task per process probes
//! every endpoint with an HTTP GET at the configured interval, on a new connection made
//! as the cluster's requests make theirs (so over TLS for a `tls` cluster). `unhealthy_threshold`
//! failures in a row (no answer, a timeout, or a status outside 200..=299) take an endpoint
//! out of the rotation; `healthy_threshold` successes in a row bring it back. Endpoints start
//! healthy. When every endpoint is unhealthy, the balancer uses them all anyway (Envoy's
//! "panic mode"): sending somewhere beats refusing everything.
//!
//! A passing check also ends an outlier ejection (see `outlier`).
//!
//! The task holds only a weak reference to the snapshot's clusters, so it ends when a reload
//! replaces them (a reload that keeps the clusters keeps their checks and state).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::metrics::gauge::Gauge;

use super::{ClusterRuntime, Connector};
use crate::config::HealthCheck;
use crate::config::raw::UpstreamProtocol;

/// The health of a cluster's endpoints, read by every worker's balancer.
#[derive(Debug)]
pub struct Health {
    healthy: Box<[AtomicBool]>,
    gauges: Vec<Gauge>,
}

impl Health {
    pub fn new(gauges: Vec<Gauge>) -> Self {
        for g in &gauges {
            g.set(1);
        }
        Health {
            healthy: gauges.iter().map(|_| AtomicBool::new(true)).collect(),
            gauges,
        }
    }

    pub fn is_healthy(&self, index: usize) -> bool {
        self.healthy[index].load(Ordering::Relaxed)
    }

    fn set(&self, index: usize, healthy: bool) {
        self.healthy[index].store(healthy, Ordering::Relaxed);
        self.gauges[index].set(i64::from(healthy));
    }
}

/// Starts the checks of every cluster in `clusters` that has a `health_check`, on the
/// current runtime.
pub fn spawn_checks(clusters: &Arc<Vec<ClusterRuntime>>) {
    for (index, cluster) in clusters.iter().enumerate() {
        if let Some(check) = cluster.config.health_check.clone() {
            tokio::spawn(run(Arc::downgrade(clusters), index, check));
        }
    }
}

async fn run(clusters: Weak<Vec<ClusterRuntime>>, index: usize, check: HealthCheck) {
    let mut streaks: Vec<(u32, u32)> = Vec::new(); // (successes, failures) in a row
    let mut ticker = tokio::time::interval(check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(all) = clusters.upgrade() else {
            return;
        };
        let cluster = &all[index];
        let (endpoints, protocol) = (cluster.config.endpoints.clone(), cluster.config.protocol);
        let host = cluster.config.name.clone();
        let connector = cluster.connector.clone();
        drop(all);
        streaks.resize(endpoints.len(), (0, 0));
        let probes = endpoints
            .iter()
            .map(|e| probe(&connector, *e, protocol, &host, &check.path, check.timeout));
        let results = futures_util::future::join_all(probes).await;
        let Some(all) = clusters.upgrade() else {
            return;
        };
        let cluster = &all[index];
        for (i, ok) in results.into_iter().enumerate() {
            let streak = &mut streaks[i];
            if ok {
                *streak = (streak.0.saturating_add(1), 0);
                // A passing check ends an outlier ejection (as Envoy does by default).
                if cluster.outliers.as_ref().is_some_and(|o| o.uneject(i)) {
                    tracing::info!(cluster = %cluster.config.name, endpoint = %endpoints[i], "endpoint passes its health check; outlier ejection ended");
                }
            } else {
                *streak = (0, streak.1.saturating_add(1));
            }
            let healthy = cluster.health.is_healthy(i);
            if healthy && streak.1 >= check.unhealthy_threshold {
                tracing::warn!(cluster = %cluster.config.name, endpoint = %endpoints[i], "endpoint failed its health checks; out of the rotation");
                cluster.health.set(i, false);
            } else if !healthy && streak.0 >= check.healthy_threshold {
                tracing::info!(cluster = %cluster.config.name, endpoint = %endpoints[i], "endpoint passes its health checks again; back in the rotation");
                cluster.health.set(i, true);
            }
        }
    }
}

/// One GET of `path` on `endpoint`: true for a 2xx answer within `timeout`.
async fn probe(
    connector: &Connector,
    endpoint: SocketAddr,
    protocol: UpstreamProtocol,
    host: &str,
    path: &str,
    timeout: Duration,
) -> bool {
    let attempt = async {
        let io = TokioIo::new(connector.connect(endpoint).await.ok()?);
        let request = http::Request::get(path)
            .header(http::header::HOST, host)
            .header(http::header::USER_AGENT, "weft-health-check")
            .body(Empty::<Bytes>::new())
            .ok()?;
        let status = match protocol {
            UpstreamProtocol::Http1 => {
                let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.ok()?;
                tokio::spawn(conn);
                sender.send_request(request).await.ok()?.status()
            }
            UpstreamProtocol::Http2 => {
                let (mut sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .ok()?;
                tokio::spawn(conn);
                let mut request = request;
                *request.uri_mut() = format!("{}://{endpoint}{path}", connector.scheme())
                    .parse()
                    .ok()?;
                sender.send_request(request).await.ok()?.status()
            }
        };
        Some(status.is_success())
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}
