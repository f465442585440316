//! `grpc`: makes a unary gRPC callout for every request and holds the request until the
//! answer arrives. The message is raw bytes (no protobuf encoding).
//!
//! Plugin configuration (required; missing/empty config, invalid JSON, an unknown field or
//! a missing `cluster` makes `on_configure` return false and logs
//! `grpc filter: invalid plugin configuration: <reason>` at error level):
//!
//! ```json
//! {"cluster": "name", "method": "Say"} (method optional, default `Say`)
//! ```
//!
//! If the host creates an HTTP context although `on_configure` failed, the request gets
//! `send_http_response(500, [], Some(b"not configured\n"))` and Pause.
//!
//! `on_http_request_headers`: `dispatch_grpc_call(cluster, "test.Echo", "Say", [],
//! Some(b"hello"), 5 s)`; returns Pause. If the dispatch itself fails with `Err(status)`:
//! `send_http_response(500, [("x-dispatch-error", format!("{status:?}"))],
//! Some(b"grpc dispatch failed\n"))` and Pause.
//!
//! `on_grpc_call_response(token, status_code, response_size)`: adds request headers
//! `x-grpc-status` = `status_code` in decimal and `x-grpc-message` = the response bytes from
//! `get_grpc_call_response_body(0, response_size)` as UTF-8 (lossy; empty when
//! `response_size` is 0, in which case the buffer is not read); then `resume_http_request()`.
//!
//! Note for host authors, from the SDK's dispatcher (proxy-wasm 0.2.5): a host
//! `proxy_on_grpc_receive(ctx, token, size)` reaches this callback as
//! `(token, status_code = 0, size)`, and `proxy_on_grpc_close(ctx, token, status)` as
//! `(token, status, 0)`; whichever comes first consumes the token and the other one is
//! ignored. So a successful call gives `x-grpc-status: 0` plus the message, a failed one
//! gives the gRPC status code and an empty message.

use log::{error, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;
use std::rc::Rc;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(GrpcRoot { config: None }) });
}}

fn say() -> String {
    "Say".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    cluster: String,
    /// The method to call (default `Say`).
    #[serde(default = "say")]
    method: String,
}

struct GrpcRoot {
    config: Option<Rc<Config>>,
}

impl Context for GrpcRoot {}

impl RootContext for GrpcRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match serde_json::from_slice::<Config>(&bytes) {
            Ok(config) => {
                self.config = Some(Rc::new(config));
                true
            }
            Err(err) => {
                error!("grpc filter: invalid plugin configuration: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone();
        Some(Box::new(GrpcHttp { config }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct GrpcHttp {
    config: Option<Rc<Config>>,
}

impl Context for GrpcHttp {
    fn on_grpc_call_response(&mut self, _token_id: u32, status_code: u32, response_size: usize) {
        let message = if response_size == 0 {
            Vec::new()
        } else {
            self.get_grpc_call_response_body(0, response_size)
                .unwrap_or_default()
        };
        let message = String::from_utf8_lossy(&message).into_owned();
        self.add_http_request_header("x-grpc-status", &status_code.to_string());
        self.add_http_request_header("x-grpc-message", &message);
        self.resume_http_request();
    }
}

impl HttpContext for GrpcHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            // Only reachable if the host creates HTTP contexts after on_configure failed.
            self.send_http_response(500, vec![], Some(b"not configured\n"));
            return Action::Pause;
        };
        match self.dispatch_grpc_call(
            &config.cluster,
            "test.Echo",
            &config.method,
            vec![],
            Some(b"hello"),
            Duration::from_secs(5),
        ) {
            Ok(_token) => {}
            Err(status) => {
                warn!(
                    "grpc filter: dispatch to {} failed: {status:?}",
                    config.cluster
                );
                let status = format!("{status:?}");
                self.send_http_response(
                    500,
                    vec![("x-dispatch-error", &status)],
                    Some(b"grpc dispatch failed\n"),
                );
            }
        }
        Action::Pause
    }
}
