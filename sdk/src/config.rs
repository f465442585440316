//! The plugin configuration as a typed struct.
//!
//! A filter declares a `serde::Deserialize` struct and reads it in `on_configure`:
//!
//! ```ignore
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config { header: String, #[serde(default)] value: String }
//!
//! impl RootContext for Root {
//!     fn on_configure(&mut self, _: usize) -> bool {
//!         weft_sdk::config::load_into(&mut self.config)
//!     }
//! }
//! ```
//!
//! The configuration is JSON (the `config:` of the filter entry; Weft hands a YAML map to
//! the filter as JSON). An empty configuration is read as `{}`, so a struct whose fields
//! all have defaults (`#[serde(default)]`) accepts it and one with required fields says
//! which is missing. On a bad configuration, [`load`] logs one line naming the field path
//! and the problem, for example
//! `config: limits[1].per: unknown variant `hour`, expected `second` or `minute` at line 1 column 40`,
//! and `on_configure` returns false, which makes Weft refuse the config (or the reload).

use std::fmt;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel};
use serde::de::DeserializeOwned;

/// A plugin configuration that does not fit the filter's config type.
#[derive(Debug)]
pub struct ConfigError {
    path: String,
    message: String,
}

impl ConfigError {
    /// Where in the configuration the problem is, as `field[1].sub`; empty for the
    /// document as a whole (a syntax error, say).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong, as serde_json says it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "config: {}", self.message)
        } else {
            write!(f, "config: {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses a plugin configuration: JSON, with empty (or blank) input read as `{}`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ConfigError {
            // serde_path_to_error writes "." for the document itself and "?" where it
            // never learnt the key (a syntax error inside a map).
            path: if path == "." || path == "?" {
                String::new()
            } else {
                path
            },
            message: e.into_inner().to_string(),
        }
    })?;
    // Text after the value is an error too.
    de.end().map_err(|e| ConfigError {
        path: String::new(),
        message: e.to_string(),
    })?;
    Ok(value)
}

/// Reads the plugin configuration from the host and parses it as `T`. On failure logs
/// one error line (see the module docs) and returns `None`.
pub fn load<T: DeserializeOwned>() -> Option<T> {
    let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .ok()
        .flatten()
        .unwrap_or_default();
    match parse(&bytes) {
        Ok(config) => Some(config),
        Err(e) => {
            // Logging can only fail on a broken host; the error is still reported by the
            // false return.
            let _ = hostcalls::log(LogLevel::Error, &e.to_string());
            None
        }
    }
}

/// [`load`] into `slot`: the one-liner for `on_configure`. Returns whether the
/// configuration was accepted; on failure `slot` keeps its previous value.
pub fn load_into<T: DeserializeOwned>(slot: &mut T) -> bool {
    match load() {
        Some(config) => {
            *slot = config;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Limits {
        limits: Vec<Limit>,
        name: String,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Limit {
        requests: u32,
        per: Per,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(rename_all = "lowercase")]
    enum Per {
        #[default]
        Second,
        Minute,
    }

    #[derive(Debug, Deserialize)]
    struct Required {
        #[allow(dead_code)]
        header: String,
    }

    #[test]
    fn parses_json_into_the_struct() {
        let c: Limits = parse(br#"{"name":"a","limits":[{"requests":5,"per":"minute"}]}"#).unwrap();
        assert_eq!(c.name, "a");
        assert_eq!(
            c.limits,
            vec![Limit {
                requests: 5,
                per: Per::Minute
            }]
        );
    }

    #[test]
    fn empty_config_is_the_default_when_the_type_allows() {
        assert_eq!(parse::<Limits>(b"").unwrap(), Limits::default());
        assert_eq!(parse::<Limits>(b"  \n").unwrap(), Limits::default());
        let e = parse::<Required>(b"").unwrap_err();
        assert_eq!(
            e.to_string(),
            "config: missing field `header` at line 1 column 2"
        );
    }

    #[test]
    fn errors_name_the_field_path() {
        let e = parse::<Limits>(
            br#"{"limits":[{"requests":1,"per":"second"},{"requests":2,"per":"hour"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.path(), "limits[1].per");
        assert!(
            e.to_string()
                .starts_with("config: limits[1].per: unknown variant `hour`, expected"),
            "{e}"
        );
        let e = parse::<Limits>(br#"{"nmae":"x"}"#).unwrap_err();
        assert_eq!(e.path(), "nmae");
        assert!(e.message().starts_with("unknown field `nmae`"), "{e}");
    }

    #[test]
    fn syntax_errors_and_trailing_text_have_no_path() {
        let e = parse::<Limits>(b"{").unwrap_err();
        assert_eq!(e.path(), "");
        assert!(
            e.to_string().starts_with("config: EOF while parsing"),
            "{e}"
        );
        let e = parse::<Limits>(b"{} x").unwrap_err();
        assert!(
            e.to_string().starts_with("config: trailing characters"),
            "{e}"
        );
    }
}
