//! The filter on weft-sdk's native harness: the access-log line, its fields and when it
//! is written; and config errors.

use serde_json::Value;
use weft_sdk::testing::Host;

use crate::config::Field;

use serde_json::json;

use super::support::*;

#[test]
fn the_access_log_line_has_the_configured_fields() {
    let fields = [
        "method",
        "path",
        "query",
        "authority",
        "scheme",
        "protocol",
        "status",
        "bytes_in",
        "bytes_out",
        "route",
        "cluster",
        "upstream",
        "request_id",
        "trace_id",
        "span_id",
        "parent_span_id",
        "sampled",
        "user_agent",
        "referer",
        "source_address",
        "listener",
        "start_time",
    ];
    let mut host = host(json!({"access_log": {"fields": fields}}));
    host.set_property("listener_name", "main");
    let seen = {
        let mut http = host.http();
        http.set_property("request.time", start_nanos(&host).to_le_bytes());
        http.set_property("request.protocol", "HTTP/1.1");
        http.set_property("source.address", "10.0.0.7:51234");
        http.set_property("route_name", "api");
        http.set_property("cluster_name", "backend");
        http.set_property("upstream.address", "127.0.0.1:9000");
        let headers = [
            (":method", "POST"),
            (":path", "/v1/items?page=2"),
            (":authority", "svc.test"),
            (":scheme", "http"),
            ("user-agent", "curl/8.5"),
            ("x-request-id", "req-1"),
            ("traceparent", INCOMING),
        ];
        http.request_headers(&headers, false);
        http.request_body(b"0123456789", false);
        http.request_body(b"abc", true);
        http.response_headers(&[(":status", "201")], false);
        http.response_body(b"hello ", false);
        http.response_body(b"world", true);
        let span = http.request_header("traceparent").unwrap();
        http.finish();
        let line = host.logs().last().unwrap().message.clone();
        (span, line)
    };
    let (traceparent, line) = seen;
    let log: Value = serde_json::from_str(&line).unwrap();
    let keys: Vec<&str> = log
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), fields.len());
    // In the configured order.
    assert!(
        line.starts_with(r#"{"method":"POST","path":"/v1/items","query":"page=2","#),
        "{line}"
    );
    assert!(
        line.ends_with(r#""listener":"main","start_time":"2023-11-14T22:13:20.000Z"}"#),
        "{line}"
    );
    assert_eq!(log["authority"], "svc.test");
    assert_eq!(log["scheme"], "http");
    assert_eq!(log["protocol"], "HTTP/1.1");
    assert_eq!(log["status"], 201);
    assert_eq!(log["bytes_in"], 13);
    assert_eq!(log["bytes_out"], 11);
    assert_eq!(log["route"], "api");
    assert_eq!(log["cluster"], "backend");
    assert_eq!(log["upstream"], "127.0.0.1:9000");
    assert_eq!(log["request_id"], "req-1");
    assert_eq!(log["trace_id"], TRACE_ID);
    assert_eq!(log["span_id"].as_str().unwrap(), &traceparent[36..52]);
    assert_eq!(log["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(log["sampled"], true);
    assert_eq!(log["user_agent"], "curl/8.5");
    assert!(log["referer"].is_null());
    assert_eq!(log["source_address"], "10.0.0.7:51234");
}

#[test]
fn the_default_line_has_the_default_fields() {
    let mut host = host(json!({}));
    let seen = get(&mut host, "/x", 200);
    let line = seen.line.as_deref().unwrap();
    let expected: Vec<&str> = Field::DEFAULT.iter().map(|f| f.key()).collect();
    assert_eq!(seen.log().as_object().unwrap().len(), expected.len());
    let at: Vec<usize> = expected
        .iter()
        .map(|k| line.find(&format!("\"{k}\":")).expect(k))
        .collect();
    assert!(at.is_sorted(), "{line}");
    assert_eq!(seen.log()["path"], "/x");
    assert_eq!(
        seen.log()["request_id"].as_str(),
        seen.upstream("x-request-id")
    );
}

#[test]
fn the_access_log_can_be_limited_to_sampled_traces_or_turned_off() {
    let mut host =
        host(json!({"trace": {"sampling_rate": 0.0}, "access_log": {"sampled_only": true}}));
    assert!(get(&mut host, "/", 200).log.is_none());
    assert!(
        with_headers(&mut host, &[("traceparent", INCOMING)])
            .log
            .is_some()
    );
    drop(host);
    let mut host = self::host(json!({"access_log": {"enabled": false}}));
    assert!(get(&mut host, "/", 200).log.is_none());
    assert!(host.logs().is_empty());
    assert_eq!(
        host.metric("telemetry.route.api.cluster.backend.rq_2xx"),
        Some(1)
    );
}

#[test]
fn a_bad_config_is_refused_with_the_field_named() {
    let mut host = Host::new(crate::register);
    assert!(!host.configure(r#"{"trace": {"sampling_rate": 2}}"#));
    assert!(
        host.logged("config: trace.sampling_rate: must be between 0 and 1, got 2"),
        "{:?}",
        host.logs()
    );
    assert!(!host.configure(r#"{"access_log": {"fields": ["nope"]}}"#));
    assert!(
        host.logged("config: access_log.fields[0]: unknown variant `nope`"),
        "{:?}",
        host.logs()
    );
    assert!(host.configure("{}"));
}
