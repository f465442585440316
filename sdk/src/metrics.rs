//! Typed handles for the metrics a filter defines. Define them once (in `on_vm_start` or
//! `on_configure`) and keep the handle; Weft exports them on the admin endpoint's
//! `/stats/prometheus` under the name given (a counter gains `_total`), summed over every
//! worker's VM.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// A metric defined with the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    id: u32,
    kind: MetricType,
}

impl Metric {
    fn define(kind: MetricType, name: &str) -> Metric {
        // The SDK panics itself on any status but Ok (a name taken by another type).
        let id = hostcalls::define_metric(kind, name).unwrap_or(u32::MAX);
        Metric { id, kind }
    }

    /// A counter: only goes up.
    pub fn counter(name: &str) -> Metric {
        Metric::define(MetricType::Counter, name)
    }

    /// A gauge: goes up and down.
    pub fn gauge(name: &str) -> Metric {
        Metric::define(MetricType::Gauge, name)
    }

    /// A histogram of recorded values.
    pub fn histogram(name: &str) -> Metric {
        Metric::define(MetricType::Histogram, name)
    }

    /// Adds `delta` (a counter takes only `delta >= 0`; the host refuses the rest).
    pub fn add(&self, delta: i64) {
        let _ = hostcalls::increment_metric(self.id, delta);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Sets a gauge, records a histogram sample, or raises a counter to `value`.
    pub fn record(&self, value: u64) {
        let _ = hostcalls::record_metric(self.id, value);
    }

    /// The current value of a counter or gauge (`None` for a histogram).
    pub fn get(&self) -> Option<u64> {
        hostcalls::get_metric(self.id).ok()
    }

    /// The metric's type.
    pub fn kind(&self) -> MetricType {
        self.kind
    }
}
