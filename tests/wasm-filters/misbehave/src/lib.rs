//! `misbehave`: a filter that fails on purpose, to test how the host contains a broken
//! plugin.
//!
//! `on_http_request_headers` reads the request header `x-misbehave` (exact, case-sensitive
//! value):
//! - `panic`: `panic!("asked to panic")`. The SDK's panic hook first logs the panic message
//!   (`panicked at misbehave/src/lib.rs:..:..:\nasked to panic`) at critical level via
//!   `proxy_log`, then the module aborts (wasm `unreachable` trap);
//! - `loop`: spins forever on a `core::hint::black_box` counter (never returns; only fuel,
//!   epoch interruption or a timeout in the host can stop it);
//! - `oom`: allocates 1024 chunks of 1 MiB (1 GiB in all), each filled with `0xA5` so every
//!   page is touched, all kept alive in this context. If the host's memory limit stops
//!   `memory.grow`, the allocation fails and the module aborts with a trap; std writes
//!   `memory allocation of 1048576 bytes failed` to stderr first (only visible on
//!   wasm32-wasip1; nothing goes through `proxy_log`). If all 1 GiB fits, sets
//!   `x-misbehave-oom-survived: 1024` (MiB) and Continues; the memory stays allocated until
//!   the context is deleted (wasm memory never shrinks, so the instance keeps ~1 GiB);
//! - `trap`: `core::arch::wasm32::unreachable()` (an immediate wasm trap, no log line);
//! - absent or any other value: sets request header `x-misbehave-ok: 1`, Continue.
//!
//! No configuration.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(MisbehaveRoot) });
}}

const CHUNK: usize = 1 << 20;
const CHUNKS: usize = 1024;

struct MisbehaveRoot;

impl Context for MisbehaveRoot {}

impl RootContext for MisbehaveRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(MisbehaveHttp { hoard: Vec::new() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct MisbehaveHttp {
    hoard: Vec<Vec<u8>>,
}

impl Context for MisbehaveHttp {}

impl HttpContext for MisbehaveHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.get_http_request_header("x-misbehave").as_deref() {
            Some("panic") => panic!("asked to panic"),
            Some("loop") => spin_forever(),
            Some("oom") => {
                for _ in 0..CHUNKS {
                    let chunk = vec![0xA5u8; CHUNK];
                    self.hoard.push(core::hint::black_box(chunk));
                }
                core::hint::black_box(&self.hoard);
                self.set_http_request_header("x-misbehave-oom-survived", Some("1024"));
                Action::Continue
            }
            Some("trap") => trap(),
            _ => {
                self.set_http_request_header("x-misbehave-ok", Some("1"));
                Action::Continue
            }
        }
    }
}

fn spin_forever() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = core::hint::black_box(counter.wrapping_add(1));
    }
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}
