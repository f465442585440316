//! The proxy-wasm ABI v0.2.1 host functions, one file per area. Each area's
//! `add_to_linker` registers its functions; guest memory is only touched through
//! [`memory`].

pub mod buffers;
pub mod calls;
pub mod context;
pub mod foreign;
pub mod headers;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod properties;
pub mod queues;
pub mod shared_data;
pub mod stream;
pub mod types;
pub mod wasi;

use super::host::HostFunctions;

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    logging::add_to_linker(f);
    context::add_to_linker(f);
    headers::add_to_linker(f);
    buffers::add_to_linker(f);
    stream::add_to_linker(f);
    properties::add_to_linker(f);
    metrics::add_to_linker(f);
    shared_data::add_to_linker(f);
    foreign::add_to_linker(f);
    queues::add_to_linker(f);
    calls::add_to_linker(f);
    wasi::add_to_linker(f);
}
