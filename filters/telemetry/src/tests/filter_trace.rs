//! The filter on weft-sdk's native harness: `traceparent` continued, started and
//! replaced, sampling, response headers, and `x-request-id`.

use crate::trace::TraceParent;

use super::ids::is_uuid_v4;
use serde_json::json;

use super::support::*;

#[test]
fn an_incoming_traceparent_continues_with_a_new_span_id() {
    let mut host =
        host(json!({"response_headers": {"x-trace-id": "trace_id", "x-span": "traceparent"}}));
    let headers = vec![
        ("traceparent", INCOMING),
        ("tracestate", "vendor=abc,other=1"),
    ];
    let seen = exchange(
        &mut host,
        Exchange {
            headers,
            ..Exchange::default()
        },
    );
    let sent = seen.upstream("traceparent").unwrap();
    let parsed = TraceParent::parse(sent).unwrap();
    assert!(sent.starts_with(&format!("00-{TRACE_ID}-")), "{sent}");
    assert_ne!(&sent[36..52], "00f067aa0ba902b7");
    assert!(sent.ends_with("-01"));
    assert_ne!(parsed.parent_id, [0; 8]);
    assert_eq!(seen.upstream("tracestate"), Some("vendor=abc,other=1"));
    assert_eq!(seen.response("x-trace-id"), Some(TRACE_ID));
    assert_eq!(seen.response("x-span"), Some(sent));
    // Not sampled upstream stays not sampled, even at sampling rate 1.
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    let seen = with_headers(&mut host, &[("traceparent", unsampled)]);
    assert!(seen.upstream("traceparent").unwrap().ends_with("-00"));
}

#[test]
fn without_a_traceparent_a_new_trace_starts() {
    let mut host =
        host(json!({"access_log": {"fields": ["trace_id", "span_id", "parent_span_id"]}}));
    let a = get(&mut host, "/", 200);
    let b = get(&mut host, "/", 200);
    for seen in [&a, &b] {
        let sent = seen.upstream("traceparent").unwrap();
        let parsed = TraceParent::parse(sent).unwrap_or_else(|e| panic!("{sent}: {e:?}"));
        assert!(sent.starts_with("00-") && sent.ends_with("-01"), "{sent}");
        assert_eq!(seen.log()["trace_id"].as_str(), Some(&sent[3..35]));
        assert_eq!(seen.log()["span_id"].as_str(), Some(&sent[36..52]));
        assert!(seen.log()["parent_span_id"].is_null());
        assert_eq!(parsed.flags, 1);
    }
    assert_ne!(a.upstream("traceparent"), b.upstream("traceparent"));
    assert_ne!(a.log()["trace_id"], b.log()["trace_id"]);
}

#[test]
fn an_invalid_traceparent_is_replaced_by_a_new_trace() {
    let mut host = host(json!({}));
    for bad in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    ] {
        let seen = with_headers(&mut host, &[("traceparent", bad)]);
        let sent = seen.upstream("traceparent").unwrap();
        assert!(TraceParent::parse(sent).is_ok(), "{bad} → {sent}");
        assert!(
            !sent.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
            "{bad} → {sent}"
        );
        assert!(!sent.contains("00f067aa0ba902b7"), "{bad} → {sent}");
    }
    assert_eq!(host.metric("telemetry.trace.invalid"), Some(5));
}

#[test]
fn sampling_rate_zero_marks_new_traces_unsampled_and_keeps_incoming_flags() {
    let mut host =
        host(json!({"trace": {"sampling_rate": 0.0}, "access_log": {"fields": ["sampled"]}}));
    for _ in 0..20 {
        let seen = get(&mut host, "/", 200);
        assert!(seen.upstream("traceparent").unwrap().ends_with("-00"));
        assert_eq!(seen.log()["sampled"], false);
    }
    let seen = with_headers(&mut host, &[("traceparent", INCOMING)]);
    assert!(seen.upstream("traceparent").unwrap().ends_with("-01"));
    assert_eq!(seen.log()["sampled"], true);
}

#[test]
fn sampling_rate_one_marks_every_new_trace_sampled() {
    let mut host = host(json!({"trace": {"sampling_rate": 1.0}}));
    for _ in 0..20 {
        assert!(
            get(&mut host, "/", 200)
                .upstream("traceparent")
                .unwrap()
                .ends_with("-01")
        );
    }
}

#[test]
fn with_tracing_off_traceparent_is_left_alone() {
    let mut host =
        host(json!({"trace": {"enabled": false}, "response_headers": {"x-trace-id": "trace_id"}}));
    let seen = with_headers(&mut host, &[("traceparent", "garbage")]);
    assert_eq!(seen.upstream("traceparent"), Some("garbage"));
    assert_eq!(seen.response("x-trace-id"), None);
    assert!(get(&mut host, "/", 200).upstream("traceparent").is_none());
}

// === x-request-id ===

#[test]
fn a_request_id_is_generated_when_absent_and_kept_when_present() {
    let mut host = host(json!({"response_headers": {"x-request-id": "request_id"}}));
    let a = get(&mut host, "/", 200);
    let b = get(&mut host, "/", 200);
    let id = a.upstream("x-request-id").unwrap();
    assert!(is_uuid_v4(id), "{id}");
    assert_ne!(a.upstream("x-request-id"), b.upstream("x-request-id"));
    assert_eq!(a.response("x-request-id"), Some(id));
    assert_eq!(a.log()["request_id"].as_str(), Some(id));

    let kept = with_headers(&mut host, &[("x-request-id", "from-the-client")]);
    assert_eq!(kept.upstream("x-request-id"), Some("from-the-client"));
    assert_eq!(kept.response("x-request-id"), Some("from-the-client"));
    assert_eq!(host.metric("telemetry.request_id.generated"), Some(2));
}

#[test]
fn request_id_generation_can_be_turned_off() {
    let mut host = host(json!({"request_id": {"generate": false}}));
    let seen = get(&mut host, "/", 200);
    assert_eq!(seen.upstream("x-request-id"), None);
    assert!(seen.log()["request_id"].is_null());
}
