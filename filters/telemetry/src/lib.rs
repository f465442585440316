//! Weft's built-in telemetry filter, a proxy-wasm module: per route/cluster/status request
//! counters and a latency histogram (metrics ABI), a JSON access-log line per request,
//! W3C trace context (`traceparent` continued with a new span id, or started, with
//! sampling), and `x-request-id` when the request has none. See README.md for the config,
//! the metric names and the behaviour.
//!
//! The parts that decide are pure code, tested natively: [`trace`] (parse and continue a
//! `traceparent`), [`ids`] (the id generator), [`stats`] (metric names and handles),
//! [`access_log`] (the JSON line); [`filter`] is the proxy-wasm glue.

pub mod access_log;
pub mod config;
pub mod filter;
pub mod ids;
pub mod stats;
pub mod trace;

#[cfg(test)]
mod tests;

use weft_sdk::prelude::*;

proxy_wasm::main! {{
    register();
}}

/// Registers the filter's root context: what the module's entry point runs, and what the
/// native test harness (`weft_sdk::testing::Host::new`) runs.
pub fn register() {
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(filter::Root::new(context_id))
    });
}
