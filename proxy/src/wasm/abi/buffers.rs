//! Buffers: proxy_get_buffer_bytes, proxy_get_buffer_status. The VM and plugin
//! configuration buffers are served; request/response bodies and http-call bodies come with
//! body filtering and http calls (NOT_FOUND until then). NOT DONE YET: body filtering, so
//! proxy_set_buffer_bytes has no buffer to write to and answers BAD_ARGUMENT.

use bytes::Bytes;
use wasmtime::Caller;

use super::memory::{self, status_code};
use super::types::{BufferType, Status};
use crate::wasm::host::HostFunctions;
use crate::wasm::state::HostState;

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Caller<'_, HostState>,
         kind: u32,
         start: u32,
         max: u32,
         ptr_out: u32,
         size_out: u32| {
            status_code((|| {
                let buffer = buffer(&c, kind)?;
                let start = (start as usize).min(buffer.len());
                let end = start.saturating_add(max as usize).min(buffer.len());
                memory::return_bytes(&mut c, &buffer[start..end], ptr_out, size_out)?;
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_set_buffer_bytes",
        |_c: Caller<'_, HostState>, _kind: u32, _start: u32, _size: u32, _ptr: u32, _len: u32| {
            status_code(Err(Status::BadArgument))
        },
    );
    f.func(
        "env",
        "proxy_get_buffer_status",
        |mut c: Caller<'_, HostState>, kind: u32, size_out: u32, flags_out: u32| {
            status_code((|| {
                let buffer = buffer(&c, kind)?;
                memory::write_u32(&mut c, size_out, buffer.len() as u32)?;
                // Configuration buffers are complete: flag 1 = end of stream.
                memory::write_u32(&mut c, flags_out, 1)?;
                Ok(Status::Ok)
            })())
        },
    );
}

fn buffer(c: &Caller<'_, HostState>, kind: u32) -> Result<Bytes, Status> {
    match BufferType::from_raw(kind).ok_or(Status::BadArgument)? {
        BufferType::VmConfiguration => Ok(c.data().plugin.vm_config.clone()),
        BufferType::PluginConfiguration => Ok(c.data().plugin.plugin_config.clone()),
        BufferType::HttpCallResponseBody => c
            .data()
            .call_response
            .as_ref()
            .map(|r| r.body.clone())
            .ok_or(Status::NotFound),
        _ => Err(Status::NotFound),
    }
}
