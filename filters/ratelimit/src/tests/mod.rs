//! Unit tests: the filter under the SDK's native harness (`filter.rs`, `shadow.rs`), the
//! CAS handling over the harness's shared data (`cas.rs`), refused configs (`config.rs`),
//! and the bucket math (`bucket.rs`).

mod bucket;
mod cas;
mod config;
mod filter;
mod shadow;

use weft_sdk::proxy_wasm::types::Action;
use weft_sdk::testing::{Host, Http, LocalReply};

/// A host with the filter configured with `config` (which must be accepted).
pub fn limiter(config: &str) -> Host {
    let mut host = Host::new(crate::register);
    host.set_property("plugin_name", "rl");
    assert!(host.configure(config), "config refused: {config}");
    host
}

/// What one request got.
#[derive(Debug)]
pub struct Seen {
    pub http: Http,
    pub refused: Option<LocalReply>,
}

impl Seen {
    pub fn status(&self) -> u32 {
        self.refused.as_ref().map_or(200, |r| r.status)
    }
    /// A header of the 429, or of the allowed response.
    pub fn header(&self, name: &str) -> Option<String> {
        match &self.refused {
            Some(r) => r.header(name),
            None => self.http.response_header(name),
        }
    }
}

/// A request from `client` (`source.address`) for `path` with extra headers, run through
/// the request and (when allowed) response header phases.
pub fn send(host: &mut Host, client: &str, path: &str, headers: &[(&str, &str)]) -> Seen {
    let mut http = host.http();
    http.set_property("source.address", client);
    let mut all = vec![
        (":method", "GET"),
        (":path", path),
        (":authority", "api.example"),
    ];
    all.extend_from_slice(headers);
    let action = http.request_headers(&all, true);
    let refused = http.local_reply();
    assert_eq!(
        action == Action::Pause,
        refused.is_some(),
        "pause exactly when refusing"
    );
    if refused.is_none() {
        assert_eq!(
            http.response_headers(&[(":status", "200")], false),
            Action::Continue
        );
    }
    Seen { http, refused }
}

/// The statuses of `n` requests.
pub fn statuses(
    host: &mut Host,
    n: usize,
    client: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Vec<u32> {
    (0..n)
        .map(|_| send(host, client, path, headers).status())
        .collect()
}
