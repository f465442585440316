//! Logging and time: proxy_log, proxy_get_log_level, proxy_get_current_time_nanoseconds.
//! Guest log lines go to tracing with the target `weft::wasm` and the plugin's name.

use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::Caller;

use super::memory::{self, status_code};
use super::types::{Status, log_level_from_raw};
use crate::wasm::host::HostFunctions;
use crate::wasm::state::HostState;

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        "env",
        "proxy_log",
        |mut c: Caller<'_, HostState>, level: u32, ptr: u32, len: u32| {
            status_code((|| {
                let level = log_level_from_raw(level).ok_or(Status::BadArgument)?;
                let message = memory::read(&mut c, ptr, len)?;
                log(
                    &c.data().plugin.name,
                    level,
                    &String::from_utf8_lossy(&message),
                );
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_get_log_level",
        |mut c: Caller<'_, HostState>, level_out: u32| {
            status_code((|| {
                memory::write_u32(&mut c, level_out, current_level())?;
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Caller<'_, HostState>, time_out: u32| {
            status_code((|| {
                memory::write_u64(&mut c, time_out, now_nanos())?;
                Ok(Status::Ok)
            })())
        },
    );
}

pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Emits a guest log line at `level`.
pub fn log(plugin: &str, level: tracing::Level, message: &str) {
    match level {
        tracing::Level::TRACE => tracing::trace!(target: "weft::wasm", plugin, "{message}"),
        tracing::Level::DEBUG => tracing::debug!(target: "weft::wasm", plugin, "{message}"),
        tracing::Level::INFO => tracing::info!(target: "weft::wasm", plugin, "{message}"),
        tracing::Level::WARN => tracing::warn!(target: "weft::wasm", plugin, "{message}"),
        tracing::Level::ERROR => tracing::error!(target: "weft::wasm", plugin, "{message}"),
    }
}

/// The most verbose proxy-wasm level that the log filter lets through for guest logs.
fn current_level() -> u32 {
    if tracing::enabled!(target: "weft::wasm", tracing::Level::TRACE) {
        0
    } else if tracing::enabled!(target: "weft::wasm", tracing::Level::DEBUG) {
        1
    } else if tracing::enabled!(target: "weft::wasm", tracing::Level::INFO) {
        2
    } else if tracing::enabled!(target: "weft::wasm", tracing::Level::WARN) {
        3
    } else {
        4
    }
}
