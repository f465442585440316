//! Passive health and circuit breaking through a real weft: outlier detection ejects an
//! endpoint that fails (with 5xx answers, or because it died) and brings it back; the
//! connection limits shed load with 503.

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
