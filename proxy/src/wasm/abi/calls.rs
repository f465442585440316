//! Outgoing calls and timers: proxy_http_call, proxy_grpc_call, proxy_grpc_stream,
//! proxy_grpc_send, proxy_grpc_cancel, proxy_grpc_close,
//! proxy_set_tick_period_milliseconds.
//!
//! Http calls and unary gRPC calls are dispatched (see `wasm::calls`); ticks fire from the
//! root loop (see `wasm::root`). NOT DONE YET: gRPC streams and cancelling a call. Those
//! functions exist because every module built with the Rust SDK imports them; their
//! answers are ones the SDK handles without panicking, and true: opening a stream fails
//! to dispatch (INTERNAL_FAILURE, logged), and send/cancel/close find no such stream
//! (NOT_FOUND; a unary call runs to its end or its timeout).

use wasmtime::Caller;

use super::memory::{self, status_code};
use super::types::{Status, deserialize_map};
use crate::wasm::calls::{GrpcCall, HttpCall};
use crate::wasm::host::HostFunctions;
use crate::wasm::state::HostState;

fn not_dispatched(c: &Caller<'_, HostState>, what: &str) -> Status {
    tracing::warn!(target: "weft::wasm", plugin = %c.data().plugin.name, "{what} is not supported by this weft yet; the call fails to dispatch");
    Status::InternalFailure
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
                let upstream = memory::read_string(&mut c, upstream_ptr, upstream_len)?;
                let service = memory::read_string(&mut c, service_ptr, service_len)?;
                let method = memory::read_string(&mut c, method_ptr, method_len)?;
                let metadata = deserialize_map(&memory::read(&mut c, metadata_ptr, metadata_len)?)
                    .ok_or(Status::ParseFailure)?;
                let message = memory::read(&mut c, message_ptr, message_len)?;
                let call = GrpcCall {
                    upstream,
                    service,
                    method,
                    metadata,
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
        |c: Caller<'_, HostState>,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32| { status_code(Ok(not_dispatched(&c, "proxy_grpc_stream"))) },
    );
    f.func(
        "env",
        "proxy_grpc_send",
        |_c: Caller<'_, HostState>, _token: u32, _ptr: u32, _len: u32, _end: u32| {
            status_code(Ok(Status::NotFound))
        },
    );
    f.func(
        "env",
        "proxy_grpc_cancel",
        |_c: Caller<'_, HostState>, _token: u32| status_code(Ok(Status::NotFound)),
    );
    f.func(
        "env",
        "proxy_grpc_close",
        |_c: Caller<'_, HostState>, _token: u32| status_code(Ok(Status::NotFound)),
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
