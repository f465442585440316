//! `wasi_log`: exercises WASI from inside a filter (meant for the wasm32-wasip1 build).
//!
//! `on_http_request_headers`:
//! 1. `println!("wasi stdout line")` (WASI `fd_write` on fd 1);
//! 2. `eprintln!("wasi stderr line")` (`fd_write` on fd 2);
//! 3. reads `std::time::SystemTime::now()` (`clock_time_get`) and sets request header
//!    `x-wasi-time-ok` to `1` if it is after 2020-01-01T00:00:00Z, else `0`;
//! 4. reads `std::env::var("HOME")` (`environ_sizes_get`/`environ_get`) and sets request
//!    header `x-wasi-home` to `present` or `absent` (the value itself is never exposed);
//! 5. returns Continue.
//!
//! The wasm32-unknown-unknown build of this crate imports no WASI: there `println!` and
//! `eprintln!` write nowhere, the clock does not exist (std would panic), so
//! `x-wasi-time-ok` is `unsupported`, and `HOME` is always `absent`.
//! No configuration.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(WasiLogRoot) });
}}

/// 2020-01-01T00:00:00Z in seconds since the Unix epoch.
#[cfg(target_os = "wasi")]
const JAN_1_2020: u64 = 1_577_836_800;

struct WasiLogRoot;

impl Context for WasiLogRoot {}

impl RootContext for WasiLogRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(WasiLogHttp))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct WasiLogHttp;

impl Context for WasiLogHttp {}

#[cfg(target_os = "wasi")]
fn time_ok() -> &'static str {
    use std::time::{Duration, SystemTime};
    let threshold = SystemTime::UNIX_EPOCH + Duration::from_secs(JAN_1_2020);
    if SystemTime::now() > threshold {
        "1"
    } else {
        "0"
    }
}

#[cfg(not(target_os = "wasi"))]
fn time_ok() -> &'static str {
    "unsupported"
}

impl HttpContext for WasiLogHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        println!("wasi stdout line");
        eprintln!("wasi stderr line");
        self.set_http_request_header("x-wasi-time-ok", Some(time_ok()));
        let home = if std::env::var("HOME").is_ok() {
            "present"
        } else {
            "absent"
        };
        self.set_http_request_header("x-wasi-home", Some(home));
        Action::Continue
    }
}
