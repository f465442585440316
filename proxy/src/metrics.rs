//! Process-wide metrics, exported on the admin endpoint in Prometheus text format.
//!
//! Families are registered once per process. Request handling never looks a label set up:
//! a snapshot resolves the handles it needs (per listener, route and cluster) when it is
//! built, so the hot path only touches atomics.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Looks a series up and clones its handle. The family's read guard must be dropped before
/// the next look-up: holding it across one that inserts would deadlock.
fn get<M: Clone, C: Fn() -> M>(family: &Family<Labels, M, C>, labels: &Labels) -> M {
    family.get_or_create(labels).clone()
}

/// Status classes 1xx..5xx, as label values and array indices.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Index into [`STATUS_CLASSES`] for a status code.
pub fn status_class(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    request_duration: HistogramFamily,
    rejected: Family<Labels, Counter>,
    tls_handshake_errors: Family<Labels, Counter>,
    faults: Family<Labels, Counter>,
    endpoint_healthy: Family<Labels, Gauge>,
    endpoint_ejected: Family<Labels, Gauge>,
    outlier_ejections: Family<Labels, Counter>,
    upstream_cx_active: Family<Labels, Gauge>,
    upstream_pending_overflow: Family<Labels, Counter>,
    cx_active: Family<Labels, Gauge>,
    cx_total: Family<Labels, Counter>,
    cx_overflow: Family<Labels, Counter>,
    rx_bytes: Family<Labels, Counter>,
    tx_bytes: Family<Labels, Counter>,
    upstream_rq: Family<Labels, Counter>,
    upstream_connect_errors: Family<Labels, Counter>,
    upstream_timeouts: Family<Labels, Counter>,
    upstream_errors: Family<Labels, Counter>,
    upstream_overflow: Family<Labels, Counter>,
    upstream_retries: Family<Labels, Counter>,
    upstream_retry_overflow: Family<Labels, Counter>,
    upstream_tls_handshake_errors: Family<Labels, Counter>,
    filter_failures: Family<Labels, Counter>,
    reloads: Family<Labels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn duration_histogram() -> Histogram {
    // 100 µs .. ~26 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("weft");
        let m = Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            rejected: Family::default(),
            tls_handshake_errors: Family::default(),
            faults: Family::default(),
            endpoint_healthy: Family::default(),
            endpoint_ejected: Family::default(),
            outlier_ejections: Family::default(),
            upstream_cx_active: Family::default(),
            upstream_pending_overflow: Family::default(),
            cx_active: Family::default(),
            cx_total: Family::default(),
            cx_overflow: Family::default(),
            rx_bytes: Family::default(),
            tx_bytes: Family::default(),
            upstream_rq: Family::default(),
            upstream_connect_errors: Family::default(),
            upstream_timeouts: Family::default(),
            upstream_errors: Family::default(),
            upstream_overflow: Family::default(),
            upstream_retries: Family::default(),
            upstream_retry_overflow: Family::default(),
            upstream_tls_handshake_errors: Family::default(),
            filter_failures: Family::default(),
            reloads: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Downstream requests answered, by listener, route, cluster and status class",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request start to the end of the response, by listener",
            m.request_duration.clone(),
        );
        registry.register(
            "downstream_rq_rejected",
            "Requests refused at the edge, by listener and reason (header_limits, bad_framing, bad_request)",
            m.rejected.clone(),
        );
        registry.register(
            "downstream_tls_handshake_errors",
            "TLS handshakes that failed or timed out, by listener",
            m.tls_handshake_errors.clone(),
        );
        registry.register(
            "upstream_endpoint_healthy",
            "1 while an endpoint is in the rotation, 0 while its health checks fail, by cluster and endpoint",
            m.endpoint_healthy.clone(),
        );
        registry.register(
            "upstream_endpoint_ejected",
            "1 while outlier detection keeps an endpoint out of the rotation, by cluster and endpoint",
            m.endpoint_ejected.clone(),
        );
        registry.register(
            "upstream_outlier_ejections",
            "Endpoints ejected by outlier detection, by cluster",
            m.outlier_ejections.clone(),
        );
        registry.register(
            "upstream_cx_active",
            "Open upstream HTTP/1.1 connections, by cluster",
            m.upstream_cx_active.clone(),
        );
        registry.register(
            "upstream_rq_pending_overflow",
            "Requests refused with 503 because max_connections were open and max_pending_requests were waiting, by cluster",
            m.upstream_pending_overflow.clone(),
        );
        registry.register(
            "fault_injected",
            "Requests a route's fault injection delayed or aborted, by listener and kind (delay, abort)",
            m.faults.clone(),
        );
        registry.register(
            "downstream_cx_active",
            "Open downstream connections",
            m.cx_active.clone(),
        );
        registry.register(
            "downstream_cx",
            "Downstream connections accepted",
            m.cx_total.clone(),
        );
        registry.register(
            "downstream_cx_overflow",
            "Downstream connections refused by max_connections",
            m.cx_overflow.clone(),
        );
        registry.register(
            "downstream_rx_bytes",
            "Request body bytes received",
            m.rx_bytes.clone(),
        );
        registry.register(
            "downstream_tx_bytes",
            "Response body bytes sent",
            m.tx_bytes.clone(),
        );
        registry.register(
            "upstream_rq",
            "Requests sent upstream, by cluster",
            m.upstream_rq.clone(),
        );
        registry.register(
            "upstream_cx_connect_errors",
            "Upstream connection attempts that failed, by cluster",
            m.upstream_connect_errors.clone(),
        );
        registry.register(
            "upstream_rq_timeout",
            "Upstream requests that timed out (504), by cluster",
            m.upstream_timeouts.clone(),
        );
        registry.register(
            "upstream_rq_error",
            "Upstream requests that failed after connecting (502), by cluster",
            m.upstream_errors.clone(),
        );
        registry.register(
            "upstream_rq_overflow",
            "Requests refused with 503 by a cluster's circuit breaker (max_requests), by cluster",
            m.upstream_overflow.clone(),
        );
        registry.register(
            "upstream_rq_retry",
            "Retried upstream attempts, by cluster",
            m.upstream_retries.clone(),
        );
        registry.register(
            "upstream_rq_retry_overflow",
            "Retries not made because the cluster's retry budget was spent, by cluster",
            m.upstream_retry_overflow.clone(),
        );
        registry.register(
            "upstream_tls_handshake_errors",
            "TLS handshakes with a cluster's endpoints that failed or timed out (health checks included), by cluster",
            m.upstream_tls_handshake_errors.clone(),
        );
        registry.register(
            "filter_failures",
            "Wasm filter failures (the VM is replaced), by listener, filter and kind (trap, deadline, oom, start)",
            m.filter_failures.clone(),
        );
        registry.register(
            "reload",
            "Config reloads attempted, by result (ok, error)",
            m.reloads.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The registry, for other subsystems (the wasm host) to add their own families.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Counts one reload attempt; `ok` tells how it ended.
    pub fn reload_done(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        get(&self.reloads, &vec![("result", result.to_string())]).inc();
    }

    pub fn listener(&self, listener: &str) -> ListenerMetrics {
        let l = || vec![("listener", listener.to_string())];
        let reason_kind =
            |k: &str| vec![("listener", listener.to_string()), ("kind", k.to_string())];
        let reason = |r: &str| {
            vec![
                ("listener", listener.to_string()),
                ("reason", r.to_string()),
            ]
        };
        ListenerMetrics {
            cx_active: get(&self.cx_active, &l()),
            cx_total: get(&self.cx_total, &l()),
            cx_overflow: get(&self.cx_overflow, &l()),
            rx_bytes: get(&self.rx_bytes, &l()),
            tx_bytes: get(&self.tx_bytes, &l()),
            duration: get(&self.request_duration, &l()),
            rejected_header_limits: get(&self.rejected, &reason("header_limits")),
            rejected_bad_framing: get(&self.rejected, &reason("bad_framing")),
            rejected_bad_request: get(&self.rejected, &reason("bad_request")),
            tls_handshake_errors: get(&self.tls_handshake_errors, &l()),
            fault_delays: get(&self.faults, &reason_kind("delay")),
            fault_aborts: get(&self.faults, &reason_kind("abort")),
            no_route: self.status_counters(listener, "", ""),
        }
    }

    /// Request counters by status class for one (listener, route, cluster).
    pub fn status_counters(&self, listener: &str, route: &str, cluster: &str) -> StatusCounters {
        StatusCounters(STATUS_CLASSES.map(|class| {
            get(
                &self.requests,
                &vec![
                    ("listener", listener.to_string()),
                    ("route", route.to_string()),
                    ("cluster", cluster.to_string()),
                    ("code_class", class.to_string()),
                ],
            )
        }))
    }

    pub fn filter_counters(
        &self,
        listener: &str,
        filter: &str,
    ) -> crate::wasm::plugin::PluginCounters {
        let l = |kind: &str| {
            vec![
                ("listener", listener.to_string()),
                ("filter", filter.to_string()),
                ("kind", kind.to_string()),
            ]
        };
        crate::wasm::plugin::PluginCounters {
            trap: get(&self.filter_failures, &l("trap")),
            deadline: get(&self.filter_failures, &l("deadline")),
            oom: get(&self.filter_failures, &l("oom")),
            start: get(&self.filter_failures, &l("start")),
        }
    }

    /// The health gauge of one endpoint of a cluster.
    pub fn endpoint_health(&self, cluster: &str, endpoint: &str) -> Gauge {
        get(
            &self.endpoint_healthy,
            &vec![
                ("cluster", cluster.to_string()),
                ("endpoint", endpoint.to_string()),
            ],
        )
    }

    pub fn endpoint_ejected(&self, cluster: &str, endpoint: &str) -> Gauge {
        get(
            &self.endpoint_ejected,
            &vec![
                ("cluster", cluster.to_string()),
                ("endpoint", endpoint.to_string()),
            ],
        )
    }

    pub fn cluster(&self, cluster: &str) -> ClusterMetrics {
        let l = vec![("cluster", cluster.to_string())];
        ClusterMetrics {
            requests: get(&self.upstream_rq, &l),
            connect_errors: get(&self.upstream_connect_errors, &l),
            timeouts: get(&self.upstream_timeouts, &l),
            errors: get(&self.upstream_errors, &l),
            overflow: get(&self.upstream_overflow, &l),
            retries: get(&self.upstream_retries, &l),
            retry_overflow: get(&self.upstream_retry_overflow, &l),
            ejections: get(&self.outlier_ejections, &l),
            cx_active: get(&self.upstream_cx_active, &l),
            pending_overflow: get(&self.upstream_pending_overflow, &l),
            tls_handshake_errors: get(&self.upstream_tls_handshake_errors, &l),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ListenerMetrics {
    pub cx_active: Gauge,
    pub cx_total: Counter,
    pub cx_overflow: Counter,
    pub rx_bytes: Counter,
    pub tx_bytes: Counter,
    pub duration: Histogram,
    pub rejected_header_limits: Counter,
    pub rejected_bad_framing: Counter,
    pub rejected_bad_request: Counter,
    pub tls_handshake_errors: Counter,
    pub fault_delays: Counter,
    pub fault_aborts: Counter,
    /// Requests that matched no route (the 404s).
    pub no_route: StatusCounters,
}

/// One counter per status class.
#[derive(Clone, Debug)]
pub struct StatusCounters(pub [Counter; 5]);

impl StatusCounters {
    pub fn record(&self, status: u16) {
        self.0[status_class(status)].inc();
    }
}

#[derive(Clone, Debug)]
pub struct ClusterMetrics {
    pub requests: Counter,
    pub connect_errors: Counter,
    pub timeouts: Counter,
    pub errors: Counter,
    pub overflow: Counter,
    pub retries: Counter,
    pub retry_overflow: Counter,
    pub ejections: Counter,
    pub cx_active: Gauge,
    pub pending_overflow: Counter,
    pub tls_handshake_errors: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_share_the_exported_series() {
        let m = Metrics::new();
        let route = m.status_counters("main", "api", "backend");
        route.record(204);
        route.record(503);
        route.record(200);
        let l = m.listener("main");
        l.cx_active.inc();
        let text = m.encode();
        assert!(
            text.contains(r#"weft_requests_total{listener="main",route="api",cluster="backend",code_class="2xx"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"code_class="5xx"} 1"#), "{text}");
        assert!(
            text.contains(r#"weft_downstream_cx_active{listener="main"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(100), 0);
        assert_eq!(status_class(299), 1);
        assert_eq!(status_class(404), 3);
        assert_eq!(status_class(599), 4);
    }
}
