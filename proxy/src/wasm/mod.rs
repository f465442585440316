//! The proxy-wasm host: filters compiled to WebAssembly, run by wasmtime, with the
//! proxy-wasm ABI v0.2.1 (and v0.2.0 modules).
//!
//! - [`host::WasmRuntime`]: the engine, the linker with every host function ([`abi`]),
//!   the compiled-module cache ([`cache`]) and state all VMs share.
//! - [`module`]: loading and checking a module.
//! - [`vm::Vm`]: one instance with its root context, calls run under CPU and memory limits.
//! - [`plugin::Plugin`]: a configured filter: one VM per worker, replaced after a failure.

pub mod abi;
pub mod builtin;
pub mod cache;
pub mod calls;
pub mod engine;
pub mod host;
pub mod limits;
pub mod metrics;
pub mod module;
pub mod plugin;
pub mod queues;
pub mod root;
pub mod shared_data;
pub mod state;
pub mod vm;
