//! Stream control: proxy_continue_stream, proxy_close_stream, proxy_send_local_response,
//! proxy_get_status.

use bytes::Bytes;
use wasmtime::Caller;

use super::memory::{self, status_code};
use super::types::{Status, StreamType, deserialize_map};
use crate::wasm::host::HostFunctions;
use crate::wasm::state::{HostState, LocalReply};

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        "env",
        "proxy_continue_stream",
        |mut c: Caller<'_, HostState>, stream: u32| {
            status_code(
                (|| match StreamType::from_raw(stream).ok_or(Status::BadArgument)? {
                    StreamType::HttpRequest | StreamType::HttpResponse => {
                        let state = c.data_mut();
                        if state.effective_context == state.running_context {
                            state.continue_requested = true;
                        } else {
                            // Resuming another context (say, from on_tick): its request is
                            // woken once this callback returns.
                            let context = state.effective_context;
                            state.resumes.push(context);
                        }
                        Ok(Status::Ok)
                    }
                    _ => Err(Status::BadArgument),
                })(),
            )
        },
    );
    f.func(
        "env",
        "proxy_close_stream",
        |mut c: Caller<'_, HostState>, stream: u32| {
            status_code((|| {
                StreamType::from_raw(stream).ok_or(Status::BadArgument)?;
                // Closing an HTTP stream ends it with a reset-like local reply.
                let http = c.data_mut().stream.as_mut().ok_or(Status::NotFound)?;
                if http.local_reply.is_none() {
                    http.local_reply = Some(LocalReply {
                        status: 503,
                        body: Bytes::from_static(b"stream closed by filter\n"),
                        headers: Vec::new(),
                        details: "closed_by_filter".into(),
                    });
                }
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_send_local_response",
        |mut c: Caller<'_, HostState>,
         status: u32,
         details_ptr: u32,
         details_len: u32,
         body_ptr: u32,
         body_len: u32,
         headers_ptr: u32,
         headers_len: u32,
         _grpc_status: i32| {
            status_code((|| {
                let details = memory::read(&mut c, details_ptr, details_len)?;
                let body = memory::read(&mut c, body_ptr, body_len)?;
                let headers = deserialize_map(&memory::read(&mut c, headers_ptr, headers_len)?)
                    .ok_or(Status::BadArgument)?;
                let status = u16::try_from(status)
                    .ok()
                    .filter(|s| (200..=599).contains(s))
                    .ok_or(Status::BadArgument)?;
                let http = c.data_mut().stream.as_mut().ok_or(Status::NotFound)?;
                http.local_reply = Some(LocalReply {
                    status,
                    body: Bytes::from(body),
                    headers,
                    details: String::from_utf8_lossy(&details).into_owned(),
                });
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_get_status",
        |mut c: Caller<'_, HostState>, code_out: u32, msg_ptr_out: u32, msg_size_out: u32| {
            // The status of the gRPC call whose callback is running.
            status_code((|| {
                let (code, message) = match c.data().grpc_result.as_ref() {
                    Some(result) => (result.status, result.status_message.clone()),
                    None => return Ok(Status::NotFound),
                };
                memory::write_u32(&mut c, code_out, code)?;
                memory::return_bytes(&mut c, message.as_bytes(), msg_ptr_out, msg_size_out)?;
                Ok(Status::Ok)
            })())
        },
    );
}
