//! `grpc_stream`: a gRPC stream from an HTTP context. Config `{"cluster": "name"}`.
//!
//! - `on_http_request_headers`: `open_grpc_stream(cluster, "test.Echo", "Chat", [])`, then
//!   sends messages `a` and `b` (the second with end of stream) and returns Pause; when the
//!   request header `x-cancel` is present it cancels the stream right away and continues
//!   (no callback may follow). A failure to open answers 500 `stream failed\n`.
//! - `on_grpc_stream_initial_metadata`: counts the calls.
//! - `on_grpc_stream_message`: appends the message (UTF-8) to a list.
//! - `on_grpc_stream_trailing_metadata`: counts the calls.
//! - `on_grpc_stream_close(status)`: sets request headers `x-stream-messages` (the
//!   messages joined with `,`), `x-stream-status`, `x-stream-initial` and
//!   `x-stream-trailing` (the counts), then resumes the request.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(StreamRoot { cluster: String::new() }) });
}}

#[derive(Deserialize)]
struct Config {
    cluster: String,
}

struct StreamRoot {
    cluster: String,
}

impl Context for StreamRoot {}

impl RootContext for StreamRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        match self.get_plugin_configuration().map(|b| serde_json::from_slice::<Config>(&b)) {
            Some(Ok(config)) => {
                self.cluster = config.cluster;
                true
            }
            _ => false,
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(StreamHttp {
            cluster: self.cluster.clone(),
            messages: Vec::new(),
            initial: 0,
            trailing: 0,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct StreamHttp {
    cluster: String,
    messages: Vec<String>,
    initial: u32,
    trailing: u32,
}

impl Context for StreamHttp {
    fn on_grpc_stream_initial_metadata(&mut self, _token_id: u32, _num_elements: u32) {
        self.initial += 1;
    }

    fn on_grpc_stream_message(&mut self, _token_id: u32, message_size: usize) {
        let message = self.get_grpc_stream_message(0, message_size).unwrap_or_default();
        self.messages.push(String::from_utf8_lossy(&message).into_owned());
    }

    fn on_grpc_stream_trailing_metadata(&mut self, _token_id: u32, _num_elements: u32) {
        self.trailing += 1;
    }

    fn on_grpc_stream_close(&mut self, _token_id: u32, status_code: u32) {
        self.set_http_request_header("x-stream-messages", Some(&self.messages.join(",")));
        self.set_http_request_header("x-stream-status", Some(&status_code.to_string()));
        self.set_http_request_header("x-stream-initial", Some(&self.initial.to_string()));
        self.set_http_request_header("x-stream-trailing", Some(&self.trailing.to_string()));
        self.resume_http_request();
    }
}

impl HttpContext for StreamHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let token = match self.open_grpc_stream(&self.cluster, "test.Echo", "Chat", vec![]) {
            Ok(token) => token,
            Err(_) => {
                self.send_http_response(500, vec![], Some(b"stream failed\n"));
                return Action::Pause;
            }
        };
        if self.get_http_request_header("x-cancel").is_some() {
            self.cancel_grpc_stream(token);
            self.set_http_request_header("x-stream-cancelled", Some("1"));
            return Action::Continue;
        }
        self.send_grpc_stream_message(token, Some(b"a"), false);
        self.send_grpc_stream_message(token, Some(b"b"), true);
        Action::Pause
    }
}
