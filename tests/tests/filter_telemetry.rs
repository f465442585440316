//! The built-in telemetry filter (filters/telemetry) in a real weft in front of a test
//! upstream: per route/cluster/status counters and the latency histogram on
//! `/stats/prometheus`, `traceparent` continued (same trace id, new span id) or started,
//! `x-request-id` (weft sets one before filters run; the filter keeps it), and the JSON
//! access-log line in weft's log.
//!
//! The module is `target/filters/telemetry.wasm` (scripts/build-filters.sh puts it there);
//! when it is missing the test builds it with cargo.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_e2e::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn module() -> PathBuf {
    filter_module("telemetry")
}

const LOG_FIELDS: [&str; 11] = [
    "method",
    "path",
    "status",
    "duration_ms",
    "route",
    "cluster",
    "upstream",
    "request_id",
    "trace_id",
    "parent_span_id",
    "user_agent",
];

/// A weft (two workers) with the telemetry filter in front of `up`, on the route `api`.
fn start(up: &Upstream) -> Weft {
    let config = json!({
        "access_log": {"fields": LOG_FIELDS},
        "response_headers": {"x-trace-id": "trace_id"}
    })
    .to_string();
    let yaml = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    filters:\n      - name: telemetry\n        module: {}\n        config: '{}'\n    routes:\n      - name: api\n        cluster: up\nclusters:\n{}",
        module().display(),
        config,
        cluster_yaml("up", &[up.addr], ""),
    );
    Weft::start(&yaml, 2)
}

/// Waits for a series to reach `want` (on_log runs once the response has been sent, so
/// the last request may be counted a moment after the client has its answer).
fn wait_metric(weft: &Weft, series: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = weft.metric(series);
        if value == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {value}, want {want}:\n{}",
            weft.admin_get("/stats/prometheus").1
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The access-log lines the filter wrote (the messages of weft's `weft::wasm` lines), as
/// JSON.
fn access_lines(weft: &Weft) -> Vec<Value> {
    weft.logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "weft::wasm" && v["fields"]["plugin"] == "telemetry")
        .filter_map(|v| serde_json::from_str(v["fields"]["message"].as_str()?).ok())
        .collect()
}

/// Waits for the access-log line whose `request_id` is `id`.
fn wait_access_line(weft: &Weft, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = access_lines(weft)
            .into_iter()
            .find(|l| l["request_id"] == id)
        {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no access-log line for {id}:\n{}",
            weft.logs().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_per_status_class_and_the_latency_histogram_reach_prometheus() {
    let up = Upstream::start("up").await;
    let weft = start(&up);
    let (client, addr) = (http1_client(), weft.addr("main"));
    let mut sent = 0;
    for (path, status, times) in [
        ("/ok", 200, 4),
        ("/status/201", 201, 1),
        ("/status/404", 404, 3),
        ("/status/503", 503, 2),
    ] {
        for _ in 0..times {
            assert_eq!(get(&client, addr, path, &[]).await.status, status);
            sent += 1;
        }
    }
    let base = "telemetry_route_api_cluster_up";
    wait_metric(&weft, &format!("{base}_rq_time_ms_count"), f64::from(sent));
    assert_eq!(weft.metric(&format!("{base}_rq_2xx_total")), 5.0);
    assert_eq!(weft.metric(&format!("{base}_rq_4xx_total")), 3.0);
    assert_eq!(weft.metric(&format!("{base}_rq_5xx_total")), 2.0);
    assert_eq!(weft.metric(&format!("{base}_rq_3xx_total")), 0.0);
    // Every request took less than 8.4 s (the top bucket): all are in `+Inf` and below.
    let top = weft.metric(&format!("{base}_rq_time_ms_bucket{{le=\"8388608.0\"}}"));
    assert_eq!(top, f64::from(sent));
    assert_eq!(
        weft.metric("telemetry_trace_started_total"),
        f64::from(sent)
    );
    // Weft gives every request an x-request-id before the filters run.
    assert_eq!(weft.metric("telemetry_request_id_generated_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_continued_with_a_new_span_or_started() {
    let up = Upstream::start("up").await;
    let weft = start(&up);
    let (client, addr) = (http1_client(), weft.addr("main"));

    let incoming = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let headers = [
        ("traceparent", incoming.as_str()),
        ("tracestate", "vendor=opaque,other=1"),
    ];
    let continued = get(&client, addr, "/continued", &headers).await;
    assert_eq!(continued.status, 200);
    assert_eq!(continued.header("x-trace-id"), Some(TRACE_ID));

    let started = get(&client, addr, "/started", &[]).await;
    let invalid = [(
        "traceparent",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    )];
    let replaced = get(&client, addr, "/replaced", &invalid).await;

    let requests = up.requests();
    let upstream = |path: &str, name: &str| {
        let request = requests.iter().find(|r| r.path == path).unwrap();
        request.headers[name].to_str().unwrap().to_string()
    };
    // Same trace id and flags, a new span id.
    let sent = upstream("/continued", "traceparent");
    assert_eq!(sent.len(), 55, "{sent}");
    assert!(sent.starts_with(&format!("00-{TRACE_ID}-")), "{sent}");
    assert!(sent.ends_with("-01"), "{sent}");
    let span = &sent[36..52];
    assert_ne!(span, CALLER_SPAN);
    assert!(
        span.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(span, "0000000000000000");
    assert_eq!(
        upstream("/continued", "tracestate"),
        "vendor=opaque,other=1"
    );

    // Generated when absent or invalid: version 00, sampled (rate 1 by default).
    for (path, reply) in [("/started", &started), ("/replaced", &replaced)] {
        let sent = upstream(path, "traceparent");
        let parts: Vec<&str> = sent.split('-').collect();
        assert_eq!(parts.len(), 4, "{sent}");
        assert_eq!((parts[0], parts[3]), ("00", "01"), "{sent}");
        assert_eq!((parts[1].len(), parts[2].len()), (32, 16), "{sent}");
        assert_ne!(parts[1], "0".repeat(32));
        assert_ne!(parts[1], TRACE_ID);
        assert_eq!(reply.header("x-trace-id"), Some(parts[1]));
    }
    assert_ne!(
        upstream("/started", "traceparent"),
        upstream("/replaced", "traceparent")
    );
    wait_metric(&weft, "telemetry_trace_continued_total", 1.0);
    wait_metric(&weft, "telemetry_trace_started_total", 2.0);
    assert_eq!(weft.metric("telemetry_trace_invalid_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_access_log_line_reaches_weft_logs_with_the_configured_fields() {
    let up = Upstream::start("up").await;
    let weft = start(&up);
    let (client, addr) = (http1_client(), weft.addr("main"));
    let incoming = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let headers = [
        ("x-request-id", "e2e-request-1"),
        ("traceparent", incoming.as_str()),
        ("user-agent", "e2e-agent/1"),
    ];
    let reply = get(&client, addr, "/status/404?q=1", &headers).await;
    assert_eq!(reply.status, 404);
    // The request id reaches the upstream unchanged.
    let recorded = up.requests();
    assert_eq!(recorded[0].headers["x-request-id"], "e2e-request-1");

    let line = wait_access_line(&weft, "e2e-request-1");
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = LOG_FIELDS.to_vec();
    expected.sort();
    assert_eq!(keys, expected, "{line}");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/status/404");
    assert_eq!(line["status"], 404);
    assert_eq!(line["route"], "api");
    assert_eq!(line["cluster"], "up");
    assert_eq!(line["upstream"], up.addr.to_string());
    assert_eq!(line["trace_id"], TRACE_ID);
    assert_eq!(line["parent_span_id"], CALLER_SPAN);
    assert_eq!(line["user_agent"], "e2e-agent/1");
    let took = line["duration_ms"].as_f64().unwrap();
    assert!((0.0..10_000.0).contains(&took), "{took}");

    // Without an x-request-id from the client, the line has the one weft made (UUID v4),
    // the same the upstream got.
    get(&client, addr, "/second", &[]).await;
    let recorded = up.requests();
    let id = recorded[1].headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(&id[14..15], "4", "{id}");
    let line = wait_access_line(&weft, &id);
    assert_eq!(line["path"], "/second");
    assert_eq!(line["status"], 200);
    assert!(line["parent_span_id"].is_null());
}
