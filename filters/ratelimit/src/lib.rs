//! Weft's built-in rate limit filter, a proxy-wasm module: token buckets keyed by client
//! IP, a header, the path or the route, several limits per request, kept in shared data
//! and updated with compare-and-swap so that every worker counts against the same
//! buckets; `429` with `retry-after` and `x-ratelimit-*` headers, or only counting in
//! `shadow` mode. See README.md for the config, the behaviour and its precision.
//!
//! The bucket math ([`bucket`]) and the decision ([`engine`]) are pure code over a
//! [`store::Store`]; [`filter`] carries them out with host calls.

pub mod bucket;
pub mod config;
pub mod engine;
pub mod filter;
pub mod key;
pub mod store;

#[cfg(test)]
mod tests;

/// Registers the filter with the SDK: what the module's entry point runs, and what the
/// native test harness (`weft_sdk::testing::Host::new`) runs.
pub fn register() {
    weft_sdk::proxy_wasm::set_log_level(weft_sdk::prelude::LogLevel::Info);
    weft_sdk::proxy_wasm::set_root_context(|_| -> Box<dyn weft_sdk::prelude::RootContext> {
        Box::<filter::RateLimitRoot>::default()
    });
}

#[cfg(target_arch = "wasm32")]
weft_sdk::proxy_wasm::main! {{
    register();
}}
