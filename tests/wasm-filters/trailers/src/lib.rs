//! `trailers`: the trailer phases.
//!
//! - `on_http_request_trailers`: adds request trailer `x-wasm-request-trailer: seen` and
//!   copies the `x-checksum` trailer (if any) to `x-wasm-checksum`. Continue.
//! - `on_http_response_trailers`: adds response trailer `x-wasm-response-trailer: seen`
//!   and `x-wasm-saw-grpc-status` with the value of `grpc-status` (or `none`). Continue.
//! - Both trailer phases also add `x-wasm-body-ended-first` (request and response side):
//!   `true` when the body phase of that direction already had its end of stream, as weft
//!   documents (body phases end before the trailers phase), else `false`. The body phases
//!   only record that, and Continue.

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
        Some(Box::new(TrailersHttp::default()))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[derive(Default)]
struct TrailersHttp {
    request_body_ended: bool,
    response_body_ended: bool,
}

impl Context for TrailersHttp {}

impl HttpContext for TrailersHttp {
    fn on_http_request_body(&mut self, _body_size: usize, end_of_stream: bool) -> Action {
        self.request_body_ended |= end_of_stream;
        Action::Continue
    }

    fn on_http_response_body(&mut self, _body_size: usize, end_of_stream: bool) -> Action {
        self.response_body_ended |= end_of_stream;
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.add_http_request_trailer("x-wasm-request-trailer", "seen");
        let ended = self.request_body_ended.to_string();
        self.add_http_request_trailer("x-wasm-body-ended-first", &ended);
        if let Some(sum) = self.get_http_request_trailer("x-checksum") {
            self.add_http_request_trailer("x-wasm-checksum", &sum);
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.add_http_response_trailer("x-wasm-response-trailer", "seen");
        let ended = self.response_body_ended.to_string();
        self.add_http_response_trailer("x-wasm-body-ended-first", &ended);
        let status = self.get_http_response_trailer("grpc-status").unwrap_or_else(|| "none".to_string());
        self.add_http_response_trailer("x-wasm-saw-grpc-status", &status);
        Action::Continue
    }
}
