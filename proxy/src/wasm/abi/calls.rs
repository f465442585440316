//! Outgoing calls and timers: proxy_http_call, proxy_grpc_call, proxy_grpc_stream,
//! proxy_grpc_send, proxy_grpc_cancel, proxy_grpc_close,
//! proxy_set_tick_period_milliseconds.
//!
//! Http calls, unary gRPC calls and gRPC streams are dispatched (see `wasm::calls`);
//! ticks fire from the root loop (see `wasm::root`).

use wasmtime::Caller;

use super::memory::{self, status_code};
use super::types::{Status, deserialize_map};
use crate::wasm::calls::{GrpcCall, GrpcStream, HttpCall};
use crate::wasm::host::HostFunctions;
use crate::wasm::state::HostState;

/// The upstream, service, method and initial-metadata arguments of a gRPC call or stream.
fn grpc_target(
    c: &mut Caller<'_, HostState>,
    (upstream_ptr, upstream_len): (u32, u32),
    (service_ptr, service_len): (u32, u32),
    (method_ptr, method_len): (u32, u32),
    (metadata_ptr, metadata_len): (u32, u32),
) -> Result<GrpcStream, Status> {
    let upstream = memory::read_string(c, upstream_ptr, upstream_len)?;
    let service = memory::read_string(c, service_ptr, service_len)?;
    let method = memory::read_string(c, method_ptr, method_len)?;
    let metadata = deserialize_map(&memory::read(c, metadata_ptr, metadata_len)?)
        .ok_or(Status::ParseFailure)?;
    Ok(GrpcStream {
        upstream,
        service,
        method,
        metadata,
    })
}

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        "env",
        "proxy_http_call",
        |mut c: Caller<'_, HostState>,
         upstream_ptr: u32,
         upstream_len: u32,
         headers_ptr: u32,
         headers_len: u32,
         body_ptr: u32,
         body_len: u32,
         trailers_ptr: u32,
         trailers_len: u32,
         timeout_ms: u32,
         token_out: u32| {
            status_code((|| {
                let upstream = memory::read_string(&mut c, upstream_ptr, upstream_len)?;
                let headers = deserialize_map(&memory::read(&mut c, headers_ptr, headers_len)?)
                    .ok_or(Status::BadArgument)?;
                let body = memory::read(&mut c, body_ptr, body_len)?;
                let trailers = deserialize_map(&memory::read(&mut c, trailers_ptr, trailers_len)?)
                    .ok_or(Status::BadArgument)?;
                let call = HttpCall {
                    upstream,
                    headers,
                    body,
                    trailers,
                    timeout_ms,
                };
                let token = super::super::calls::dispatch(c.data_mut(), call)?;
                memory::write_u32(&mut c, token_out, token)?;
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_grpc_call",
        |mut c: Caller<'_, HostState>,
         upstream_ptr: u32,
         upstream_len: u32,
         service_ptr: u32,
         service_len: u32,
         method_ptr: u32,
         method_len: u32,
         metadata_ptr: u32,
         metadata_len: u32,
         message_ptr: u32,
         message_len: u32,
         timeout_ms: u32,
         token_out: u32| {
            status_code((|| {
                let target = grpc_target(
                    &mut c,
                    (upstream_ptr, upstream_len),
                    (service_ptr, service_len),
                    (method_ptr, method_len),
                    (metadata_ptr, metadata_len),
                )?;
                let message = memory::read(&mut c, message_ptr, message_len)?;
                let call = GrpcCall {
                    target,
                    message,
                    timeout_ms,
                };
                let token = super::super::calls::dispatch_grpc(c.data_mut(), call)?;
                memory::write_u32(&mut c, token_out, token)?;
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_grpc_stream",
        |mut c: Caller<'_, HostState>,
         upstream_ptr: u32,
         upstream_len: u32,
         service_ptr: u32,
         service_len: u32,
         method_ptr: u32,
         method_len: u32,
         metadata_ptr: u32,
         metadata_len: u32,
         token_out: u32| {
            status_code((|| {
                let stream = grpc_target(
                    &mut c,
                    (upstream_ptr, upstream_len),
                    (service_ptr, service_len),
                    (method_ptr, method_len),
                    (metadata_ptr, metadata_len),
                )?;
                let token = super::super::calls::dispatch_grpc_stream(c.data_mut(), stream)?;
                memory::write_u32(&mut c, token_out, token)?;
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_grpc_send",
        |mut c: Caller<'_, HostState>, token: u32, ptr: u32, len: u32, end: u32| {
            status_code((|| {
                let message = memory::read(&mut c, ptr, len)?;
                let handle = c.data_mut().grpc.get_mut(&token).ok_or(Status::NotFound)?;
                let sender = handle.messages.as_ref().ok_or(Status::NotFound)?;
                if sender
                    .send((bytes::Bytes::from(message), end != 0))
                    .is_err()
                {
                    return Ok(Status::NotFound);
                }
                if end != 0 {
                    handle.messages = None;
                }
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_grpc_cancel",
        |mut c: Caller<'_, HostState>, token: u32| {
            // No callback follows a cancel.
            status_code(match c.data_mut().grpc.remove(&token) {
                Some(handle) => {
                    handle.task.abort();
                    Ok(Status::Ok)
                }
                None => Ok(Status::NotFound),
            })
        },
    );
    f.func(
        "env",
        "proxy_grpc_close",
        |mut c: Caller<'_, HostState>, token: u32| {
            // Half-close: no more messages from the guest; replies still arrive.
            status_code(match c.data_mut().grpc.get_mut(&token) {
                Some(handle) => {
                    handle.messages = None;
                    Ok(Status::Ok)
                }
                None => Ok(Status::NotFound),
            })
        },
    );
    f.func(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Caller<'_, HostState>, period: u32| {
            c.data_mut().tick_period_ms = period;
            status_code(Ok(Status::Ok))
        },
    );
}
