//! Local responses: answer the client from the filter instead of forwarding the request.
//!
//! ```ignore
//! return LocalResponse::new(429).header("retry-after", "3").body("slow down\n").send();
//! ```
//!
//! `send` returns [`Action::Pause`], what the phase must return after a local response.
//! On Weft the remaining request filters are skipped and the response passes the
//! response phases of the filters that already ran, as in Envoy.

use proxy_wasm::hostcalls;
use proxy_wasm::types::Action;

/// A response the filter sends itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    status: u32,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl LocalResponse {
    /// A response with this HTTP status, no headers and no body.
    pub fn new(status: u32) -> LocalResponse {
        LocalResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (names are sent lowercase).
    pub fn header(mut self, name: &str, value: &str) -> LocalResponse {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> LocalResponse {
        self.body = body.into();
        self
    }

    /// A JSON body and `content-type: application/json`.
    pub fn json(self, value: &serde_json::Value) -> LocalResponse {
        self.header("content-type", "application/json")
            .body(value.to_string())
    }

    /// Sends it and returns [`Action::Pause`] for the phase to return.
    pub fn send(self) -> Action {
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let body = (!self.body.is_empty()).then_some(self.body.as_slice());
        // The SDK panics itself on any status but Ok.
        let _ = hostcalls::send_http_response(self.status, headers, body);
        Action::Pause
    }
}
