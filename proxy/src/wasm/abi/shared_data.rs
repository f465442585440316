//! Shared data: proxy_get_shared_data, proxy_set_shared_data (see `wasm::shared_data`).

use bytes::Bytes;
use wasmtime::Caller;

use super::memory::{self, status_code};
use super::types::Status;
use crate::wasm::host::HostFunctions;
use crate::wasm::state::HostState;

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        "env",
        "proxy_get_shared_data",
        |mut c: Caller<'_, HostState>,
         key_ptr: u32,
         key_len: u32,
         value_ptr_out: u32,
         value_size_out: u32,
         cas_out: u32| {
            status_code((|| {
                let found = memory::with_bytes(&mut c, key_ptr, key_len, |key, state| {
                    let key = std::str::from_utf8(key).map_err(|_| Status::BadArgument)?;
                    Ok(state.host.shared_data.get(key))
                })??;
                match found {
                    Some((value, cas)) => {
                        memory::return_bytes(&mut c, &value, value_ptr_out, value_size_out)?;
                        memory::write_u32(&mut c, cas_out, cas)?;
                        Ok(Status::Ok)
                    }
                    None => Ok(Status::NotFound),
                }
            })())
        },
    );
    f.func(
        "env",
        "proxy_set_shared_data",
        |mut c: Caller<'_, HostState>,
         key_ptr: u32,
         key_len: u32,
         value_ptr: u32,
         value_len: u32,
         cas: u32| {
            status_code((|| {
                // Read in place; only the value is copied, to be kept.
                memory::with_memory(&mut c, |data, state| {
                    let key = memory::slice(data, key_ptr, key_len)?;
                    let key = std::str::from_utf8(key).map_err(|_| Status::BadArgument)?;
                    let value = Bytes::copy_from_slice(memory::slice(data, value_ptr, value_len)?);
                    match state.host.shared_data.set(key, value, cas) {
                        Ok(()) => Ok(Status::Ok),
                        Err(_) => Ok(Status::CasMismatch),
                    }
                })?
            })())
        },
    );
}
