//! `abi_010`: the minimal header-adding filter built with the OLD SDK, `proxy-wasm = "0.1.4"`,
//! which exports `proxy_abi_version_0_1_0` and speaks Proxy-Wasm ABI v0.1.0:
//! `proxy_on_request_headers(context_id, num_headers)` and `proxy_on_response_headers` take
//! two arguments (no end_of_stream), configuration is read with `proxy_get_configuration`,
//! and resuming uses `proxy_continue_request`/`proxy_continue_response`.
//!
//! Behaviour: `on_http_request_headers` adds request header `x-abi: 0.1.0` and returns
//! Continue. Nothing else. No configuration.
//!
//! SDK 0.1.x predates `proxy_wasm::main!`; its entry point is an exported `_start`, as in
//! that release's examples.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

#[no_mangle]
pub fn _start() {
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Abi010Root) });
}

struct Abi010Root;

impl Context for Abi010Root {}

impl RootContext for Abi010Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Abi010Http))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Abi010Http;

impl Context for Abi010Http {}

impl HttpContext for Abi010Http {
    fn on_http_request_headers(&mut self, _num_headers: usize) -> Action {
        self.add_http_request_header("x-abi", "0.1.0");
        Action::Continue
    }
}
