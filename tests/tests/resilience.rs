//! Passive health and circuit breaking through a real weft: outlier detection ejects an
//! endpoint that fails (with 5xx answers, or because it died) and brings it back; the
//! circuit breakers shed load with 503; the retry budget caps retries.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use weft_e2e::*;

fn config(cluster: &str) -> String {
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - cluster: pool\nclusters:\n{cluster}"
    )
}

/// `n` requests one after another: the count of each (upstream or status) seen.
async fn tally(weft: &Weft, n: usize) -> HashMap<String, usize> {
    let client = http1_client();
    let mut seen = HashMap::new();
    for _ in 0..n {
        let reply = get(&client, weft.addr("main"), "/", &[]).await;
        let key = match reply.status {
            200 => reply.header("x-upstream").unwrap_or("?").to_string(),
            other => format!("{}:{other}", reply.header("x-upstream").unwrap_or("-")),
        };
        *seen.entry(key).or_default() += 1;
    }
    seen
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until b's ejection ends (not sooner than `at_least` from now), then checks that
/// the two endpoints share the requests again.
async fn back_after(weft: &Weft, ejected: &impl Fn(&Weft) -> f64, at_least: Duration) {
    let out_since = Instant::now();
    wait_for("b is back", Duration::from_secs(5), || ejected(weft) == 0.0).await;
    assert!(out_since.elapsed() >= at_least, "{:?}", out_since.elapsed());
    let seen = tally(weft, 20).await;
    assert_eq!(
        (seen.get("a"), seen.get("b")),
        (Some(&10), Some(&10)),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_failing_endpoint_and_brings_it_back() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let b_addr = b.addr;
    let cluster = format!(
        "  - name: pool\n    endpoints: [\"{}\", \"{b_addr}\"]\n    outlier_detection: {{ consecutive_5xx: 3, interval: 500ms, base_ejection_time: 1s, max_ejection_percent: 50 }}\n",
        a.addr
    );
    let weft = Weft::start(&config(&cluster), 1);
    let ejected = |weft: &Weft| {
        weft.metric(&format!(
            "weft_upstream_endpoint_ejected{{cluster=\"pool\",endpoint=\"{b_addr}\"}}"
        ))
    };
    assert_eq!(ejected(&weft), 0.0);

    // b answers 503: its third in a row ejects it, and everything then goes to a.
    b.fail_with(503);
    let seen = tally(&weft, 30).await;
    assert_eq!(seen.get("b:503"), Some(&3), "{seen:?}");
    assert_eq!(seen.get("a"), Some(&27), "{seen:?}");
    assert_eq!(ejected(&weft), 1.0);
    assert_eq!(
        weft.metric("weft_upstream_outlier_ejections_total{cluster=\"pool\"}"),
        1.0
    );
    let (_, clusters) = weft.admin_get("/clusters");
    let clusters: serde_json::Value = serde_json::from_str(&clusters).unwrap();
    let b_state = &clusters["clusters"][0]["endpoints"][1];
    assert_eq!(b_state["ejected"], true, "{clusters}");
    assert_eq!(b_state["in_rotation"], false, "{clusters}");
    assert_eq!(b_state["times_ejected"], 1, "{clusters}");

    // b recovers; once its ejection time is over it is back in the rotation.
    b.fail_with(0);
    back_after(&weft, &ejected, Duration::from_millis(800)).await;

    // b dies (connections closed, port refused): three connect failures eject it again,
    // this time for twice as long.
    b.kill();
    drop(b);
    let seen = tally(&weft, 30).await;
    assert_eq!(seen.get("-:502"), Some(&3), "{seen:?}");
    assert_eq!(seen.get("a"), Some(&27), "{seen:?}");
    assert_eq!(ejected(&weft), 1.0);
    let (_, clusters) = weft.admin_get("/clusters");
    assert!(clusters.contains("\"times_ejected\": 2"), "{clusters}");

    // b restarts on the same address and is used again after its (2 s) ejection.
    let b = Upstream::start_on("b", b_addr).await;
    back_after(&weft, &ejected, Duration::from_millis(1800)).await;
    assert_eq!(
        weft.metric("weft_upstream_outlier_ejections_total{cluster=\"pool\"}"),
        2.0
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_never_ejects_past_the_max_percent() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let cluster = format!(
        "  - name: pool\n    endpoints: [\"{}\", \"{}\"]\n    outlier_detection: {{ consecutive_5xx: 2, max_ejection_percent: 0 }}\n",
        a.addr, b.addr
    );
    let weft = Weft::start(&config(&cluster), 1);
    // Both fail: one is ejected (at least one always may be), the other stays.
    a.fail_with(500);
    b.fail_with(500);
    let seen = tally(&weft, 20).await;
    assert_eq!(
        weft.metric("weft_upstream_outlier_ejections_total{cluster=\"pool\"}"),
        1.0,
        "{seen:?}"
    );
    let (_, clusters) = weft.admin_get("/clusters");
    assert_eq!(
        clusters.matches("\"in_rotation\": true").count(),
        1,
        "{clusters}"
    );
}

/// Sends `n` requests at once (`gap` apart), each held `delay_ms` upstream; the statuses
/// and times, in the order sent.
async fn burst(
    addr: std::net::SocketAddr,
    path: &'static str,
    n: usize,
    delay_ms: u64,
    gap: Duration,
) -> Vec<(u16, Duration, Option<String>)> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let delay = delay_ms.to_string();
            let reply = get(&http1_client(), addr, path, &[("x-delay-ms", &delay)]).await;
            let overloaded = reply.header("x-weft-overloaded").map(str::to_string);
            (reply.status, started.elapsed(), overloaded)
        }));
        tokio::time::sleep(gap).await;
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_fails_fast_past_max_requests() {
    let up = Upstream::start("up").await;
    let cluster = format!(
        "  - name: pool\n    endpoints: [\"{}\"]\n    circuit_breakers: {{ max_requests: 2 }}\n",
        up.addr
    );
    let weft = Weft::start(&config(&cluster), 2);
    // Six requests at once, each held 500 ms upstream: two go through, four get 503 at once.
    let replies = burst(weft.addr("main"), "/", 6, 500, Duration::ZERO).await;
    let ok = replies.iter().filter(|r| r.0 == 200).count();
    let shed: Vec<_> = replies.iter().filter(|r| r.0 == 503).collect();
    assert_eq!((ok, shed.len()), (2, 4), "{replies:?}");
    for (_, took, overloaded) in shed {
        assert_eq!(overloaded.as_deref(), Some("true"));
        assert!(*took < Duration::from_millis(400), "{took:?}");
    }
    assert_eq!(
        weft.metric("weft_upstream_rq_overflow_total{cluster=\"pool\"}"),
        4.0
    );
    // The count goes down as requests end.
    let after = get(&http1_client(), weft.addr("main"), "/", &[]).await;
    assert_eq!(after.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_queue_requests_then_shed_them_with_503() {
    let up = Upstream::start("up").await;
    let cluster = format!(
        "  - name: pool\n    endpoints: [\"{}\"]\n    circuit_breakers: {{ max_connections: 1, max_pending_requests: 1 }}\n",
        up.addr
    );
    let weft = Weft::start(&config(&cluster), 1);
    // The first takes the one connection, the second waits for it, the third finds the
    // queue full and gets 503 at once.
    let replies = burst(weft.addr("main"), "/", 3, 400, Duration::from_millis(50)).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.0).collect();
    assert_eq!(statuses, [200, 200, 503], "{replies:?}");
    assert!(replies[2].1 < Duration::from_millis(300), "{replies:?}");
    assert_eq!(replies[2].2.as_deref(), Some("true"));
    // The second was sent only after the first was answered, on the same connection.
    assert!(replies[1].1 >= Duration::from_millis(700), "{replies:?}");
    assert_eq!(up.connections(), 1);
    assert_eq!(
        weft.metric("weft_upstream_rq_pending_overflow_total{cluster=\"pool\"}"),
        1.0
    );
    assert_eq!(
        weft.metric("weft_upstream_cx_active{cluster=\"pool\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_holds_across_workers() {
    let up = Upstream::start("up").await;
    let cluster = format!(
        "  - name: pool\n    endpoints: [\"{}\"]\n    circuit_breakers: {{ max_connections: 1 }}\n",
        up.addr
    );
    let weft = Weft::start(&config(&cluster), 2);
    // Each request on a new client connection, so both workers take some; a worker whose
    // pool is empty closes the other's idle connection to open its own.
    for _ in 0..20 {
        let reply = get(&http1_client(), weft.addr("main"), "/", &[]).await;
        assert_eq!(reply.status, 200);
        assert!(weft.metric("weft_upstream_cx_active{cluster=\"pool\"}") <= 1.0);
    }
    // Four at once: one connection, the others wait their turn.
    let replies = burst(weft.addr("main"), "/", 4, 100, Duration::ZERO).await;
    assert!(replies.iter().all(|r| r.0 == 200), "{replies:?}");
    assert_eq!(
        weft.metric("weft_upstream_cx_active{cluster=\"pool\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_retries_in_flight() {
    let up = Upstream::start("up").await;
    let cfg = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - match: {{ headers: [ {{ name: x-capped, present: true }} ] }}\n        cluster: capped\n        retry_policy: {{ num_retries: 1, retry_on: [5xx], base_interval: 1ms, max_interval: 1ms }}\n      - cluster: pool\n        retry_policy: {{ num_retries: 1, retry_on: [5xx], base_interval: 1ms, max_interval: 1ms }}\nclusters:\n  - name: pool\n    endpoints: [\"{0}\"]\n    circuit_breakers: {{ retry_budget: {{ budget_percent: 0, min_retry_concurrency: 2 }} }}\n  - name: capped\n    endpoints: [\"{0}\"]\n    circuit_breakers: {{ max_retries: 0 }}\n",
        up.addr
    );
    let weft = Weft::start(&cfg, 1);
    let retries = |c: &str| {
        (
            weft.metric(&format!("weft_upstream_rq_retry_total{{cluster=\"{c}\"}}")),
            weft.metric(&format!(
                "weft_upstream_rq_retry_overflow_total{{cluster=\"{c}\"}}"
            )),
        )
    };
    // Ten failing requests at once, each attempt held 1 s: only two retries may be in
    // flight together, so two are retried and eight answered with their first 503.
    let replies = burst(weft.addr("main"), "/status/503", 10, 1000, Duration::ZERO).await;
    assert!(replies.iter().all(|r| r.0 == 503), "{replies:?}");
    assert_eq!(retries("pool"), (2.0, 8.0));
    assert_eq!(up.request_count(), 12);
    // max_retries: 0 allows none.
    let reply = get(
        &http1_client(),
        weft.addr("main"),
        "/status/503",
        &[("x-capped", "1")],
    )
    .await;
    assert_eq!(reply.status, 503);
    assert_eq!(retries("capped"), (0.0, 1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_request_body_is_sent_again_on_retry() {
    let up = Upstream::start("up").await;
    // A port nothing listens on: connecting fails.
    let refused = refused_addr();
    let dead = refused.addr;
    let cfg = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - cluster: pool\n        retry_policy: {{ num_retries: 1, retry_on: [connect_failure], base_interval: 1ms, max_interval: 1ms, retry_non_idempotent: true, max_buffered_body_bytes: 1024 }}\nclusters:\n  - name: pool\n    endpoints: [\"{dead}\", \"{}\"]\n",
        up.addr
    );
    let weft = Weft::start(&cfg, 1);
    let client = http1_client();
    let post = |body: Vec<u8>| {
        http::Request::post(format!("http://{}/echo-body", weft.addr("main")))
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap()
    };
    // One worker's round robin: once a request has drawn the dead endpoint, each one does
    // (its retry took the live one's turn), and is retried on the live one with the whole
    // body. Only the first may draw the live one, depending on where the round starts.
    for i in 0..4 {
        let body = format!("body number {i}").into_bytes();
        let reply = send(&client, post(body.clone())).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, body);
    }
    let retried = weft.metric("weft_upstream_rq_retry_total{cluster=\"pool\"}");
    assert!(retried == 3.0 || retried == 4.0, "{retried}");
    // A body over max_buffered_body_bytes is streamed, so not retried: the dead
    // endpoint's turns are 502s.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(send(&client, post(vec![b'x'; 2000])).await.status);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 502, 502]);
    assert_eq!(
        weft.metric("weft_upstream_rq_retry_total{cluster=\"pool\"}"),
        retried
    );
}
