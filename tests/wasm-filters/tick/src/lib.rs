//! `tick`: counts timer ticks in shared data.
//!
//! Root `on_configure` calls `set_tick_period(50 ms)` and returns true. Root `on_tick`
//! increments the decimal text under shared-data key `tick.count` with the same
//! compare-and-swap loop as the `shared_data` fixture (absent or non-numeric counts as 0,
//! retry on CasMismatch, at most 1000 attempts; failures are logged at warn level).
//!
//! Every root context that was configured ticks, so a host running one VM per worker
//! thread counts once per tick per VM.
//!
//! HTTP `on_http_response_headers` sets response header `x-ticks` to the current value of
//! `tick.count` as stored (`0` if the key does not exist yet). Request phase: Continue,
//! nothing else. No configuration.

use log::warn;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, Status};
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(TickRoot) });
}}

const KEY: &str = "tick.count";
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

struct TickRoot;

impl Context for TickRoot {}

impl RootContext for TickRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.set_tick_period(Duration::from_millis(50));
        true
    }

    fn on_tick(&mut self) {
        if let Err(status) = cas_increment(self, KEY) {
            warn!("tick filter: updating {KEY} failed: {status:?}");
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(TickHttp))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct TickHttp;

impl Context for TickHttp {}

impl HttpContext for TickHttp {
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (value, _cas) = self.get_shared_data(KEY);
        let ticks = value.map_or_else(
            || "0".to_owned(),
            |v| String::from_utf8_lossy(&v).into_owned(),
        );
        self.set_http_response_header("x-ticks", Some(&ticks));
        Action::Continue
    }
}
