//! Metrics that filters define (counter, gauge, histogram), process-wide by name so that
//! the VMs of every worker add up to one series, exported on `/stats/prometheus`.
//!
//! Names are used as given, with characters Prometheus does not allow replaced by `_`
//! (a counter's trailing `_total` is added by the exporter, not doubled). Metric ids are
//! process-wide, so an id defined in one VM means the same metric in every other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::abi::types::MetricType;

#[derive(Debug)]
pub enum WasmMetric {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

#[derive(Default)]
struct Inner {
    registry: Registry,
    by_name: HashMap<String, u32>,
    list: Vec<Arc<WasmMetric>>,
}

#[derive(Default)]
pub struct WasmMetrics {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for WasmMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WasmMetrics")
    }
}

/// A name Prometheus accepts.
pub fn sanitize(name: &str, kind: MetricType) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if kind == MetricType::Counter {
        if let Some(stripped) = out.strip_suffix("_total") {
            out = stripped.to_string();
        }
    }
    out
}

impl WasmMetrics {
    /// The id of the metric `name`, defining it on first use. `None` when the name is
    /// already used by a metric of another type.
    pub fn define(&self, kind: MetricType, name: &str) -> Option<u32> {
        let name = sanitize(name, kind);
        // Keyed by the series name as exported (a counter gains `_total`), so that two
        // metrics can never export the same series.
        let series = if kind == MetricType::Counter {
            format!("{name}_total")
        } else {
            name.clone()
        };
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = inner.by_name.get(&series) {
            let existing = &inner.list[*id as usize];
            let same = matches!(
                (existing.as_ref(), kind),
                (WasmMetric::Counter(_), MetricType::Counter)
                    | (WasmMetric::Gauge(_), MetricType::Gauge)
                    | (WasmMetric::Histogram(_), MetricType::Histogram)
            );
            return same.then_some(*id);
        }
        let help = "defined by a wasm filter";
        let metric = match kind {
            MetricType::Counter => {
                let c = Counter::default();
                inner.registry.register(name.clone(), help, c.clone());
                WasmMetric::Counter(c)
            }
            MetricType::Gauge => {
                let g = Gauge::default();
                inner.registry.register(name.clone(), help, g.clone());
                WasmMetric::Gauge(g)
            }
            MetricType::Histogram => {
                let h = Histogram::new(exponential_buckets(1.0, 2.0, 24));
                inner.registry.register(name.clone(), help, h.clone());
                WasmMetric::Histogram(h)
            }
        };
        let id = inner.list.len() as u32;
        inner.list.push(Arc::new(metric));
        inner.by_name.insert(series, id);
        Some(id)
    }

    pub fn get(&self, id: u32) -> Option<Arc<WasmMetric>> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .list
            .get(id as usize)
            .cloned()
    }

    /// OpenMetrics text of every filter metric (without the final `# EOF`).
    pub fn encode(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        encode(&mut out, &inner.registry).expect("writing to a String cannot fail");
        out.strip_suffix("# EOF\n")
            .map(str::to_string)
            .unwrap_or(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn define_is_idempotent_by_name_and_type() {
        let m = WasmMetrics::default();
        let a = m.define(MetricType::Counter, "my.requests_total").unwrap();
        assert_eq!(m.define(MetricType::Counter, "my.requests_total"), Some(a));
        assert_eq!(m.define(MetricType::Gauge, "my.requests_total"), None);
        if let WasmMetric::Counter(c) = m.get(a).unwrap().as_ref() {
            c.inc_by(3);
        }
        let text = m.encode();
        assert!(text.contains("my_requests_total 3"), "{text}");
        assert!(!text.contains("# EOF"));
    }
}
