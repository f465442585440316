//! Metrics: proxy_define_metric, proxy_increment_metric, proxy_record_metric,
//! proxy_get_metric (see `wasm::metrics`). Recording a counter raises it to the value
//! (never lowers it), as Envoy does; a histogram cannot be read back (BAD_ARGUMENT).

use wasmtime::Caller;

use super::memory::{self, status_code};
use super::types::{MetricType, Status};
use crate::wasm::host::HostFunctions;
use crate::wasm::metrics::WasmMetric;
use crate::wasm::state::HostState;

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        "env",
        "proxy_define_metric",
        |mut c: Caller<'_, HostState>, kind: u32, name_ptr: u32, name_len: u32, id_out: u32| {
            status_code((|| {
                let kind = MetricType::from_raw(kind).ok_or(Status::BadArgument)?;
                let name = memory::read_string(&mut c, name_ptr, name_len)?;
                let id = c
                    .data()
                    .host
                    .metrics
                    .define(kind, &name)
                    .ok_or(Status::BadArgument)?;
                memory::write_u32(&mut c, id_out, id)?;
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_increment_metric",
        |mut c: Caller<'_, HostState>, id: u32, offset: i64| {
            status_code((|| {
                match c.data_mut().metric(id).ok_or(Status::NotFound)? {
                    WasmMetric::Counter(counter) if offset >= 0 => {
                        counter.inc_by(offset as u64);
                    }
                    WasmMetric::Gauge(gauge) => {
                        gauge.inc_by(offset);
                    }
                    _ => return Err(Status::BadArgument),
                }
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_record_metric",
        |mut c: Caller<'_, HostState>, id: u32, value: u64| {
            status_code((|| {
                match c.data_mut().metric(id).ok_or(Status::NotFound)? {
                    WasmMetric::Counter(counter) => {
                        let current = counter.get();
                        if value > current {
                            counter.inc_by(value - current);
                        }
                    }
                    WasmMetric::Gauge(gauge) => {
                        gauge.set(value as i64);
                    }
                    WasmMetric::Histogram(histogram) => histogram.observe(value as f64),
                }
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_get_metric",
        |mut c: Caller<'_, HostState>, id: u32, value_out: u32| {
            status_code((|| {
                let value = match c.data_mut().metric(id).ok_or(Status::NotFound)? {
                    WasmMetric::Counter(counter) => counter.get(),
                    WasmMetric::Gauge(gauge) => gauge.get() as u64,
                    WasmMetric::Histogram(_) => return Err(Status::BadArgument),
                };
                memory::write_u64(&mut c, value_out, value)?;
                Ok(Status::Ok)
            })())
        },
    );
}
