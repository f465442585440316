//! `shared_data`: a request counter kept in the host's shared key-value store.
//!
//! `on_http_request_headers` increments the decimal text under shared-data key
//! `fixture.counter` with a compare-and-swap loop:
//! 1. `get_shared_data("fixture.counter")` -> `(value, cas)`; an absent key or a value that
//!    is not a decimal `u64` counts as 0;
//! 2. `set_shared_data("fixture.counter", Some(new.to_string()), cas)` with `new = old + 1`;
//! 3. on `Err(Status::CasMismatch)` start again from 1 (at most 1000 attempts).
//!
//! For an absent key the SDK passes cas 0, which in the ABI means "write unconditionally",
//! so two workers' first increments could both write 1: `on_vm_start` therefore creates the
//! key as `0` when it is absent (every VM starts before any request; a VM started later,
//! after a reload, finds the key and leaves it). Returns Continue.
//!
//! `on_http_response_headers` sets response header `x-shared-counter` to the value this
//! request wrote (`1` for the first request of a fresh host), `error:<Status>` if the update
//! failed (`error:CasMismatch` after 1000 lost races), or `none` if the request phase did not
//! run for this context.

use log::warn;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, Status};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(SharedDataRoot) });
}}

const KEY: &str = "fixture.counter";
const MAX_ATTEMPTS: usize = 1000;

/// Adds one to the decimal counter stored under `key`; returns the value written.
fn cas_increment(ctx: &dyn Context, key: &str) -> Result<u64, Status> {
    for _ in 0..MAX_ATTEMPTS {
        let (value, cas) = ctx.get_shared_data(key);
        let old = value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let new = old + 1;
        match ctx.set_shared_data(key, Some(new.to_string().as_bytes()), cas) {
            Ok(()) => return Ok(new),
            Err(Status::CasMismatch) => continue,
            Err(status) => return Err(status),
        }
    }
    Err(Status::CasMismatch)
}

struct SharedDataRoot;

impl Context for SharedDataRoot {}

impl RootContext for SharedDataRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        if self.get_shared_data(KEY).0.is_none() {
            // Every VM that finds no key writes the same 0: the order does not matter.
            if let Err(status) = self.set_shared_data(KEY, Some(b"0"), None) {
                warn!("shared_data filter: creating {KEY} failed: {status:?}");
            }
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(SharedDataHttp { written: None }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct SharedDataHttp {
    written: Option<String>,
}

impl Context for SharedDataHttp {}

impl HttpContext for SharedDataHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.written = Some(match cas_increment(self, KEY) {
            Ok(value) => value.to_string(),
            Err(status) => {
                warn!("shared_data filter: updating {KEY} failed: {status:?}");
                format!("error:{status:?}")
            }
        });
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let value = self.written.as_deref().unwrap_or("none");
        self.set_http_response_header("x-shared-counter", Some(value));
        Action::Continue
    }
}
