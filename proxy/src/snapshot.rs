//! A snapshot is everything a request needs that comes from config: listeners, routes,
//! clusters (with per-worker pools) and the metric handles for them. It is immutable once
//! built; a request holds the `Arc<Snapshot>` it started with until it ends.

use std::sync::Arc;
use std::time::SystemTime;

use crate::cluster::ClusterRuntime;
use crate::config::{Config, RouteAction};
use crate::metrics::{ListenerMetrics, Metrics, StatusCounters};

#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every snapshot published in this process.
    pub version: u64,
    pub loaded_at: SystemTime,
    pub config: Config,
    pub listeners: Vec<ListenerRuntime>,
    pub clusters: Vec<ClusterRuntime>,
}

#[derive(Debug)]
pub struct ListenerRuntime {
    pub name: Arc<str>,
    pub metrics: ListenerMetrics,
    pub routes: Vec<RouteRuntime>,
}

#[derive(Debug)]
pub struct RouteRuntime {
    pub name: Arc<str>,
    /// Request counters per target: one per weighted cluster, else exactly one.
    pub targets: Vec<StatusCounters>,
}

impl Snapshot {
    pub fn build(version: u64, config: Config, metrics: &Metrics, workers: usize) -> Self {
        let clusters: Vec<ClusterRuntime> = config
            .clusters
            .iter()
            .map(|c| ClusterRuntime::new(c, metrics, workers))
            .collect();
        let listeners = config
            .listeners
            .iter()
            .map(|l| ListenerRuntime {
                name: Arc::from(l.name.as_str()),
                metrics: metrics.listener(&l.name),
                routes: l
                    .routes
                    .iter()
                    .map(|r| {
                        let cluster_name = |i: usize| config.clusters[i].name.as_str();
                        let targets = match &r.action {
                            RouteAction::Cluster(c) => {
                                vec![metrics.status_counters(&l.name, &r.name, cluster_name(*c))]
                            }
                            RouteAction::Weighted(targets) => targets
                                .iter()
                                .map(|t| {
                                    metrics.status_counters(
                                        &l.name,
                                        &r.name,
                                        cluster_name(t.cluster),
                                    )
                                })
                                .collect(),
                            RouteAction::Direct { .. } | RouteAction::Redirect(_) => {
                                vec![metrics.status_counters(&l.name, &r.name, "")]
                            }
                        };
                        RouteRuntime {
                            name: Arc::from(r.name.as_str()),
                            targets,
                        }
                    })
                    .collect(),
            })
            .collect();
        Snapshot {
            version,
            loaded_at: SystemTime::now(),
            config,
            listeners,
            clusters,
        }
    }
}
