//! Configuration: the YAML schema ([`raw`]), its validation into typed config ([`validate`]),
//! and the embedded default config used when `weft run` gets no `--config`.
//!
//! YAML is read with `serde_norway`, a maintained fork of the deprecated `serde_yaml`
//! (`serde_yml` has been flagged unsound); its errors name the field path and location.

pub mod duration;
pub mod raw;
pub mod resolve;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

pub use raw::RawConfig;
pub use types::*;

/// The config `weft run` uses when no `--config` is given (see docs/config.md): the four
/// built-in filters in front of the demo upstream.
pub const EMBEDDED_DEFAULT_FULL: &str = include_str!("default.yaml");
/// The default for a weft built without the built-in filters (only `builtin:hello`).
pub const EMBEDDED_DEFAULT_MINIMAL: &str = include_str!("default-minimal.yaml");

/// The embedded default config of this weft: the full one when it has the built-in
/// filters, else the minimal one.
pub fn embedded_default_text() -> &'static str {
    if crate::wasm::builtin::complete() {
        EMBEDDED_DEFAULT_FULL
    } else {
        EMBEDDED_DEFAULT_MINIMAL
    }
}

/// Where a config came from, for error messages and `/config_dump`.
pub const EMBEDDED_SOURCE: &str = "<embedded default>";

/// One thing wrong with a config: where (file, line/column if known, field path) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub location: Option<(usize, usize)>,
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some((line, column)) = self.location {
            write!(f, ":{line}:{column}")?;
        }
        if self.path.is_empty() || self.path == "." {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.path, self.message)
        }
    }
}

/// Every error found in one config; a config is only used when this list is empty.
#[derive(Clone, Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Parses YAML text into the raw schema; the error names line, column and field path.
pub fn parse(source: &str, text: &str) -> Result<RawConfig, ConfigErrors> {
    serde_norway::from_str(text).map_err(|err| {
        let location = err.location().map(|l| (l.line(), l.column()));
        // serde_norway's message starts with the field path and ends with " at line L
        // column C"; the location goes up front instead.
        let mut message = err.to_string();
        if let Some(cut) = message.find(" at line ") {
            message.truncate(cut);
        }
        ConfigErrors(vec![ConfigError {
            source: source.to_string(),
            location,
            path: String::new(),
            message,
        }])
    })
}

/// Parses and validates config text.
/// Parses and validates config text; relative module paths are taken from `base_dir`.
pub fn load_str_in(source: &str, text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let raw = parse(source, text)?;
    validate::validate(source, raw, base_dir)
}

/// Validates a config built in memory (`weft run --listen ...`, see `crate::quick`) exactly
/// as a parsed file would be; relative module paths are taken from `base_dir`.
pub fn load_raw(source: &str, raw: RawConfig, base_dir: &Path) -> Result<Config, ConfigErrors> {
    validate::validate(source, raw, base_dir)
}

/// Parses and validates config text; relative module paths are taken from the working
/// directory.
pub fn load_str(source: &str, text: &str) -> Result<Config, ConfigErrors> {
    load_str_in(source, text, Path::new("."))
}

/// Reads, parses and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            source: source.clone(),
            location: None,
            path: String::new(),
            message: format!("cannot read config file: {e}"),
        }])
    })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    load_str_in(&source, &text, base_dir)
}

/// The embedded default config, validated.
pub fn embedded_default() -> Config {
    load_str(EMBEDDED_SOURCE, embedded_default_text())
        .expect("the embedded default config is valid")
}
