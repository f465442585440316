//! The filter on weft-sdk's native harness: counters per route, cluster and status, the
//! latency histogram, the trace and request-id counters.

use std::time::Duration;

use weft_sdk::proxy_wasm::types::MetricType;

use serde_json::json;

use super::support::*;

#[test]
fn requests_are_counted_per_route_cluster_and_status_class() {
    let mut host = host(json!({}));
    for _ in 0..3 {
        get(&mut host, "/ok", 200);
    }
    get(&mut host, "/created", 201);
    get(&mut host, "/missing", 404);
    get(&mut host, "/missing", 404);
    let other = Exchange {
        route: Some("static-v2"),
        cluster: Some("files.eu"),
        status: Some(503),
        ..Exchange::default()
    };
    exchange(&mut host, other);

    assert_eq!(
        host.metric("telemetry.route.api.cluster.backend.rq_2xx"),
        Some(4)
    );
    assert_eq!(
        host.metric("telemetry.route.api.cluster.backend.rq_4xx"),
        Some(2)
    );
    assert_eq!(
        host.metric("telemetry.route.api.cluster.backend.rq_5xx"),
        None
    );
    assert_eq!(
        host.metric("telemetry.route.static_v2.cluster.files_eu.rq_5xx"),
        Some(1)
    );
    let latency = host
        .histogram("telemetry.route.api.cluster.backend.rq_time_ms")
        .unwrap();
    assert_eq!(latency, vec![3; 6]);
    assert_eq!(
        host.histogram("telemetry.route.static_v2.cluster.files_eu.rq_time_ms"),
        Some(vec![3])
    );
    // Only what was seen is defined (besides the fixed trace and request-id counters).
    let defined: Vec<String> = host
        .metrics()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains(".route."))
        .collect();
    assert_eq!(defined.len(), 5, "{defined:?}");
}

#[test]
fn with_status_code_each_code_has_its_counter() {
    let mut host = host(json!({"metrics": {"status": "code", "prefix": "edge.http"}}));
    get(&mut host, "/", 200);
    get(&mut host, "/", 204);
    get(&mut host, "/", 204);
    get(&mut host, "/", 429);
    assert_eq!(
        host.metric("edge.http.route.api.cluster.backend.rq_200"),
        Some(1)
    );
    assert_eq!(
        host.metric("edge.http.route.api.cluster.backend.rq_204"),
        Some(2)
    );
    assert_eq!(
        host.metric("edge.http.route.api.cluster.backend.rq_429"),
        Some(1)
    );
    assert_eq!(
        host.metric("edge.http.route.api.cluster.backend.rq_2xx"),
        None
    );
}

#[test]
fn requests_without_route_or_response_count_under_none() {
    let mut host = host(json!({}));
    // No route matched: the proxy answered 404 itself.
    exchange(
        &mut host,
        Exchange {
            route: None,
            cluster: None,
            status: Some(404),
            ..Exchange::default()
        },
    );
    // The client went away before any response.
    exchange(
        &mut host,
        Exchange {
            status: None,
            ..Exchange::default()
        },
    );
    assert_eq!(
        host.metric("telemetry.route.none.cluster.none.rq_4xx"),
        Some(1)
    );
    assert_eq!(
        host.metric("telemetry.route.api.cluster.backend.rq_none"),
        Some(1)
    );
}

#[test]
fn the_final_status_is_the_one_the_proxy_reports() {
    let mut host = host(json!({}));
    let mut http = host.http();
    http.request_headers(&[(":method", "GET"), (":path", "/")], true);
    http.response_headers(&[(":status", "200")], true);
    // A filter after this one answered 502 instead.
    http.set_property("response.code", 502i64.to_le_bytes());
    http.finish();
    assert_eq!(
        host.metric("telemetry.route.none.cluster.none.rq_5xx"),
        Some(1)
    );
    assert_eq!(
        host.metric("telemetry.route.none.cluster.none.rq_2xx"),
        None
    );
}

#[test]
fn latency_runs_from_request_time_to_the_end_in_whole_milliseconds_rounded_up() {
    let mut host = host(json!({"access_log": {"fields": ["duration_ms"]}}));
    let slow = exchange(
        &mut host,
        Exchange {
            took: Duration::from_micros(12_300),
            ..Exchange::default()
        },
    );
    let fast = exchange(
        &mut host,
        Exchange {
            took: Duration::from_micros(400),
            ..Exchange::default()
        },
    );
    let exact = exchange(
        &mut host,
        Exchange {
            took: Duration::from_millis(8),
            ..Exchange::default()
        },
    );
    assert_eq!(
        host.histogram("telemetry.route.api.cluster.backend.rq_time_ms"),
        Some(vec![13, 1, 8])
    );
    assert_eq!(slow.log()["duration_ms"].as_f64(), Some(12.3));
    assert_eq!(fast.log()["duration_ms"].as_f64(), Some(0.4));
    assert_eq!(exact.log()["duration_ms"].as_f64(), Some(8.0));
}

#[test]
fn without_request_time_latency_starts_when_the_headers_arrive() {
    let mut host = host(json!({}));
    let mut http = host.http();
    host.advance(Duration::from_millis(50)); // before the filter sees the request: not counted
    http.request_headers(&[(":method", "GET"), (":path", "/")], true);
    host.advance(Duration::from_millis(7));
    http.response_headers(&[(":status", "200")], true);
    http.finish();
    assert_eq!(
        host.histogram("telemetry.route.none.cluster.none.rq_time_ms"),
        Some(vec![7])
    );
}

#[test]
fn metrics_can_be_turned_off() {
    let mut host = host(json!({"metrics": {"enabled": false}}));
    get(&mut host, "/", 200);
    assert_eq!(host.metrics(), vec![]);
    assert!(get(&mut host, "/", 200).log.is_some());
}

#[test]
fn trace_counters_say_how_each_trace_came_about() {
    let mut host = host(json!({}));
    get(&mut host, "/", 200);
    with_headers(&mut host, &[("traceparent", INCOMING)]);
    with_headers(&mut host, &[("traceparent", "garbage")]);
    with_headers(&mut host, &[("x-request-id", "abc")]);
    assert_eq!(host.metric("telemetry.trace.started"), Some(3));
    assert_eq!(host.metric("telemetry.trace.continued"), Some(1));
    assert_eq!(host.metric("telemetry.trace.invalid"), Some(1));
    assert_eq!(host.metric("telemetry.request_id.generated"), Some(3));
    let kinds: Vec<MetricType> = host.metrics().into_iter().map(|(_, k)| k).collect();
    assert!(kinds.contains(&MetricType::Histogram));
}
