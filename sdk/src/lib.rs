//! The Weft filter SDK: write proxy-wasm filters in Rust for Weft (and Envoy).
//!
//! It builds on the [`proxy_wasm`] crate (re-exported): a filter is still a
//! `RootContext` + `HttpContext` pair registered from `proxy_wasm::main!`, so it runs on
//! any proxy-wasm ABI v0.2.1 host. On top of it the SDK adds:
//!
//! - [`config`]: the plugin configuration as a typed `serde` struct, in one line of
//!   `on_configure`, with errors that name the field;
//! - [`http`]: request and response headers (case-insensitive names), the query string
//!   and cookies;
//! - [`local`]: local responses (`LocalResponse::new(429).header(..).body(..).send()`);
//! - [`property`]: properties as strings or integers, and Weft's routing property
//!   `weft.cluster`;
//! - [`time`], [`hash`] and [`metrics`]: the host clock, a stable hash for sticky
//!   splits, and typed metric handles;
//! - `testing` (cargo feature `testing`): a native host that runs a filter's contexts in
//!   `cargo test`, no wasm and no proxy needed.
//!
//! docs/filter-guide.md in the Weft repository walks through writing, testing, building
//! and deploying a filter.

#![deny(missing_docs)]

pub mod config;
pub mod hash;
pub mod http;
pub mod local;
pub mod metrics;
pub mod property;
pub mod time;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

// The harness defines the host functions a wasm module must import from its host.
#[cfg(all(feature = "testing", target_family = "wasm"))]
compile_error!(
    "weft-sdk's `testing` feature is for native `cargo test` only: enable it in \
     [dev-dependencies], not [dependencies]"
);

pub use log;
pub use proxy_wasm;
pub use serde;
pub use serde_json;

/// What most filters import: the proxy-wasm traits and types, the SDK's helpers, and the
/// `log` macros (lines go to the host's log: Weft's `weft::wasm` target).
pub mod prelude {
    pub use crate::config;
    pub use crate::http::{Request, Response};
    pub use crate::local::LocalResponse;
    pub use crate::metrics::Metric;
    pub use crate::property;
    pub use log::{debug, error, info, trace, warn};
    pub use proxy_wasm;
    pub use proxy_wasm::traits::{Context, HttpContext, RootContext};
    pub use proxy_wasm::types::{Action, ContextType, LogLevel};
}
