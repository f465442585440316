//! Config parsing and the checks serde cannot make.

use serde_json::json;

use crate::config::{Config, Field, HeaderValue, StatusDetail};

fn parse(value: serde_json::Value) -> Result<Config, String> {
    let config: Config =
        weft_sdk::config::parse(value.to_string().as_bytes()).map_err(|e| e.to_string())?;
    config.validate()?;
    Ok(config)
}

#[test]
fn an_empty_config_turns_everything_on() {
    let config: Config = weft_sdk::config::parse(b"").unwrap();
    assert!(config.validate().is_ok());
    assert!(config.metrics.enabled && config.access_log.enabled && config.trace.enabled);
    assert!(config.request_id.generate);
    assert_eq!(config.metrics.prefix, "telemetry");
    assert_eq!(config.metrics.status, StatusDetail::Class);
    assert_eq!(config.trace.sampling_rate, 1.0);
    assert_eq!(config.access_log.fields, Field::DEFAULT);
}

#[test]
fn a_full_config_parses() {
    let config = parse(json!({
        "metrics": {"prefix": "edge.http", "status": "code"},
        "access_log": {"fields": ["method", "status", "trace_id"], "sampled_only": true},
        "trace": {"sampling_rate": 0.1},
        "request_id": {"generate": false},
        "response_headers": {"x-trace-id": "trace_id", "x-request-id": "request_id"}
    }))
    .unwrap();
    assert_eq!(config.metrics.status, StatusDetail::Code);
    assert_eq!(
        config.access_log.fields,
        [Field::Method, Field::Status, Field::TraceId]
    );
    assert_eq!(config.response_headers["x-trace-id"], HeaderValue::TraceId);
    assert!(!config.request_id.generate);
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (
            json!({"trace": {"sampling_rate": 1.5}}),
            "config: trace.sampling_rate: must be between 0 and 1",
        ),
        (
            json!({"trace": {"sampling_rate": -0.1}}),
            "config: trace.sampling_rate:",
        ),
        (
            json!({"metrics": {"prefix": "a-b"}}),
            "config: metrics.prefix:",
        ),
        (
            json!({"metrics": {"prefix": "a..b"}}),
            "config: metrics.prefix:",
        ),
        (
            json!({"metrics": {"status": "family"}}),
            "config: metrics.status: unknown variant `family`",
        ),
        (
            json!({"access_log": {"fields": ["method", "colour"]}}),
            "config: access_log.fields[1]: unknown variant `colour`",
        ),
        (
            json!({"access_log": {"fields": ["method", "method"]}}),
            "config: access_log.fields[1]: `method` is listed twice",
        ),
        (
            json!({"response_headers": {"x trace": "trace_id"}}),
            "config: response_headers.x trace: not a header name",
        ),
        (
            json!({"response_headers": {"X-Trace": "trace_id"}}),
            "config: response_headers.X-Trace: write header names in lowercase",
        ),
        (
            json!({"response_headers": {"x-t": "colour"}}),
            "config: response_headers.x-t: unknown variant `colour`",
        ),
        (
            json!({"sampling_rate": 0.5}),
            "config: sampling_rate: unknown field",
        ),
    ];
    for (value, expected) in cases {
        let error = parse(value.clone()).unwrap_err();
        assert!(error.starts_with(expected), "{value}: {error}");
    }
}
