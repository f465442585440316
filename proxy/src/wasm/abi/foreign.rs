//! Foreign functions: proxy_call_foreign_function. Weft registers none, so every name is
//! NOT_FOUND (as Envoy answers for an unknown one).

use wasmtime::Caller;

use super::memory::{self, status_code};
use super::types::Status;
use crate::wasm::host::HostFunctions;
use crate::wasm::state::HostState;

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        "env",
        "proxy_call_foreign_function",
        |mut c: Caller<'_, HostState>, name_ptr: u32, name_len: u32, _arg_ptr: u32, _arg_len: u32, _ret_ptr: u32, _ret_len: u32| {
            status_code((|| {
                let name = memory::read_string(&mut c, name_ptr, name_len)?;
                tracing::debug!(target: "weft::wasm", plugin = %c.data().plugin.name, function = %name, "unknown foreign function");
                Ok(Status::NotFound)
            })())
        },
    );
}
