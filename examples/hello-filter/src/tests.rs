//! The filter under the SDK's native harness: `cargo test -p hello-filter`.

use weft_sdk::proxy_wasm::types::{Action, LogLevel};
use weft_sdk::testing::Host;

use super::register;

fn request(http: &mut weft_sdk::testing::Http) -> Action {
    http.request_headers(
        &[
            (":method", "GET"),
            (":path", "/"),
            (":authority", "example.com"),
        ],
        true,
    )
}

#[test]
fn adds_the_configured_header_to_responses_only() {
    let mut host = Host::new(register);
    assert!(host.configure(r#"{"header": "X-Greeting", "value": "hi"}"#));
    let mut http = host.http();
    assert_eq!(request(&mut http), Action::Continue);
    assert_eq!(http.request_header("x-greeting"), None);
    assert_eq!(
        http.response_headers(&[(":status", "200"), ("x-greeting", "old")], true),
        Action::Continue
    );
    assert_eq!(http.response_header("x-greeting").as_deref(), Some("hi"));
    assert_eq!(host.metric("hello_filter_responses"), Some(1));
}

#[test]
fn on_request_adds_it_upstream_too() {
    let mut host = Host::new(register);
    assert!(host.configure(r#"{"on_request": true}"#));
    let mut http = host.http();
    request(&mut http);
    assert_eq!(
        http.request_header("x-hello").as_deref(),
        Some("hello from weft")
    );
}

#[test]
fn an_empty_config_uses_the_defaults() {
    let mut host = Host::new(register);
    assert!(host.configure(""));
    let mut http = host.http();
    http.response_headers(&[(":status", "204")], true);
    assert_eq!(
        http.response_header("x-hello").as_deref(),
        Some("hello from weft")
    );
}

#[test]
fn bad_configs_are_refused_with_the_field_named() {
    let mut host = Host::new(register);
    assert!(!host.configure(r#"{"header": "x-a", "valeu": "typo"}"#));
    assert!(host.logged("config: valeu: unknown field `valeu`"));
    assert!(!host.configure(r#"{"header": "not a name"}"#));
    assert!(host.logged(r#"config: header: "not a name" is not a header name"#));
    assert!(host.logs().iter().all(|l| l.level == LogLevel::Error));
}
