//! `http_call`: makes an HTTP callout for every request and holds the request until the
//! answer arrives.
//!
//! Plugin configuration (required; missing/empty config, invalid JSON, an unknown field or
//! a missing `cluster` makes `on_configure` return false and logs
//! `http_call filter: invalid plugin configuration: <reason>` at error level):
//!
//! ```json
//! {"cluster": "name", "path": "/auth"}
//! ```
//!
//! `path` defaults to `/auth`.
//!
//! If the host creates an HTTP context although `on_configure` failed, the request gets
//! `send_http_response(500, [], Some(b"not configured\n"))` and Pause.
//!
//! `on_http_request_headers`:
//! - normal mode: `dispatch_http_call(cluster, [(":method", "GET"), (":path", path),
//!   (":authority", "auth.test"), ("x-from", "wasm")], None, [], 5 s)`. On `Ok` returns
//!   Pause. On `Err(status)` logs it at warn level, calls
//!   `send_http_response(500, [], Some(b"dispatch failed\n"))` and returns Pause.
//! - if the request has an `x-call-missing-authority` header (any value): the same call
//!   WITHOUT the `:authority` header. On `Err(status)` (Envoy answers BadArgument) calls
//!   `send_http_response(400, [("x-dispatch-error", format!("{status:?}"))], None)` (e.g.
//!   `x-dispatch-error: BadArgument`) and returns Pause. If the host accepts the call anyway
//!   it continues as in normal mode.
//!
//! `on_http_call_response(token, num_headers, body_size, _)`:
//! - `num_headers == 0` (the callout failed: no connection, timeout, ...):
//!   `send_http_response(503, [], Some(b"call failed\n"))`; the request is not resumed;
//! - otherwise adds request headers `x-call-status` = the callout response's `:status`
//!   (`none` if absent) and `x-call-body` = its body from
//!   `get_http_call_response_body(0, body_size)` as UTF-8 (lossy), trimmed of surrounding
//!   whitespace, with any remaining control character replaced by a space; then
//!   `resume_http_request()`.

use log::{error, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;
use std::rc::Rc;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(HttpCallRoot { config: None }) });
}}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    cluster: String,
    #[serde(default = "default_path")]
    path: String,
}

fn default_path() -> String {
    "/auth".to_owned()
}

struct HttpCallRoot {
    config: Option<Rc<Config>>,
}

impl Context for HttpCallRoot {}

impl RootContext for HttpCallRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match serde_json::from_slice::<Config>(&bytes) {
            Ok(config) => {
                self.config = Some(Rc::new(config));
                true
            }
            Err(err) => {
                error!("http_call filter: invalid plugin configuration: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone();
        Some(Box::new(HttpCallHttp { config }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct HttpCallHttp {
    config: Option<Rc<Config>>,
}

impl Context for HttpCallHttp {
    fn on_http_call_response(
        &mut self,
        _token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if num_headers == 0 {
            self.send_http_response(503, vec![], Some(b"call failed\n"));
            return;
        }
        let status = self
            .get_http_call_response_headers()
            .into_iter()
            .find(|(name, _)| name == ":status")
            .map_or_else(|| "none".to_owned(), |(_, value)| value);
        let body = self
            .get_http_call_response_body(0, body_size)
            .unwrap_or_default();
        let body: String = String::from_utf8_lossy(&body)
            .trim()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        self.add_http_request_header("x-call-status", &status);
        self.add_http_request_header("x-call-body", &body);
        self.resume_http_request();
    }
}

impl HttpContext for HttpCallHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            // Only reachable if the host creates HTTP contexts after on_configure failed.
            self.send_http_response(500, vec![], Some(b"not configured\n"));
            return Action::Pause;
        };
        let missing_authority = self
            .get_http_request_header("x-call-missing-authority")
            .is_some();
        let mut headers = vec![(":method", "GET"), (":path", config.path.as_str())];
        if !missing_authority {
            headers.push((":authority", "auth.test"));
        }
        headers.push(("x-from", "wasm"));

        match self.dispatch_http_call(
            &config.cluster,
            headers,
            None,
            vec![],
            Duration::from_secs(5),
        ) {
            Ok(_token) => {}
            Err(status) if missing_authority => {
                let status = format!("{status:?}");
                self.send_http_response(400, vec![("x-dispatch-error", &status)], None);
            }
            Err(status) => {
                warn!(
                    "http_call filter: dispatch to {} failed: {status:?}",
                    config.cluster
                );
                self.send_http_response(500, vec![], Some(b"dispatch failed\n"));
            }
        }
        Action::Pause
    }
}
