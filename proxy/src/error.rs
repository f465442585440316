//! Error helpers shared across the crate.

use std::error::Error;
use std::fmt::Write;

/// An error and all its sources on one line: `connect to 127.0.0.1:1 failed: ...: refused`.
pub fn chain(error: &dyn Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.ends_with(&text) {
            let _ = write!(out, ": {text}");
        }
        source = e.source();
    }
    out
}
