//! Metric names and the per-VM cache of metric handles.
//!
//! proxy-wasm metrics have no labels, so the dimensions are segments of the name, the way
//! Envoy names its stats:
//!
//! ```text
//! PREFIX.route.ROUTE.cluster.CLUSTER.rq_STATUS   counter    STATUS: 2xx (or 200 with status: code), none
//! PREFIX.route.ROUTE.cluster.CLUSTER.rq_time_ms  histogram  request start to response end, ms
//! PREFIX.trace.started | continued | invalid     counter    how each request's trace came about
//! PREFIX.request_id.generated                    counter
//! ```
//!
//! Weft exports them on `/stats/prometheus` with `.` as `_` (a counter gains `_total`):
//! `telemetry_route_api_cluster_backend_rq_2xx_total`. ROUTE and CLUSTER are the names from
//! the proxy's config with every character but letters, digits and `_` written as `_`
//! (the same on every host); a request with no route or cluster (a 404, a direct
//! response) counts under `none`.
//!
//! Metrics are defined on first use and their handles kept per (route, cluster): a
//! request costs a map lookup, not a define call. Their number is bounded by the routes
//! and clusters in the proxy's config times the status classes (or codes).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use weft_sdk::metrics::Metric;

use crate::config::StatusDetail;

/// The segment written for a missing route, cluster or status.
pub const NONE: &str = "none";

/// A name segment: letters, digits and `_` kept, anything else `_`; empty is [`NONE`].
pub fn segment(name: &str) -> String {
    if name.is_empty() {
        return NONE.to_string();
    }
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The status part of a counter's name: `2xx` or `200` (per `detail`), `none` for no status.
pub fn status_segment(status: Option<u16>, detail: StatusDetail) -> String {
    match (status, detail) {
        (None, _) => NONE.to_string(),
        (Some(code), StatusDetail::Code) => code.to_string(),
        (Some(code), StatusDetail::Class) => format!("{}xx", code / 100),
    }
}

/// The metric names of one (route, cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    base: String,
}

impl Names {
    /// Names under `prefix` for this route and cluster, as the host names them (empty:
    /// none).
    pub fn new(prefix: &str, route: &str, cluster: &str) -> Names {
        Names {
            base: format!(
                "{prefix}.route.{}.cluster.{}",
                segment(route),
                segment(cluster)
            ),
        }
    }

    /// The request counter for this status segment.
    pub fn requests(&self, status: &str) -> String {
        format!("{}.rq_{status}", self.base)
    }

    /// The latency histogram.
    pub fn latency(&self) -> String {
        format!("{}.rq_time_ms", self.base)
    }
}

/// FNV-1a as a [`Hasher`] for the handle maps: their keys are route and cluster names
/// from the proxy's config (not chosen by clients), short, and looked up on every
/// request, where SipHash costs more than the lookup.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// The handles of one (route, cluster): the histogram and a counter per status seen.
#[derive(Debug)]
struct RouteStats {
    names: Names,
    latency: Metric,
    by_status: Vec<(Option<u16>, Metric)>,
}

/// Every handle this VM has defined.
#[derive(Debug)]
pub struct Stats {
    prefix: String,
    detail: StatusDetail,
    /// route → cluster → handles (a missing name is keyed as "", which names `none` too).
    routes: FnvMap<String, FnvMap<String, RouteStats>>,
    /// `PREFIX.trace.started`.
    pub trace_started: Metric,
    /// `PREFIX.trace.continued`.
    pub trace_continued: Metric,
    /// `PREFIX.trace.invalid`: an invalid `traceparent` replaced by a new trace.
    pub trace_invalid: Metric,
    /// `PREFIX.request_id.generated`.
    pub request_id_generated: Metric,
}

impl Stats {
    /// Defines the fixed counters; the per-route ones come with the first request.
    pub fn new(prefix: &str, detail: StatusDetail) -> Stats {
        Stats {
            prefix: prefix.to_string(),
            detail,
            routes: FnvMap::default(),
            trace_started: Metric::counter(&format!("{prefix}.trace.started")),
            trace_continued: Metric::counter(&format!("{prefix}.trace.continued")),
            trace_invalid: Metric::counter(&format!("{prefix}.trace.invalid")),
            request_id_generated: Metric::counter(&format!("{prefix}.request_id.generated")),
        }
    }

    /// Counts one finished request and records its latency.
    pub fn record(
        &mut self,
        route: Option<&str>,
        cluster: Option<&str>,
        status: Option<u16>,
        latency_ms: u64,
    ) {
        // A status counted per class is keyed by its class, so each counter has one key.
        let key_status = match self.detail {
            StatusDetail::Class => status.map(|s| s / 100 * 100),
            StatusDetail::Code => status,
        };
        let (route, cluster) = (route.unwrap_or(""), cluster.unwrap_or(""));
        // Looked up by &str: no allocation once the pair has been seen.
        if !self
            .routes
            .get(route)
            .is_some_and(|c| c.contains_key(cluster))
        {
            let names = Names::new(&self.prefix, route, cluster);
            let stats = RouteStats {
                latency: Metric::histogram(&names.latency()),
                names,
                by_status: Vec::new(),
            };
            self.routes
                .entry(route.to_string())
                .or_default()
                .insert(cluster.to_string(), stats);
        }
        let Some(stats) = self.routes.get_mut(route).and_then(|c| c.get_mut(cluster)) else {
            return;
        };
        stats.latency.record(latency_ms);
        let counter = match stats.by_status.iter().find(|(s, _)| *s == key_status) {
            Some((_, counter)) => *counter,
            None => {
                let name = stats.names.requests(&status_segment(status, self.detail));
                let counter = Metric::counter(&name);
                stats.by_status.push((key_status, counter));
                counter
            }
        };
        counter.inc();
    }
}
