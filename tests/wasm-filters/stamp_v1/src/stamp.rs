// The body of the `stamp_v1` and `stamp_v2` fixtures; each defines `VERSION` and includes
// this file, so the two modules differ only in that constant.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(StampRoot) });
}}

struct StampRoot;

impl Context for StampRoot {}

impl RootContext for StampRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(StampHttp))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct StampHttp;

impl Context for StampHttp {}

impl HttpContext for StampHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.add_http_request_header("x-module-version", VERSION);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.add_http_response_header("x-module-version", VERSION);
        Action::Continue
    }
}
