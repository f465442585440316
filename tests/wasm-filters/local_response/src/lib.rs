//! `local_response`: answers some requests itself instead of forwarding them.
//!
//! `on_http_request_headers` looks at `:path`:
//! - starts with `/deny`: `send_http_response(403, [("x-denied-by", "wasm")],
//!   Some(b"denied by wasm\n"))`, returns Pause;
//! - starts with `/teapot`: `send_http_response(418, [], Some(b"short and stout\n"))`,
//!   returns Pause;
//! - anything else (or no `:path`): Continue.
//!
//! `on_http_response_headers` adds `x-local-response-filter: seen` to every response,
//! upstream or local, so tests can check that the response phase also runs after a local
//! reply. No configuration.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(LocalResponseRoot) });
}}

struct LocalResponseRoot;

impl Context for LocalResponseRoot {}

impl RootContext for LocalResponseRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(LocalResponseHttp))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct LocalResponseHttp;

impl Context for LocalResponseHttp {}

impl HttpContext for LocalResponseHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        if path.starts_with("/deny") {
            self.send_http_response(
                403,
                vec![("x-denied-by", "wasm")],
                Some(b"denied by wasm\n"),
            );
            Action::Pause
        } else if path.starts_with("/teapot") {
            self.send_http_response(418, vec![], Some(b"short and stout\n"));
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.add_http_response_header("x-local-response-filter", "seen");
        Action::Continue
    }
}
