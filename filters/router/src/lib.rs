//! Weft's built-in router filter, a proxy-wasm module: ordered rules that match the path
//! (exact, prefix, regex), method, headers and query, and send the request to a cluster
//! through weft's routing contract (the `weft.cluster` property), to one of a weighted
//! split (random, or sticky by a cookie or header), with path-prefix and host rewrites;
//! or answer with a redirect or a direct response. A request no rule matches goes on to
//! weft's own routes. See README.md for the config and the behaviour.
//!
//! Matching and actions are pure code ([`matcher`], [`route`]); [`filter`] carries them
//! out with host calls.

pub mod config;
pub mod filter;
pub mod matcher;
pub mod rng;
pub mod route;

#[cfg(test)]
mod tests;

/// Registers the filter with the SDK: what the module's entry point runs, and what the
/// native test harness (`weft_sdk::testing::Host::new`) runs.
pub fn register() {
    weft_sdk::proxy_wasm::set_log_level(weft_sdk::prelude::LogLevel::Info);
    weft_sdk::proxy_wasm::set_root_context(|id| -> Box<dyn weft_sdk::prelude::RootContext> {
        Box::new(filter::RouterRoot::new(id))
    });
}

#[cfg(target_arch = "wasm32")]
weft_sdk::proxy_wasm::main! {{
    register();
}}
