//! `properties`: reads host properties named in the configuration and reports them as
//! request headers.
//!
//! Plugin configuration (optional; absent or empty means no properties; invalid JSON or an
//! unknown field makes `on_configure` return false and logs
//! `properties filter: invalid plugin configuration: <serde error>` at error level):
//!
//! ```json
//! {"properties": [["request", "path"], ["source", "address"]]}
//! ```
//!
//! `on_http_request_headers`: for each path, in config order, calls `get_property(path)` and
//! sets request header `x-prop-<segments joined by '.'>` (e.g. `x-prop-request.path`) to:
//! - `missing` if the SDK returns `None`: status NotFound, or status Ok with a null data
//!   pointer (so a host that answers an empty value with a null pointer gets `missing`; one
//!   that allocates it through `malloc`/`proxy_on_memory_allocate`, as Envoy does, gets
//!   `hex:`);
//! - the value itself if it is non-empty and every byte is printable ASCII (0x20..=0x7E);
//! - otherwise `hex:<lowercase hex of the bytes>` (so an empty value is `hex:` and an 8-byte
//!   little-endian integer such as Envoy's `source.port` is `hex:` + 16 hex digits);
//! - `error:<Status>` (e.g. `error:SerializationFailure`, `error:InternalFailure`) if
//!   `proxy_get_property` fails with a status the SDK reports as an error. (Any status other
//!   than Ok, NotFound, SerializationFailure and InternalFailure makes the SDK panic.)
//!
//! Returns Continue. `on_log` does nothing.

use log::error;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;
use std::fmt::Write as _;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(PropertiesRoot { config: Rc::new(Config::default()) })
    });
}}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    properties: Vec<Vec<String>>,
}

struct PropertiesRoot {
    config: Rc<Config>,
}

impl Context for PropertiesRoot {}

impl RootContext for PropertiesRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            self.config = Rc::new(Config::default());
            return true;
        }
        match serde_json::from_slice::<Config>(&bytes) {
            Ok(config) => {
                self.config = Rc::new(config);
                true
            }
            Err(err) => {
                error!("properties filter: invalid plugin configuration: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(PropertiesHttp {
            config: Rc::clone(&self.config),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct PropertiesHttp {
    config: Rc<Config>,
}

impl Context for PropertiesHttp {}

impl HttpContext for PropertiesHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for path in &self.config.properties {
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            let name = format!("x-prop-{}", segments.join("."));
            let value = match hostcalls::get_property(segments) {
                Ok(value) => render(value.as_deref()),
                Err(status) => format!("error:{status:?}"),
            };
            self.set_http_request_header(&name, Some(&value));
        }
        Action::Continue
    }

    fn on_log(&mut self) {}
}

fn render(value: Option<&[u8]>) -> String {
    match value {
        None => "missing".to_owned(),
        Some(bytes) if !bytes.is_empty() && bytes.iter().all(|b| (0x20..=0x7e).contains(b)) => {
            // Printable ASCII is valid UTF-8.
            String::from_utf8_lossy(bytes).into_owned()
        }
        Some(bytes) => {
            let mut out = String::with_capacity(4 + bytes.len() * 2);
            out.push_str("hex:");
            for b in bytes {
                let _ = write!(out, "{b:02x}");
            }
            out
        }
    }
}
