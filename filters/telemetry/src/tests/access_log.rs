//! The access-log line: fields in order, JSON escaping, nulls, times.

use crate::access_log::{Record, rfc3339_millis};
use crate::config::Field;
use crate::trace::Span;

fn time(nanos: u64) -> String {
    let mut out = String::new();
    rfc3339_millis(nanos, &mut out);
    out
}

#[test]
fn times_are_rfc3339_utc_with_milliseconds() {
    assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(time(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123Z");
    // A leap day, and the last day of a leap year.
    assert_eq!(
        time(951_782_400 * 1_000_000_000),
        "2000-02-29T00:00:00.000Z"
    );
    assert_eq!(
        time(1_609_372_800 * 1_000_000_000 + 86_399_999_000_000),
        "2020-12-31T23:59:59.999Z"
    );
    assert_eq!(
        time(4_107_542_400 * 1_000_000_000),
        "2100-03-01T00:00:00.000Z"
    );
}

#[test]
fn the_line_has_the_fields_in_order_as_json() {
    let record = Record {
        start_nanos: Some(1_700_000_000_000_000_000),
        duration_nanos: Some(12_345_678),
        method: Some("GET".into()),
        path: Some("/a/b?x=1&y=\"2\"".into()),
        status: Some(201),
        bytes_out: 17,
        route: Some("api".into()),
        user_agent: Some("curl/8\n\u{1}é".into()),
        span: Some(Span {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            parent_id: None,
            flags: 1,
        }),
        ..Record::default()
    };
    let fields = [
        Field::Status,
        Field::Method,
        Field::Path,
        Field::Query,
        Field::DurationMs,
        Field::StartTime,
        Field::BytesOut,
        Field::Route,
        Field::Cluster,
        Field::UserAgent,
        Field::TraceId,
        Field::ParentSpanId,
        Field::Sampled,
    ];
    let line = record.to_json(&fields);
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    let keys: Vec<&str> = line
        .trim_matches(|c| c == '{' || c == '}')
        .split(",\"")
        .map(|kv| kv.trim_start_matches('"').split('"').next().unwrap())
        .collect();
    assert_eq!(keys, fields.map(Field::key));
    assert_eq!(value["status"], 201);
    assert_eq!(value["method"], "GET");
    assert_eq!(value["path"], "/a/b");
    assert_eq!(value["query"], "x=1&y=\"2\"");
    assert_eq!(value["duration_ms"].as_f64(), Some(12.345));
    assert_eq!(value["start_time"], "2023-11-14T22:13:20.000Z");
    assert_eq!(value["bytes_out"], 17);
    assert_eq!(value["route"], "api");
    assert!(value["cluster"].is_null());
    assert_eq!(value["user_agent"], "curl/8\n\u{1}é");
    assert_eq!(value["trace_id"], "ab".repeat(16));
    assert!(value["parent_span_id"].is_null());
    assert_eq!(value["sampled"], true);
}

#[test]
fn an_empty_record_is_nulls_and_zeros() {
    let line = Record::default().to_json(&[
        Field::Status,
        Field::BytesIn,
        Field::Sampled,
        Field::StartTime,
    ]);
    assert_eq!(
        line,
        r#"{"status":null,"bytes_in":0,"sampled":null,"start_time":null}"#
    );
    assert_eq!(Record::default().to_json(&[]), "{}");
}
