//! `log_counter`: proves `on_log` runs for every request, also abandoned ones.
//!
//! - `on_http_response_headers`: sets response header `x-log-count` to the value of
//!   shared-data key `log.count` (the `on_log` calls so far, `0` when unset).
//! - `on_log`: CAS-increments shared-data key `log.count`.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, Status};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(LogRoot) });
}}

struct LogRoot;

impl Context for LogRoot {}

impl RootContext for LogRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(LogHttp))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct LogHttp;

impl LogHttp {
    fn count(&self) -> (u64, Option<u32>) {
        let (value, cas) = self.get_shared_data("log.count");
        let n = value
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (n, cas)
    }
}

impl Context for LogHttp {}

impl HttpContext for LogHttp {
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (n, _) = self.count();
        self.set_http_response_header("x-log-count", Some(&n.to_string()));
        Action::Continue
    }

    fn on_log(&mut self) {
        for _ in 0..1000 {
            let (n, cas) = self.count();
            match self.set_shared_data("log.count", Some((n + 1).to_string().as_bytes()), cas) {
                Err(Status::CasMismatch) => continue,
                _ => return,
            }
        }
    }
}
