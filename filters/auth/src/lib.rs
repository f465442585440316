//! Weft's built-in auth filter, a proxy-wasm module: JWT (HS256, RS256, ES256; inline or
//! remote JWKS), API keys, basic auth and external authorization, chosen per path.
//! See README.md for the config and the behaviour.
//!
//! The decision is pure code ([`engine::decide`], [`ext_authz::outcome`]), tested natively;
//! [`filter`] carries it out with proxy-wasm host calls.

pub mod basic;
pub mod cache;
pub mod config;
pub mod credentials;
pub mod duration;
pub mod engine;
pub mod ext_authz;
pub mod filter;
pub mod jwk;
pub mod jwt;
pub mod request;
pub mod rules;

#[cfg(test)]
mod tests;

/// Registers the filter with the SDK: what the module's entry point runs, and what the
/// native test harness (`weft_sdk::testing::Host::new`) runs.
pub fn register() {
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(filter::AuthRoot::default())
    });
}

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    register();
}}
