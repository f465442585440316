//! `body`: buffers whole bodies and rewrites them.
//!
//! - `on_http_request_headers`: Continue (touches no header; fixing `content-length` after
//!   the body changes size is the host's job).
//! - `on_http_request_body(size, end_of_stream)`: while `!end_of_stream` returns Pause (asks
//!   the host to buffer). At end of stream reads the whole buffered body with
//!   `get_http_request_body(0, size)`, ASCII-uppercases it (other bytes unchanged, same
//!   length) and writes it back with `set_http_request_body(0, size, ..)`; Continue.
//! - `on_http_response_headers`: Continue, removes nothing.
//! - `on_http_response_body(size, end_of_stream)`: same buffering; at end of stream replaces
//!   the whole body with `b"wrapped:" + original` (so the body grows by 8 bytes); Continue.
//!
//! A body the host reports as absent (`None`) is treated as empty: the request body stays
//! empty, the response body becomes `wrapped:`. A message with no body at all never reaches
//! the body callbacks. No configuration.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(BodyRoot) });
}}

struct BodyRoot;

impl Context for BodyRoot {}

impl RootContext for BodyRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(BodyHttp))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct BodyHttp;

impl Context for BodyHttp {}

impl HttpContext for BodyHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        let upper = body.to_ascii_uppercase();
        self.set_http_request_body(0, body_size, &upper);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self
            .get_http_response_body(0, body_size)
            .unwrap_or_default();
        let mut wrapped = Vec::with_capacity(body.len() + 8);
        wrapped.extend_from_slice(b"wrapped:");
        wrapped.extend_from_slice(&body);
        self.set_http_response_body(0, body_size, &wrapped);
        Action::Continue
    }
}
