//! `foreign`: calls a foreign function that no host provides.
//!
//! `on_http_request_headers` calls
//! `proxy_wasm::hostcalls::call_foreign_function("no_such_function", None)` and sets request
//! header `x-foreign` to:
//! - `not_found` for `Err(Status::NotFound)` (what Envoy answers for an unknown name);
//! - `ok` for `Ok(_)`;
//! - `format!("{:?}", status)` for any other error the SDK reports (`BadArgument`,
//!   `SerializationFailure`, `InternalFailure`). Any other status makes the SDK panic.
//!
//! Returns Continue. No configuration.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, Status};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(ForeignRoot) });
}}

struct ForeignRoot;

impl Context for ForeignRoot {}

impl RootContext for ForeignRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ForeignHttp))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct ForeignHttp;

impl Context for ForeignHttp {}

impl HttpContext for ForeignHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let outcome = match hostcalls::call_foreign_function("no_such_function", None) {
            Ok(_) => "ok".to_owned(),
            Err(Status::NotFound) => "not_found".to_owned(),
            Err(status) => format!("{status:?}"),
        };
        self.set_http_request_header("x-foreign", Some(&outcome));
        Action::Continue
    }
}
