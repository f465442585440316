//! `headers`: header manipulation driven by plugin configuration, plus request facts
//! echoed back as headers so end-to-end tests can see what the filter saw.
//!
//! Plugin configuration (optional; absent or empty means "all defaults"; invalid JSON or an
//! unknown field makes `on_configure` return false and logs
//! `headers filter: invalid plugin configuration: <serde error>` at error level):
//!
//! ```json
//! {"add_request": {"name": "value"}, "replace_request": {"name": "value"},
//!  "remove_request": ["name"], "add_response": {"name": "value"},
//!  "remove_response": ["name"], "tag": "string"}
//! ```
//!
//! Maps are applied in ascending name order.
//!
//! `on_http_request_headers`:
//! 1. remembers the incoming `x-request-id` (as received, before any change below);
//! 2. for each `add_request` entry: `add_http_request_header(name, value)` (appends, keeps
//!    existing values);
//! 3. for each `replace_request` entry: `set_http_request_header(name, Some(value))`
//!    (pseudo-headers such as `:path` may be replaced too);
//! 4. for each `remove_request` name: `set_http_request_header(name, None)`;
//! 5. `x-wasm-request-header-count` = number of pairs returned by
//!    `get_http_request_headers()` at this point (after steps 2–4, before step 6; pseudo-headers
//!    and repeated names count, each pair once);
//! 6. sets `x-wasm-method`, `x-wasm-path`, `x-wasm-authority`, `x-wasm-scheme` to the values of
//!    `:method`, `:path`, `:authority`, `:scheme` as read after steps 2–4 (a pseudo-header the
//!    host does not provide leaves its `x-wasm-*` header unset);
//! 7. logs `headers filter: <method> <path>` at info level; returns Continue.
//!
//! `on_http_response_headers`:
//! 1. for each `add_response` entry: `add_http_response_header(name, value)`;
//! 2. for each `remove_response` name: `set_http_response_header(name, None)`;
//! 3. `x-wasm-status` = value of `:status` (unset if the host gives none);
//! 4. `x-wasm-tag` = config `tag` (only when configured);
//! 5. `x-wasm-saw-request-id` = the request's `x-request-id` from the request phase, or
//!    `none` if the request had none (or the request phase never ran);
//! 6. returns Continue.

use log::{error, info};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(HeadersRoot { config: Rc::new(Config::default()) })
    });
}}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    add_request: BTreeMap<String, String>,
    replace_request: BTreeMap<String, String>,
    remove_request: Vec<String>,
    add_response: BTreeMap<String, String>,
    remove_response: Vec<String>,
    tag: Option<String>,
}

struct HeadersRoot {
    config: Rc<Config>,
}

impl Context for HeadersRoot {}

impl RootContext for HeadersRoot {
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
                error!("headers filter: invalid plugin configuration: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HeadersHttp {
            config: Rc::clone(&self.config),
            request_id: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct HeadersHttp {
    config: Rc<Config>,
    request_id: Option<String>,
}

impl Context for HeadersHttp {}

impl HttpContext for HeadersHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.request_id = self.get_http_request_header("x-request-id");

        for (name, value) in &self.config.add_request {
            self.add_http_request_header(name, value);
        }
        for (name, value) in &self.config.replace_request {
            self.set_http_request_header(name, Some(value));
        }
        for name in &self.config.remove_request {
            self.set_http_request_header(name, None);
        }

        let count = self.get_http_request_headers().len();
        let method = self.get_http_request_header(":method");
        let path = self.get_http_request_header(":path");
        let authority = self.get_http_request_header(":authority");
        let scheme = self.get_http_request_header(":scheme");

        for (name, value) in [
            ("x-wasm-method", &method),
            ("x-wasm-path", &path),
            ("x-wasm-authority", &authority),
            ("x-wasm-scheme", &scheme),
        ] {
            if let Some(value) = value {
                self.set_http_request_header(name, Some(value));
            }
        }
        self.set_http_request_header("x-wasm-request-header-count", Some(&count.to_string()));

        info!(
            "headers filter: {} {}",
            method.as_deref().unwrap_or(""),
            path.as_deref().unwrap_or("")
        );
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in &self.config.add_response {
            self.add_http_response_header(name, value);
        }
        for name in &self.config.remove_response {
            self.set_http_response_header(name, None);
        }
        if let Some(status) = self.get_http_response_header(":status") {
            self.set_http_response_header("x-wasm-status", Some(&status));
        }
        if let Some(tag) = &self.config.tag {
            self.set_http_response_header("x-wasm-tag", Some(tag));
        }
        let saw = self.request_id.as_deref().unwrap_or("none");
        self.set_http_response_header("x-wasm-saw-request-id", Some(saw));
        Action::Continue
    }
}
