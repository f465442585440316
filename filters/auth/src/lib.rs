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

// The SDK's entry point expands to `#[no_mangle]` exports, which the workspace's
// `unsafe_code = "deny"` flags; nothing else in this crate is unsafe.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(crate::filter::AuthRoot::default())
        });
    }}
}
