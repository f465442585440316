//! `trailers`: the trailer phases.
//!
//! - `on_http_request_trailers`: adds request trailer `x-wasm-request-trailer: seen` and
//!   copies the `x-checksum` trailer (if any) to `x-wasm-checksum`. Continue.
//! - `on_http_response_trailers`: adds response trailer `x-wasm-response-trailer: seen`
//!   and `x-wasm-saw-grpc-status` with the value of `grpc-status` (or `none`). Continue.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(TrailersRoot) });
}}

struct TrailersRoot;

impl Context for TrailersRoot {}

impl RootContext for TrailersRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(TrailersHttp))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct TrailersHttp;

impl Context for TrailersHttp {}

impl HttpContext for TrailersHttp {
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.add_http_request_trailer("x-wasm-request-trailer", "seen");
        if let Some(sum) = self.get_http_request_trailer("x-checksum") {
            self.add_http_request_trailer("x-wasm-checksum", &sum);
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.add_http_response_trailer("x-wasm-response-trailer", "seen");
        let status = self.get_http_response_trailer("grpc-status").unwrap_or_else(|| "none".to_string());
        self.add_http_response_trailer("x-wasm-saw-grpc-status", &status);
        Action::Continue
    }
}
