//! `abi_020`: a minimal filter that declares Proxy-Wasm ABI v0.2.0 by exporting
//! `proxy_abi_version_0_2_0`.
//!
//! No release of the Rust SDK speaks v0.2.0 (proxy-wasm 0.1.x exports
//! `proxy_abi_version_0_1_0`, 0.2.x exports `proxy_abi_version_0_2_1`; v0.2.0 came from the
//! C++ and AssemblyScript SDKs), so this module is written by hand against the v0.2.0
//! signatures, without the SDK. For what this filter does, v0.2.0 and v0.2.1 agree; they
//! differ in hostcalls it does not use (v0.2.0 has `proxy_continue_request`,
//! `proxy_continue_response` and `proxy_clear_route_cache` where v0.2.1 has
//! `proxy_continue_stream` and `proxy_close_stream`).
//!
//! Behaviour: `proxy_on_request_headers` adds request header `x-abi: 0.2.0` with
//! `proxy_add_header_map_value` and returns Continue (0). Every other callback is a no-op
//! (Continue for HTTP callbacks, true for `proxy_on_vm_start`, `proxy_on_configure` and
//! `proxy_on_done`). The only import is `env.proxy_add_header_map_value`.
//!
//! Exports match what the 0.2.5 SDK exports, so the host finds the same names: the
//! allocator is `malloc` on wasm32-unknown-unknown and `proxy_on_memory_allocate` on WASI,
//! and `_initialize` runs the module's constructors on WASI.
#![allow(clippy::missing_safety_doc)]

use std::mem::MaybeUninit;

const MAP_HTTP_REQUEST_HEADERS: u32 = 0;
const ACTION_CONTINUE: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_0() {}

#[cfg(target_os = "wasi")]
extern "C" {
    fn __wasm_call_ctors();
}

#[no_mangle]
pub extern "C" fn _initialize() {
    #[cfg(target_os = "wasi")]
    unsafe {
        __wasm_call_ctors();
    }
}

/// The host asks for memory to copy results into (same implementation as the SDK).
#[cfg_attr(
    all(target_arch = "wasm32", target_os = "unknown"),
    export_name = "malloc"
)]
#[cfg_attr(not(all(target_arch = "wasm32", target_os = "unknown")), no_mangle)]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut vec: Vec<MaybeUninit<u8>> = Vec::with_capacity(size);
    unsafe {
        vec.set_len(size);
    }
    Box::into_raw(vec.into_boxed_slice()) as *mut u8
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_context_id: u32, _parent_context_id: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_context_id: u32, _vm_configuration_size: usize) -> bool {
    true
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_context_id: u32, _plugin_configuration_size: usize) -> bool {
    true
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    _context_id: u32,
    _num_headers: usize,
    _end_of_stream: bool,
) -> u32 {
    let (key, value) = ("x-abi", "0.2.0");
    // The status is ignored: there is nothing useful to do if the host refuses.
    unsafe {
        proxy_add_header_map_value(
            MAP_HTTP_REQUEST_HEADERS,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        );
    }
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(
    _context_id: u32,
    _body_size: usize,
    _end_of_stream: bool,
) -> u32 {
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_request_trailers(_context_id: u32, _num_trailers: usize) -> u32 {
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(
    _context_id: u32,
    _num_headers: usize,
    _end_of_stream: bool,
) -> u32 {
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(
    _context_id: u32,
    _body_size: usize,
    _end_of_stream: bool,
) -> u32 {
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_trailers(_context_id: u32, _num_trailers: usize) -> u32 {
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_log(_context_id: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_done(_context_id: u32) -> bool {
    true
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(_context_id: u32) {}
