//! Outgoing calls and timers: proxy_http_call, proxy_grpc_call, proxy_grpc_stream,
//! proxy_grpc_send, proxy_grpc_cancel, proxy_grpc_close,
//! proxy_set_tick_period_milliseconds.
//!
//! NOT DONE YET: weft does not dispatch http or gRPC calls, nor fire ticks. These functions
//! exist because every module built with the Rust SDK imports them. Their answers are ones
//! the SDK handles without panicking, and true: an http call whose required headers are
//! missing is BAD_ARGUMENT (as in Envoy); any other http or gRPC call fails to dispatch
//! (INTERNAL_FAILURE, logged); there are no calls to send on, cancel or close (NOT_FOUND).
//! A tick period is recorded but no tick fires yet. docs/abi-support.md tracks this.

use wasmtime::Caller;

use super::memory::{self, status_code};
use super::types::{Status, deserialize_map};
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
         _upstream_ptr: u32,
         _upstream_len: u32,
         headers_ptr: u32,
         headers_len: u32,
         _body_ptr: u32,
         _body_len: u32,
         _trailers_ptr: u32,
         _trailers_len: u32,
         _timeout_ms: u32,
         _token_out: u32| {
            status_code((|| {
                let headers = deserialize_map(&memory::read(&mut c, headers_ptr, headers_len)?)
                    .ok_or(Status::BadArgument)?;
                for required in [&b":method"[..], b":path", b":authority"] {
                    if !headers.iter().any(|(k, v)| k == required && !v.is_empty()) {
                        return Ok(Status::BadArgument);
                    }
                }
                Ok(not_dispatched(&c, "proxy_http_call"))
            })())
        },
    );
    f.func(
        "env",
        "proxy_grpc_call",
        |c: Caller<'_, HostState>,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32,
         _: u32| { status_code(Ok(not_dispatched(&c, "proxy_grpc_call"))) },
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
