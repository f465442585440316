//! The harness helpers the filter tests share: a configured host, and one request run
//! through every phase with what the filter did to it.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use weft_sdk::proxy_wasm::types::{Action, LogLevel};
use weft_sdk::testing::{Host, Http};

pub const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

pub fn host(config: Value) -> Host {
    let mut host = Host::new(crate::register);
    assert!(
        host.configure(config.to_string()),
        "config refused: {config}"
    );
    host
}

/// One request through every phase.
#[derive(Clone)]
pub struct Exchange<'a> {
    pub path: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    /// `route_name` and `cluster_name`, as the proxy sets them once a route matched.
    pub route: Option<&'a str>,
    pub cluster: Option<&'a str>,
    /// `None`: the client went away before a response.
    pub status: Option<u16>,
    pub request_body: &'a [u8],
    pub response_body: &'a [u8],
    pub took: Duration,
}

impl Default for Exchange<'_> {
    fn default() -> Self {
        Exchange {
            path: "/",
            headers: Vec::new(),
            route: Some("api"),
            cluster: Some("backend"),
            status: Some(200),
            request_body: b"",
            response_body: b"",
            took: Duration::from_millis(3),
        }
    }
}

/// What the filter did to one request.
pub struct Seen {
    pub upstream: Vec<(String, String)>,
    pub response: Vec<(String, String)>,
    pub log: Option<Value>,
    pub line: Option<String>,
}

impl Seen {
    pub fn upstream(&self, name: &str) -> Option<&str> {
        self.upstream
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn response(&self, name: &str) -> Option<&str> {
        self.response
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn log(&self) -> &Value {
        self.log.as_ref().expect("an access-log line")
    }
}

pub fn start_nanos(host: &Host) -> i64 {
    host.now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

pub fn exchange(host: &mut Host, x: Exchange<'_>) -> Seen {
    let mut http: Http = host.http();
    http.set_property("request.time", start_nanos(host).to_le_bytes());
    let mut headers = vec![
        (":method", "GET"),
        (":path", x.path),
        (":authority", "svc.test"),
        (":scheme", "http"),
    ];
    headers.extend(x.headers.iter().copied());
    let has_body = !x.request_body.is_empty();
    assert_eq!(http.request_headers(&headers, !has_body), Action::Continue);
    if has_body {
        assert_eq!(http.request_body(x.request_body, true), Action::Continue);
    }
    if let Some(route) = x.route {
        http.set_property("route_name", route);
    }
    if let Some(cluster) = x.cluster {
        http.set_property("cluster_name", cluster);
        http.set_property("upstream.address", "127.0.0.1:9000");
    }
    let upstream = http.request_header_map();
    if let Some(status) = x.status {
        let status = status.to_string();
        let eos = x.response_body.is_empty();
        assert_eq!(
            http.response_headers(&[(":status", &status)], eos),
            Action::Continue
        );
        if !eos {
            assert_eq!(http.response_body(x.response_body, true), Action::Continue);
        }
    }
    let response = http.response_header_map();
    host.advance(x.took);
    let id = http.id();
    http.finish();
    let line = host
        .logs()
        .into_iter()
        .filter(|l| l.context_id == id && l.level == LogLevel::Info)
        .map(|l| l.message)
        .next_back();
    let log = line
        .as_deref()
        .map(|l| serde_json::from_str(l).expect("the access log is JSON"));
    Seen {
        upstream,
        response,
        log,
        line,
    }
}

/// A 200 on route `api` with these extra request headers.
pub fn with_headers(host: &mut Host, headers: &[(&str, &str)]) -> Seen {
    let x = Exchange {
        headers: headers.to_vec(),
        ..Exchange::default()
    };
    exchange(host, x)
}

pub fn get(host: &mut Host, path: &str, status: u16) -> Seen {
    exchange(
        host,
        Exchange {
            path,
            status: Some(status),
            ..Exchange::default()
        },
    )
}
