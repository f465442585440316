//! A snapshot is everything a request needs that comes from config: listeners, routes,
//! clusters (with per-worker pools) and the metric handles for them. It is immutable once
//! built; a request holds the `Arc<Snapshot>` it started with until it ends.

use std::sync::Arc;
use std::time::SystemTime;

use crate::cluster::ClusterRuntime;
use crate::config::{Config, ConfigError, ConfigErrors, RouteAction};
use crate::metrics::{ListenerMetrics, Metrics, StatusCounters};
use crate::wasm::host::WasmRuntime;
use crate::wasm::plugin::Plugin;

#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every snapshot published in this process.
    pub version: u64,
    pub loaded_at: SystemTime,
    pub config: Config,
    pub listeners: Vec<ListenerRuntime>,
    /// Shared with the filters' VMs, which send http calls to them.
    pub clusters: Arc<Vec<ClusterRuntime>>,
}

#[derive(Debug)]
pub struct ListenerRuntime {
    pub name: Arc<str>,
    pub metrics: ListenerMetrics,
    pub routes: Vec<RouteRuntime>,
    /// The filter chain, in request order.
    pub filters: Vec<Arc<Plugin>>,
    /// Request counters for requests a filter routed (`weft.cluster`), by cluster index;
    /// empty for a listener without filters.
    pub filter_routed: Vec<StatusCounters>,
}

#[derive(Debug)]
pub struct RouteRuntime {
    pub name: Arc<str>,
    /// Request counters per target: one per weighted cluster, else exactly one.
    pub targets: Vec<StatusCounters>,
}

impl Snapshot {
    /// Builds everything, including every filter's VMs (one per worker, each through
    /// `on_vm_start` and `on_configure`). A filter that cannot load is an error naming it.
    ///
    /// With a `previous` snapshot (a reload), what did not change is taken over rather than
    /// built again: the clusters (and their connection pools) when no cluster changed, and
    /// each filter whose entry, module bytes and limits are the same (its VMs keep running).
    pub fn build(
        version: u64,
        config: Config,
        metrics: &Metrics,
        workers: usize,
        wasm: Option<&Arc<WasmRuntime>>,
        previous: Option<&Snapshot>,
    ) -> Result<Self, ConfigErrors> {
        let reused_clusters = previous.filter(|p| p.config.clusters == config.clusters);
        let clusters: Arc<Vec<ClusterRuntime>> = match reused_clusters {
            Some(previous) => previous.clusters.clone(),
            None => Arc::new(
                config
                    .clusters
                    .iter()
                    .map(|c| ClusterRuntime::new(c, metrics, workers))
                    .collect(),
            ),
        };
        let mut errors = Vec::new();
        let mut filters_by_listener = Vec::new();
        for (i, listener) in config.listeners.iter().enumerate() {
            let mut chain = Vec::new();
            for (j, spec) in listener.filters.iter().enumerate() {
                let Some(runtime) = wasm else { break };
                let kept = reused_clusters.and_then(|p| {
                    p.plugin(&listener.name, &spec.name)
                        .filter(|old| old.unchanged(spec, &config.wasm.limits))
                });
                if let Some(old) = kept {
                    chain.push(old.clone());
                    continue;
                }
                let counters = metrics.filter_counters(&listener.name, &spec.name);
                match Plugin::build(
                    runtime,
                    spec.clone(),
                    config.wasm.limits.clone(),
                    workers,
                    counters,
                    &clusters,
                ) {
                    Ok(plugin) => chain.push(Arc::new(plugin)),
                    Err(error) => errors.push(ConfigError {
                        source: config.source.clone(),
                        location: None,
                        path: format!("listeners[{i}].filters[{j}]"),
                        message: format!("filter {:?}: {}", spec.name, crate::error::chain(&error)),
                    }),
                }
            }
            filters_by_listener.push(chain);
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let mut filters_by_listener = filters_by_listener.into_iter();

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
                filters: filters_by_listener.next().unwrap_or_default(),
                filter_routed: if l.filters.is_empty() {
                    Vec::new()
                } else {
                    config
                        .clusters
                        .iter()
                        .map(|c| {
                            metrics.status_counters(&l.name, crate::proxy::FILTER_ROUTE, &c.name)
                        })
                        .collect()
                },
            })
            .collect();
        Ok(Snapshot {
            version,
            loaded_at: SystemTime::now(),
            config,
            listeners,
            clusters,
        })
    }

    /// The plugin named `filter` in the chain of the listener named `listener`.
    pub fn plugin(&self, listener: &str, filter: &str) -> Option<&Arc<Plugin>> {
        let listener = self.listeners.iter().find(|l| &*l.name == listener)?;
        listener.filters.iter().find(|p| p.spec.name == filter)
    }

    /// Every plugin of every listener's chain.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.listeners.iter().flat_map(|l| l.filters.iter())
    }

    /// Whether any listener has a filter chain (and so needs the wasm runtime).
    pub fn needs_wasm(config: &Config) -> bool {
        config.listeners.iter().any(|l| !l.filters.is_empty())
    }
}

/// Loads every filter of `config` as a start would (compile, instantiate, `on_vm_start`,
/// `on_configure`, on one VM each), for `weft validate`, `weft bundle build` and the
/// control plane. Returns the config when all of them load.
pub fn check_filters(config: Config) -> Result<Config, ConfigErrors> {
    if !Snapshot::needs_wasm(&config) {
        return Ok(config);
    }
    let runtime = Arc::new(WasmRuntime::new(config.wasm.cache_dir.clone()));
    let metrics = Metrics::new();
    Snapshot::build(0, config, &metrics, 1, Some(&runtime), None).map(|s| s.config)
}
