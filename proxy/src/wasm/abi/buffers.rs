//! Buffers: proxy_get_buffer_bytes, proxy_get_buffer_status, proxy_set_buffer_bytes. The
//! VM and plugin configuration, the http-call response body (in `on_http_call_response`),
//! and the request or response body in a body callback (the data presented to this filter:
//! one chunk, or all it has held while paused), which `proxy_set_buffer_bytes` rewrites.

use bytes::{Bytes, BytesMut};
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
        |mut c: Caller<'_, HostState>, kind: u32, start: u32, size: u32, ptr: u32, len: u32| {
            status_code((|| {
                let data = memory::read(&mut c, ptr, len)?;
                let body = body_mut(&mut c, kind)?;
                // Replace [start, start + size) with the data, as Envoy does; a start past
                // the end appends.
                let start = (start as usize).min(body.len());
                let end = start.saturating_add(size as usize).min(body.len());
                let mut out = BytesMut::with_capacity(start + data.len() + (body.len() - end));
                out.extend_from_slice(&body[..start]);
                out.extend_from_slice(&data);
                out.extend_from_slice(&body[end..]);
                *body = out.freeze();
                Ok(Status::Ok)
            })())
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
        BufferType::GrpcReceiveBuffer => c
            .data()
            .grpc_result
            .as_ref()
            .and_then(|r| r.message.clone())
            .ok_or(Status::NotFound),
        kind @ (BufferType::HttpRequestBody | BufferType::HttpResponseBody) => {
            let request = kind == BufferType::HttpRequestBody;
            match c.data().stream.as_ref().and_then(|s| s.body.as_ref()) {
                Some(body) if body.request == request => Ok(body.data.clone()),
                _ => Err(Status::NotFound),
            }
        }
        _ => Err(Status::NotFound),
    }
}

/// The body buffer of the running body callback, if `kind` names it.
fn body_mut<'a>(c: &'a mut Caller<'_, HostState>, kind: u32) -> Result<&'a mut Bytes, Status> {
    let request = match BufferType::from_raw(kind).ok_or(Status::BadArgument)? {
        BufferType::HttpRequestBody => true,
        BufferType::HttpResponseBody => false,
        _ => return Err(Status::BadArgument),
    };
    match c.data_mut().stream.as_mut().and_then(|s| s.body.as_mut()) {
        Some(body) if body.request == request => Ok(&mut body.data),
        _ => Err(Status::NotFound),
    }
}
