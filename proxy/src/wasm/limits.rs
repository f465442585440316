//! Per-VM isolation limits: a linear-memory cap (a `ResourceLimiter` that remembers when it
//! refused, so an out-of-memory trap is reported as such) and CPU deadlines per callback.

use std::time::Duration;

use wasmtime::ResourceLimiter;

use super::engine::EPOCH_TICK;

#[derive(Clone, Debug, PartialEq)]
pub struct WasmLimits {
    /// Linear memory a VM may grow to, in bytes.
    pub memory_bytes: usize,
    /// CPU time one HTTP or timer callback may take.
    pub callback_deadline: Duration,
    /// CPU time start-up (`_initialize`, `on_vm_start`, `on_configure`) may take.
    pub startup_deadline: Duration,
    /// Body bytes a request may hold while a filter pauses a body phase.
    pub max_buffered_body: usize,
    /// How long a paused request waits to be resumed.
    pub pause_timeout: Duration,
}

impl Default for WasmLimits {
    fn default() -> Self {
        WasmLimits {
            memory_bytes: 64 << 20,
            callback_deadline: Duration::from_millis(10),
            startup_deadline: Duration::from_secs(2),
            max_buffered_body: 1 << 20,
            pause_timeout: Duration::from_secs(30),
        }
    }
}

/// A deadline in epoch ticks (at least 2, so a tick that lands right after the call
/// starts does not cut it short).
pub fn ticks(deadline: Duration) -> u64 {
    (deadline.as_micros() / EPOCH_TICK.as_micros()).max(2) as u64
}

/// The memory cap of one store.
#[derive(Debug)]
pub struct MemoryCap {
    pub max_bytes: usize,
    /// A grow was refused since the last reset.
    pub refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
