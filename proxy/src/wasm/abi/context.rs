//! Contexts: proxy_set_effective_context, proxy_done.

use wasmtime::Caller;

use super::memory::status_code;
use super::types::Status;
use crate::wasm::host::HostFunctions;
use crate::wasm::state::HostState;

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        "env",
        "proxy_set_effective_context",
        |mut c: Caller<'_, HostState>, context: u32| {
            // The SDK calls this before every asynchronous callback; the callback already runs
            // in that context, so weft only records it.
            c.data_mut().effective_context = context;
            status_code(Ok(Status::Ok))
        },
    );
    f.func("env", "proxy_done", |mut c: Caller<'_, HostState>| {
        // A root context that returned false from on_done says it has finished its work.
        c.data_mut().done_called = true;
        status_code(Ok(Status::Ok))
    });
}
