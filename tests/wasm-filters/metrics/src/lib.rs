//! `metrics`: defines one metric of each kind and updates them on every request.
//!
//! Root `on_configure` calls `proxy_wasm::hostcalls::define_metric` for:
//! - `wasm_requests_total`, a Counter;
//! - `wasm_last_path_len`, a Gauge;
//! - `wasm_path_len`, a Histogram.
//!
//! (Names are passed to the host exactly as written; Envoy would expose them with its own
//! prefix. Defining the same name again, e.g. on reconfiguration, is expected to return the
//! same id.)
//!
//! `on_http_request_headers`, with `len` = byte length of `:path` (0 if absent):
//! 1. `increment_metric(counter, 1)`;
//! 2. `record_metric(gauge, len)`;
//! 3. `record_metric(histogram, len)`;
//! 4. sets request header `x-wasm-counter` to `get_metric(counter)` in decimal, i.e. the
//!    counter value including this request (`1` for the first request of a fresh host).
//!
//! If any of those hostcalls returns an error status, `x-wasm-counter` is
//! `error:<step>:<Status>` instead (step is `increment`, `gauge`, `histogram` or `get`).
//! Returns Continue. No configuration.

use log::warn;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(MetricsRoot { ids: None })
    });
}}

#[derive(Clone, Copy, Debug)]
struct MetricIds {
    counter: u32,
    gauge: u32,
    histogram: u32,
}

struct MetricsRoot {
    ids: Option<MetricIds>,
}

impl Context for MetricsRoot {}

impl RootContext for MetricsRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let define = |kind, name| match hostcalls::define_metric(kind, name) {
            Ok(id) => Some(id),
            Err(status) => {
                warn!("metrics filter: define_metric({name}) failed: {status:?}");
                None
            }
        };
        let counter = define(MetricType::Counter, "wasm_requests_total");
        let gauge = define(MetricType::Gauge, "wasm_last_path_len");
        let histogram = define(MetricType::Histogram, "wasm_path_len");
        match (counter, gauge, histogram) {
            (Some(counter), Some(gauge), Some(histogram)) => {
                self.ids = Some(MetricIds {
                    counter,
                    gauge,
                    histogram,
                });
                true
            }
            _ => false,
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(MetricsHttp { ids: self.ids }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct MetricsHttp {
    ids: Option<MetricIds>,
}

impl Context for MetricsHttp {}

impl MetricsHttp {
    fn update(&self, ids: MetricIds, len: u64) -> Result<u64, String> {
        let tag = |step: &'static str| move |status: Status| format!("error:{step}:{status:?}");
        hostcalls::increment_metric(ids.counter, 1).map_err(tag("increment"))?;
        hostcalls::record_metric(ids.gauge, len).map_err(tag("gauge"))?;
        hostcalls::record_metric(ids.histogram, len).map_err(tag("histogram"))?;
        hostcalls::get_metric(ids.counter).map_err(tag("get"))
    }
}

impl HttpContext for MetricsHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let len = self.get_http_request_header(":path").map_or(0, |p| p.len()) as u64;
        let value = match self.ids {
            Some(ids) => match self.update(ids, len) {
                Ok(count) => count.to_string(),
                Err(err) => {
                    warn!("metrics filter: {err}");
                    err
                }
            },
            None => "error:not-configured".to_owned(),
        };
        self.set_http_request_header("x-wasm-counter", Some(&value));
        Action::Continue
    }
}
