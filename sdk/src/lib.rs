//! The Weft filter SDK. It builds on the `proxy-wasm` crate, which it re-exports, so a
//! filter written with it also runs on Envoy.

pub use proxy_wasm;
