//! Filters built into the binary, named in config as `module: builtin:NAME`: `hello` (a
//! tiny WAT module) and the built-in filters of filters/ (router, ratelimit, auth,
//! telemetry), embedded by build.rs when they were built before weft.

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtin_filters.rs"));
}

/// The prefix of a built-in module's name in config.
pub const PREFIX: &str = "builtin:";

/// Whether a module path names a built-in filter (`builtin:NAME`).
pub fn is_builtin(path: &std::path::Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with(PREFIX))
}

/// The module text (WAT or wasm) of built-in filter `name`.
pub fn module(name: &str) -> Option<&'static [u8]> {
    match name {
        "hello" => Some(include_bytes!("hello.wat")),
        _ => embedded::EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bytes)| *bytes),
    }
}

/// Every built-in filter's name this weft has.
pub fn names() -> Vec<&'static str> {
    std::iter::once("hello")
        .chain(embedded::EMBEDDED.iter().map(|(n, _)| *n))
        .collect()
}

/// The built-in filters this weft was built without (scripts/build-filters.sh builds them).
pub fn missing() -> &'static [&'static str] {
    embedded::MISSING
}

/// Whether every built-in filter is in this binary.
pub fn complete() -> bool {
    embedded::MISSING.is_empty()
}
