//! The native side of the ABI: every host function the proxy-wasm SDK imports, defined as
//! a native symbol over this thread's mock state, and the SDK's exported callbacks
//! (`proxy_on_*`), declared so the harness can call them.
//!
//! On wasm the SDK's `extern "C"` declarations are imports from the host; on a native
//! target they are ordinary undefined symbols, which the definitions below resolve when a
//! test binary links. Raw pointers cross the boundary, hence `unsafe`: the SDK passes
//! valid (pointer, length) pairs and out-pointers, and takes ownership of returned buffers
//! with `Vec::from_raw_parts(ptr, len, len)`, so they are allocated as boxed slices
//! (capacity == length) with the Rust allocator the SDK frees them with.
//!
//! Enums cross as their `u32` values (the SDK's enums are `repr(u32)`). Statuses follow
//! Weft's host; where the SDK panics on a status (see `proxy_wasm::hostcalls`), the filter
//! panics here as it would on Weft.

#![allow(unsafe_code)] // FFI with the proxy-wasm SDK; see the module docs.

use std::time::Duration;

use proxy_wasm::types::{LogLevel, MetricType, Status};

use super::state::{self, Map, header_name};
use super::{HttpCall, LocalReply, LogLine};

// === The SDK's callbacks ===

unsafe extern "C" {
    pub(crate) safe fn proxy_on_context_create(context_id: u32, root_context_id: u32);
    pub(crate) safe fn proxy_on_vm_start(context_id: u32, vm_configuration_size: usize) -> bool;
    pub(crate) safe fn proxy_on_configure(context_id: u32, plugin_config_size: usize) -> bool;
    pub(crate) safe fn proxy_on_tick(context_id: u32);
    pub(crate) safe fn proxy_on_queue_ready(context_id: u32, queue_id: u32);
    pub(crate) safe fn proxy_on_request_headers(context_id: u32, n: usize, eos: bool) -> u32;
    pub(crate) safe fn proxy_on_request_body(context_id: u32, size: usize, eos: bool) -> u32;
    pub(crate) safe fn proxy_on_request_trailers(context_id: u32, n: usize) -> u32;
    pub(crate) safe fn proxy_on_response_headers(context_id: u32, n: usize, eos: bool) -> u32;
    pub(crate) safe fn proxy_on_response_body(context_id: u32, size: usize, eos: bool) -> u32;
    pub(crate) safe fn proxy_on_response_trailers(context_id: u32, n: usize) -> u32;
    pub(crate) safe fn proxy_on_http_call_response(
        context_id: u32,
        token: u32,
        num_headers: usize,
        body_size: usize,
        num_trailers: usize,
    );
    pub(crate) safe fn proxy_on_log(context_id: u32);
    pub(crate) safe fn proxy_on_done(context_id: u32) -> bool;
    pub(crate) safe fn proxy_on_delete(context_id: u32);
}

// === Memory helpers ===

/// The `len` bytes at `ptr` (none for a null pointer).
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the SDK passes a pointer to `len` readable bytes.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

unsafe fn text(ptr: *const u8, len: usize) -> Result<String, Status> {
    // SAFETY: as for `bytes`.
    String::from_utf8(unsafe { bytes(ptr, len) }.to_vec()).map_err(|_| Status::BadArgument)
}

/// Writes `value` through an out-pointer.
unsafe fn put<T>(out: *mut T, value: T) {
    // SAFETY: the SDK passes a pointer to a local of type T.
    unsafe { out.write(value) }
}

/// Hands `data` to the SDK, which frees it with `Vec::from_raw_parts(ptr, len, len)`.
/// Allocated even when empty: the SDK reads a null pointer as "no value".
unsafe fn give(data: &[u8], ptr_out: *mut *mut u8, size_out: *mut usize) {
    let boxed: Box<[u8]> = data.into();
    let len = boxed.len();
    // SAFETY: out-pointers from the SDK, as for `put`.
    unsafe {
        put(ptr_out, Box::into_raw(boxed).cast::<u8>());
        put(size_out, len);
    }
}

/// Hands the bytes to the SDK and answers OK, or answers the error status.
unsafe fn reply(
    result: Result<Vec<u8>, Status>,
    ptr_out: *mut *mut u8,
    size_out: *mut usize,
) -> u32 {
    code(result.map(|data| {
        // SAFETY: out-pointers from the SDK.
        unsafe { give(&data, ptr_out, size_out) };
        Status::Ok
    }))
}

fn code(result: Result<Status, Status>) -> u32 {
    match result {
        Ok(s) | Err(s) => s as u32,
    }
}

// === Map encoding (ABI: count, then (key_len, value_len) pairs, then NUL-ended data) ===

pub(crate) fn encode_map(map: &[(String, String)]) -> Vec<u8> {
    let mut out = (map.len() as u32).to_le_bytes().to_vec();
    for (k, v) in map {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in map {
        for part in [k, v] {
            out.extend_from_slice(part.as_bytes());
            out.push(0);
        }
    }
    out
}

pub(crate) fn decode_map(data: &[u8]) -> Option<Map> {
    if data.is_empty() {
        return Some(Vec::new());
    }
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let count = u32_at(0)?;
    let mut pos = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut map = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let mut part = |len: usize| -> Option<String> {
            let s = std::str::from_utf8(data.get(pos..pos + len)?)
                .ok()?
                .to_string();
            pos += len + 1;
            Some(s)
        };
        let key = part(u32_at(4 + i * 8)?)?;
        let value = part(u32_at(8 + i * 8)?)?;
        map.push((key, value));
    }
    Some(map)
}

fn lowercase_map(map: Map) -> Result<Map, Status> {
    map.into_iter()
        .map(|(k, v)| Ok((header_name(&k)?, v)))
        .collect()
}

fn metric_type(raw: u32) -> Option<MetricType> {
    Some(match raw {
        0 => MetricType::Counter,
        1 => MetricType::Gauge,
        2 => MetricType::Histogram,
        _ => return None,
    })
}

fn log_level(raw: u32) -> Option<LogLevel> {
    Some(match raw {
        0 => LogLevel::Trace,
        1 => LogLevel::Debug,
        2 => LogLevel::Info,
        3 => LogLevel::Warn,
        4 => LogLevel::Error,
        5 => LogLevel::Critical,
        _ => return None,
    })
}

// === Logging, time, context ===

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_log(level: u32, data: *const u8, size: usize) -> u32 {
    let Some(level) = log_level(level) else {
        return Status::BadArgument as u32;
    };
    // SAFETY: the SDK's message pointer and length.
    let message = String::from_utf8_lossy(unsafe { bytes(data, size) }).into_owned();
    // Shown by cargo test when the test fails.
    eprintln!("[filter {level:?}] {message}");
    state::with(|s| {
        let context_id = s.current;
        s.logs.push(LogLine {
            level,
            message,
            context_id,
        })
    });
    Status::Ok as u32
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_get_log_level(out: *mut u32) -> u32 {
    let level = state::with(|s| s.log_level);
    // SAFETY: out-pointer from the SDK.
    unsafe { put(out, level as u32) };
    Status::Ok as u32
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_get_current_time_nanoseconds(out: *mut u64) -> u32 {
    // SAFETY: out-pointer from the SDK.
    unsafe { put(out, state::with(|s| s.now_nanos)) };
    Status::Ok as u32
}

#[unsafe(no_mangle)]
extern "C" fn proxy_set_tick_period_milliseconds(period: u32) -> u32 {
    state::with(|s| {
        s.tick_period = (period > 0).then(|| Duration::from_millis(period.into()));
        s.next_tick_nanos = s.now_nanos + u64::from(period) * 1_000_000;
    });
    Status::Ok as u32
}

#[unsafe(no_mangle)]
extern "C" fn proxy_set_effective_context(context_id: u32) -> u32 {
    state::with(|s| {
        if context_id == s.root || s.streams.contains_key(&context_id) {
            s.current = context_id;
            Status::Ok
        } else {
            Status::BadArgument
        }
    }) as u32
}

#[unsafe(no_mangle)]
extern "C" fn proxy_done() -> u32 {
    // A root context that returned false from on_done has finished: nothing to track.
    Status::Ok as u32
}

// === Buffers ===

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_get_buffer_bytes(
    kind: u32,
    start: usize,
    max_size: usize,
    ptr_out: *mut *mut u8,
    size_out: *mut usize,
) -> u32 {
    let slice = |buffer: Vec<u8>| {
        let start = start.min(buffer.len());
        let end = start.saturating_add(max_size).min(buffer.len());
        buffer[start..end].to_vec()
    };
    // SAFETY: out-pointers from the SDK.
    unsafe {
        reply(
            state::with(|s| s.buffer(kind)).map(slice),
            ptr_out,
            size_out,
        )
    }
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_set_buffer_bytes(
    kind: u32,
    start: usize,
    size: usize,
    data: *const u8,
    len: usize,
) -> u32 {
    // SAFETY: the SDK's data pointer and length.
    let data = unsafe { bytes(data, len) };
    code(state::with(|s| {
        let body = s.body_mut(kind)?;
        // Replace [start, start + size) as Envoy and Weft do; a start past the end appends.
        let start = start.min(body.len());
        let end = start.saturating_add(size).min(body.len());
        body.splice(start..end, data.iter().copied());
        Ok(Status::Ok)
    }))
}

// === Header maps ===

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_get_header_map_pairs(
    map: u32,
    ptr_out: *mut *mut u8,
    size_out: *mut usize,
) -> u32 {
    let data = state::with(|s| s.map(map).map(|m| encode_map(m)));
    // SAFETY: out-pointers from the SDK.
    unsafe { reply(data, ptr_out, size_out) }
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_set_header_map_pairs(map: u32, data: *const u8, size: usize) -> u32 {
    // SAFETY: the SDK's data pointer and length.
    let data = unsafe { bytes(data, size) };
    code((|| {
        let pairs = lowercase_map(decode_map(data).ok_or(Status::BadArgument)?)?;
        state::with(|s| {
            *s.map(map)? = pairs;
            Ok(Status::Ok)
        })
    })())
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_get_header_map_value(
    map: u32,
    key: *const u8,
    key_size: usize,
    ptr_out: *mut *mut u8,
    size_out: *mut usize,
) -> u32 {
    let value = (|| {
        // SAFETY: the SDK's key pointer and length.
        let key = header_name(&unsafe { text(key, key_size) }?)?;
        let values: Vec<String> = state::with(|s| {
            Ok::<_, Status>(
                s.map(map)?
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone())
                    .collect(),
            )
        })?;
        if values.is_empty() {
            return Err(Status::NotFound);
        }
        // Several values are joined with ',', as Weft does.
        Ok(values.join(",").into_bytes())
    })();
    // SAFETY: out-pointers from the SDK.
    unsafe { reply(value, ptr_out, size_out) }
}

/// Applies `op` to the map `map` with the key and value the SDK passed.
unsafe fn edit_map(
    map: u32,
    (key, key_size): (*const u8, usize),
    (value, value_size): (*const u8, usize),
    op: impl FnOnce(&mut Map, String, String),
) -> u32 {
    code((|| {
        // SAFETY: the SDK's pointers and lengths.
        let key = header_name(&unsafe { text(key, key_size) }?)?;
        let value = unsafe { text(value, value_size) }?;
        state::with(|s| {
            op(s.map(map)?, key, value);
            Ok(Status::Ok)
        })
    })())
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_add_header_map_value(
    map: u32,
    key: *const u8,
    key_size: usize,
    value: *const u8,
    value_size: usize,
) -> u32 {
    // SAFETY: the SDK's pointers and lengths.
    unsafe {
        edit_map(map, (key, key_size), (value, value_size), |m, k, v| {
            m.push((k, v))
        })
    }
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_replace_header_map_value(
    map: u32,
    key: *const u8,
    key_size: usize,
    value: *const u8,
    value_size: usize,
) -> u32 {
    // SAFETY: the SDK's pointers and lengths.
    unsafe {
        edit_map(map, (key, key_size), (value, value_size), |m, k, v| {
            // The first value takes the new one, the others go; absent: added.
            match m.iter().position(|(name, _)| *name == k) {
                Some(first) => {
                    m[first].1 = v;
                    let mut i = 0;
                    m.retain(|(name, _)| {
                        i += 1;
                        i - 1 == first || *name != k
                    });
                }
                None => m.push((k, v)),
            }
        })
    }
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_remove_header_map_value(
    map: u32,
    key: *const u8,
    key_size: usize,
) -> u32 {
    // SAFETY: the SDK's pointers and lengths.
    unsafe {
        edit_map(map, (key, key_size), (std::ptr::null(), 0), |m, k, _| {
            m.retain(|(name, _)| *name != k)
        })
    }
}

// === Properties ===

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_get_property(
    path: *const u8,
    path_size: usize,
    ptr_out: *mut *mut u8,
    size_out: *mut usize,
) -> u32 {
    // SAFETY: the SDK's path pointer and length.
    let path = unsafe { bytes(path, path_size) };
    let value = state::with(|s| s.get_property(path)).ok_or(Status::NotFound);
    // SAFETY: out-pointers from the SDK.
    unsafe { reply(value, ptr_out, size_out) }
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_set_property(
    path: *const u8,
    path_size: usize,
    value: *const u8,
    value_size: usize,
) -> u32 {
    // SAFETY: the SDK's pointers and lengths.
    let (path, value) = unsafe { (bytes(path, path_size), bytes(value, value_size)) };
    state::with(|s| s.set_property(path, value.to_vec())) as u32
}

// === Shared data and queues ===

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_get_shared_data(
    key: *const u8,
    key_size: usize,
    ptr_out: *mut *mut u8,
    size_out: *mut usize,
    cas_out: *mut u32,
) -> u32 {
    code((|| {
        // SAFETY: the SDK's key pointer and length.
        let key = unsafe { text(key, key_size) }?;
        let (value, cas) = state::with(|s| s.shared.get(&key).cloned()).ok_or(Status::NotFound)?;
        // SAFETY: out-pointers from the SDK.
        unsafe {
            give(&value, ptr_out, size_out);
            put(cas_out, cas);
        }
        Ok(Status::Ok)
    })())
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_set_shared_data(
    key: *const u8,
    key_size: usize,
    value: *const u8,
    value_size: usize,
    cas: u32,
) -> u32 {
    code((|| {
        // SAFETY: the SDK's pointers and lengths.
        let key = unsafe { text(key, key_size) }?;
        let value = unsafe { bytes(value, value_size) }.to_vec();
        Ok(state::with(|s| s.set_shared(key, value, cas)))
    })())
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_register_shared_queue(
    name: *const u8,
    name_size: usize,
    id_out: *mut u32,
) -> u32 {
    code((|| {
        // SAFETY: the SDK's pointers.
        let name = unsafe { text(name, name_size) }?;
        unsafe { put(id_out, state::with(|s| s.queue(&name))) };
        Ok(Status::Ok)
    })())
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_resolve_shared_queue(
    vm_id: *const u8,
    vm_id_size: usize,
    name: *const u8,
    name_size: usize,
    id_out: *mut u32,
) -> u32 {
    code((|| {
        // SAFETY: the SDK's pointers.
        let (vm_id, name) = unsafe { (text(vm_id, vm_id_size)?, text(name, name_size)?) };
        let id = state::with(|s| {
            // Queues are named per vm_id; this VM's is the plugin_vm_id property.
            let own = s
                .properties
                .get("plugin_vm_id")
                .cloned()
                .unwrap_or_default();
            let known = s.queues.iter().position(|(n, _)| *n == name);
            known
                .filter(|_| own == vm_id.as_bytes())
                .map(|i| i as u32 + 1)
        })
        .ok_or(Status::NotFound)?;
        unsafe { put(id_out, id) };
        Ok(Status::Ok)
    })())
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_enqueue_shared_queue(id: u32, value: *const u8, size: usize) -> u32 {
    // SAFETY: the SDK's value pointer and length.
    let value = unsafe { bytes(value, size) }.to_vec();
    code(state::with(|s| {
        s.queue_by_id(id)?.push_back(value);
        Ok(Status::Ok)
    }))
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_dequeue_shared_queue(
    id: u32,
    ptr_out: *mut *mut u8,
    size_out: *mut usize,
) -> u32 {
    let item = state::with(|s| s.queue_by_id(id)?.pop_front().ok_or(Status::Empty));
    // SAFETY: out-pointers from the SDK.
    unsafe { reply(item, ptr_out, size_out) }
}

// === Stream control ===

#[unsafe(no_mangle)]
extern "C" fn proxy_continue_stream(stream: u32) -> u32 {
    code(state::with(|s| {
        let current = s.current;
        let http = s.streams.get_mut(&current).ok_or(Status::NotFound)?;
        let body = match stream {
            0 => {
                http.resumed_request += 1;
                &mut http.request_body
            }
            1 => {
                http.resumed_response += 1;
                &mut http.response_body
            }
            _ => return Err(Status::BadArgument),
        };
        // What the filter held goes on.
        let held = std::mem::take(&mut body.held);
        body.forwarded.extend(held);
        Ok(Status::Ok)
    }))
}

#[unsafe(no_mangle)]
extern "C" fn proxy_close_stream(stream: u32) -> u32 {
    code(state::with(|s| {
        if stream > 3 {
            return Err(Status::BadArgument);
        }
        let current = s.current;
        s.streams.get_mut(&current).ok_or(Status::NotFound)?.closed = true;
        Ok(Status::Ok)
    }))
}

#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the ABI's shape
unsafe extern "C" fn proxy_send_local_response(
    status: u32,
    details: *const u8,
    details_size: usize,
    body: *const u8,
    body_size: usize,
    headers: *const u8,
    headers_size: usize,
    grpc_status: i32,
) -> u32 {
    code((|| {
        // SAFETY: the SDK's pointers and lengths.
        let (details, body, headers) = unsafe {
            (
                bytes(details, details_size),
                bytes(body, body_size),
                bytes(headers, headers_size),
            )
        };
        let reply = LocalReply {
            status,
            headers: lowercase_map(decode_map(headers).ok_or(Status::BadArgument)?)?,
            body: body.to_vec(),
            details: String::from_utf8_lossy(details).into_owned(),
            grpc_status: (grpc_status >= 0).then_some(grpc_status as u32),
        };
        state::with(|s| {
            let current = s.current;
            s.streams
                .get_mut(&current)
                .ok_or(Status::NotFound)?
                .local_reply = Some(reply);
            Ok(Status::Ok)
        })
    })())
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_get_status(
    _code_out: *mut u32,
    _ptr_out: *mut *mut u8,
    _size_out: *mut usize,
) -> u32 {
    // Only gRPC callbacks have a status on Weft, and the harness makes no gRPC calls.
    Status::NotFound as u32
}

// === Calls ===

#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the ABI's shape
unsafe extern "C" fn proxy_http_call(
    upstream: *const u8,
    upstream_size: usize,
    headers: *const u8,
    headers_size: usize,
    body: *const u8,
    body_size: usize,
    trailers: *const u8,
    trailers_size: usize,
    timeout_ms: u32,
    token_out: *mut u32,
) -> u32 {
    code((|| {
        // SAFETY: the SDK's pointers and lengths.
        let (cluster, headers, body, trailers) = unsafe {
            (
                text(upstream, upstream_size)?,
                bytes(headers, headers_size),
                bytes(body, body_size),
                bytes(trailers, trailers_size),
            )
        };
        let call = HttpCall {
            token: 0,
            context_id: 0,
            cluster,
            headers: decode_map(headers).ok_or(Status::BadArgument)?,
            body: body.to_vec(),
            trailers: decode_map(trailers).ok_or(Status::BadArgument)?,
            timeout: Duration::from_millis(timeout_ms.into()),
        };
        let token = state::with(|s| s.http_call(call))?;
        // SAFETY: out-pointer from the SDK.
        unsafe { put(token_out, token) };
        Ok(Status::Ok)
    })())
}

// gRPC is not simulated: calls fail the way a host without the cluster answers.

#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the ABI's shape
unsafe extern "C" fn proxy_grpc_call(
    _upstream: *const u8,
    _upstream_size: usize,
    _service: *const u8,
    _service_size: usize,
    _method: *const u8,
    _method_size: usize,
    _metadata: *const u8,
    _metadata_size: usize,
    _message: *const u8,
    _message_size: usize,
    _timeout_ms: u32,
    _token_out: *mut u32,
) -> u32 {
    Status::InternalFailure as u32
}

#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the ABI's shape
unsafe extern "C" fn proxy_grpc_stream(
    _upstream: *const u8,
    _upstream_size: usize,
    _service: *const u8,
    _service_size: usize,
    _method: *const u8,
    _method_size: usize,
    _metadata: *const u8,
    _metadata_size: usize,
    _token_out: *mut u32,
) -> u32 {
    Status::InternalFailure as u32
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_grpc_send(_token: u32, _m: *const u8, _len: usize, _eos: bool) -> u32 {
    Status::NotFound as u32
}

#[unsafe(no_mangle)]
extern "C" fn proxy_grpc_cancel(_token: u32) -> u32 {
    Status::NotFound as u32
}

#[unsafe(no_mangle)]
extern "C" fn proxy_grpc_close(_token: u32) -> u32 {
    Status::NotFound as u32
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_call_foreign_function(
    _name: *const u8,
    _name_size: usize,
    _args: *const u8,
    _args_size: usize,
    _ptr_out: *mut *mut u8,
    _size_out: *mut usize,
) -> u32 {
    // No foreign functions are registered, as on Weft.
    Status::NotFound as u32
}

// === Metrics ===

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_define_metric(
    kind: u32,
    name: *const u8,
    name_size: usize,
    id_out: *mut u32,
) -> u32 {
    code((|| {
        let kind = metric_type(kind).ok_or(Status::BadArgument)?;
        // SAFETY: the SDK's pointers.
        let name = unsafe { text(name, name_size) }?;
        let id = state::with(|s| s.define_metric(kind, &name))?;
        unsafe { put(id_out, id) };
        Ok(Status::Ok)
    })())
}

#[unsafe(no_mangle)]
extern "C" fn proxy_increment_metric(id: u32, offset: i64) -> u32 {
    code(state::with(|s| {
        let metric = s.metric(id)?;
        match metric.kind {
            MetricType::Counter if offset >= 0 => metric.value += offset,
            MetricType::Gauge => metric.value += offset,
            _ => return Err(Status::BadArgument),
        }
        Ok(Status::Ok)
    }))
}

#[unsafe(no_mangle)]
extern "C" fn proxy_record_metric(id: u32, value: u64) -> u32 {
    code(state::with(|s| {
        let metric = s.metric(id)?;
        let value_i64 = i64::try_from(value).unwrap_or(i64::MAX);
        match metric.kind {
            // Recording a counter raises it to the value, never lowers it.
            MetricType::Counter => metric.value = metric.value.max(value_i64),
            MetricType::Gauge => metric.value = value_i64,
            _ => metric.samples.push(value),
        }
        Ok(Status::Ok)
    }))
}

#[unsafe(no_mangle)]
unsafe extern "C" fn proxy_get_metric(id: u32, value_out: *mut u64) -> u32 {
    code((|| {
        let value = state::with(|s| {
            let metric = s.metric(id)?;
            match metric.kind {
                MetricType::Histogram => Err(Status::BadArgument),
                _ => Ok(metric.value as u64),
            }
        })?;
        // SAFETY: out-pointer from the SDK.
        unsafe { put(value_out, value) };
        Ok(Status::Ok)
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_through_the_abi_encoding() {
        let map = vec![
            (":path".to_string(), "/a".to_string()),
            ("x".to_string(), String::new()),
        ];
        let data = encode_map(&map);
        assert_eq!(&data[..4], &2u32.to_le_bytes());
        assert_eq!(decode_map(&data), Some(map));
        assert_eq!(decode_map(&[]), Some(vec![]));
        assert_eq!(decode_map(&[5, 0, 0, 0]), None);
    }
}
