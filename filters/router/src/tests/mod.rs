//! Unit tests: the filter under the SDK's native harness (`filter.rs`), and the pure
//! pieces (`pure.rs`).

mod config;
mod filter;
mod pure;

use weft_sdk::proxy_wasm::types::Action;
use weft_sdk::testing::{Host, Http};

/// A host with the router configured with `config` (which must be accepted).
pub fn router(config: &str) -> Host {
    let mut host = Host::new(crate::register);
    assert!(host.configure(config), "config refused: {config}");
    host
}

/// Runs the request-headers phase of a new request: `GET`-style `method path` with extra
/// headers; returns the context and the action.
pub fn request(
    host: &mut Host,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Http, Action) {
    let mut http = host.http();
    let mut all = vec![
        (":method", method),
        (":path", path),
        (":authority", "shop.example"),
        (":scheme", "http"),
    ];
    all.extend_from_slice(headers);
    let action = http.request_headers(&all, true);
    (http, action)
}

/// The cluster a request is sent to (`None`: no rule matched, weft's routes decide).
pub fn cluster_for(
    host: &mut Host,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<String> {
    let (http, action) = request(host, method, path, headers);
    assert_eq!(action, Action::Continue);
    let cluster = http.cluster();
    http.finish();
    cluster
}
