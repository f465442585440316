//! Fault injection on routes (Istio-style): delays and aborts for a share of requests,
//! optionally only for requests carrying a header.

use std::time::{Duration, Instant};

use weft_e2e::*;

fn config(up: &Upstream, fault: &str) -> String {
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - cluster: up\n        fault: {fault}\nclusters:\n{}",
        cluster_yaml("up", &[up.addr], "")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborts_answer_the_status_for_their_share_of_requests() {
    let up = Upstream::start("up").await;
    let weft = Weft::start(&config(&up, "{ abort: { status: 503, percent: 50 } }"), 2);
    let client = http1_client();
    let mut aborted = 0;
    for _ in 0..400 {
        let reply = get(&client, weft.addr("main"), "/", &[]).await;
        match reply.status {
            503 => {
                assert_eq!(reply.text(), "fault filter abort\n");
                aborted += 1;
            }
            200 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    // 50% of 400: 200 ± 40 is four standard deviations.
    assert!((160..=240).contains(&aborted), "{aborted} of 400 aborted");
    assert_eq!(up.request_count(), 400 - aborted);
    assert_eq!(
        weft.metric("weft_fault_injected_total{listener=\"main\",kind=\"abort\"}"),
        aborted as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_apply_only_to_requests_with_the_header() {
    let up = Upstream::start("up").await;
    let weft = Weft::start(
        &config(
            &up,
            "{ delay: { fixed: 300ms }, abort: { status: 418, percent: 0 }, only_with_header: x-chaos }",
        ),
        1,
    );
    let client = http1_client();
    let started = Instant::now();
    let plain = get(&client, weft.addr("main"), "/", &[]).await;
    assert_eq!(plain.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let delayed = get(&client, weft.addr("main"), "/", &[("x-chaos", "1")]).await;
    assert_eq!(delayed.status, 200, "percent 0 never aborts");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        weft.metric("weft_fault_injected_total{listener=\"main\",kind=\"delay\"}"),
        1.0
    );
}

#[test]
fn bad_fault_config_names_the_field() {
    let err = validate_errors(
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - direct_response: { status: 200 }\n        fault: { abort: { status: 503, percent: 150 } }\n      - direct_response: { status: 200 }\n        fault: { only_with_header: x }\n",
    );
    assert!(
        err.contains(
            "listeners[0].routes[0].fault.abort.percent: 150 is not a percentage (0 to 100)"
        ),
        "{err}"
    );
    assert!(
        err.contains("listeners[0].routes[1].fault: needs a delay, an abort, or both"),
        "{err}"
    );
}
