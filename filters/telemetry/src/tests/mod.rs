//! Unit tests: the pure parts (trace context, ids, names, the log line, config checks),
//! then the filter as a host runs it on weft-sdk's native harness (`filter_*`).

mod access_log;
mod config;
mod filter_log;
mod filter_metrics;
mod filter_trace;
mod ids;
mod stats;
mod support;
mod trace;
