//! The host's clock. Filters should read time through the host (not `std::time`, which a
//! `wasm32-unknown-unknown` module does not have): Weft gives the wall clock, and the test
//! harness a clock the test controls.

use std::time::{SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;

/// The current time as the host sees it.
pub fn now() -> SystemTime {
    // The SDK panics itself on an unexpected status; Ok is the only other answer.
    hostcalls::get_current_time().unwrap_or(UNIX_EPOCH)
}

/// Whole seconds since the Unix epoch.
pub fn unix_secs() -> u64 {
    since_epoch(now()).as_secs()
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    since_epoch(now()).as_millis() as u64
}

fn since_epoch(t: SystemTime) -> std::time::Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}
