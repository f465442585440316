//! Filters built into the binary, named in config as `module: builtin:NAME`.

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
        _ => None,
    }
}

/// Every built-in filter's name.
pub const NAMES: &[&str] = &["hello"];
