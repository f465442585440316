//! Load-balancing policies through a real weft: endpoint weights, consistent hashing on a
//! header. (Least request is covered by the unit tests of `cluster::lb`.)

use std::collections::HashMap;

use weft_e2e::*;

fn config(cluster: &str) -> String {
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - cluster: pool\nclusters:\n{cluster}"
    )
}

async fn spread(
    weft: &Weft,
    n: usize,
    headers: impl Fn(usize) -> Vec<(String, String)>,
) -> HashMap<String, usize> {
    let client = http1_client();
    let mut seen = HashMap::new();
    for i in 0..n {
        let h = headers(i);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let reply = get(&client, weft.addr("main"), "/", &h).await;
        assert_eq!(reply.status, 200);
        *seen
            .entry(reply.header("x-upstream").unwrap().to_string())
            .or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_follows_endpoint_weights() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let cluster = format!(
        "  - name: pool\n    endpoints: [ {{ address: \"{}\", weight: 1 }}, {{ address: \"{}\", weight: 3 }} ]\n",
        a.addr, b.addr
    );
    let weft = Weft::start(&config(&cluster), 1);
    let seen = spread(&weft, 400, |_| Vec::new()).await;
    // One worker walks the schedule a b b b: exactly 1:3.
    assert_eq!((seen["a"], seen["b"]), (100, 300), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_on_a_header_keeps_each_client_on_one_endpoint() {
    let ups = [
        Upstream::start("u0").await,
        Upstream::start("u1").await,
        Upstream::start("u2").await,
    ];
    for policy in ["ring_hash", "maglev"] {
        let cluster = format!(
            "  - name: pool\n    lb_policy: {policy}\n    hash_key: {{ header: x-user }}\n    endpoints: [\"{}\", \"{}\", \"{}\"]\n",
            ups[0].addr, ups[1].addr, ups[2].addr
        );
        let weft = Weft::start(&config(&cluster), 2);
        let client = http1_client();
        let mut home: HashMap<String, String> = HashMap::new();
        for round in 0..3 {
            for user in 0..30 {
                let user = format!("user-{user}");
                let reply = get(&client, weft.addr("main"), "/", &[("x-user", &user)]).await;
                let upstream = reply.header("x-upstream").unwrap().to_string();
                if round == 0 {
                    home.insert(user, upstream);
                } else {
                    assert_eq!(home[&user], upstream, "{policy}: {user} moved");
                }
            }
        }
        // 30 users over 3 endpoints: every endpoint gets some.
        let used: std::collections::HashSet<_> = home.values().collect();
        assert_eq!(used.len(), 3, "{policy}: {home:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_a_dead_endpoint_out_and_bring_it_back() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let b_addr = b.addr;
    let cluster = format!(
        "  - name: pool\n    endpoints: [\"{}\", \"{}\"]\n    health_check: {{ path: /healthz, interval: 100ms, timeout: 200ms, healthy_threshold: 1, unhealthy_threshold: 2 }}\n",
        a.addr, b.addr
    );
    let weft = Weft::start(&config(&cluster), 1);
    let healthy = |endpoint: &str| {
        weft.metric(&format!(
            "weft_upstream_endpoint_healthy{{cluster=\"pool\",endpoint=\"{endpoint}\"}}"
        ))
    };
    assert_eq!(healthy(&b_addr.to_string()), 1.0);
    assert!(
        a.requests().iter().any(|r| r.path == "/healthz"),
        "no health check reached a"
    );

    // b goes away: after two failed checks it leaves the rotation, and every request goes
    // to a (none fails on the dead endpoint).
    b.stop();
    drop(b);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while healthy(&b_addr.to_string()) != 0.0 {
        assert!(std::time::Instant::now() < deadline, "b still healthy");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let seen = spread(&weft, 20, |_| Vec::new()).await;
    assert_eq!(seen.get("a"), Some(&20), "{seen:?}");
    let (_, clusters) = weft.admin_get("/clusters");
    assert!(clusters.contains("\"healthy\": false"), "{clusters}");

    // b is back on the same address: one passed check brings it back.
    let b = Upstream::start_on("b", b_addr).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while healthy(&b_addr.to_string()) != 1.0 {
        assert!(std::time::Instant::now() < deadline, "b not back");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let seen = spread(&weft, 20, |_| Vec::new()).await;
    assert_eq!(
        (seen.get("a"), seen.get("b")),
        (Some(&10), Some(&10)),
        "{seen:?}"
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_go_to_another_endpoint_on_connect_failure_and_on_5xx() {
    let up = Upstream::start("up").await;
    // A port nothing listens on: connecting fails.
    let refused = refused_addr();
    let dead = refused.addr;
    let config = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - match: {{ path: {{ prefix: /plain }} }}\n        cluster: pool\n      - cluster: pool\n        retry_policy: {{ num_retries: 2, retry_on: [connect_failure, 5xx], base_interval: 1ms, max_interval: 5ms }}\nclusters:\n  - name: pool\n    endpoints: [\"{dead}\", \"{}\"]\n",
        up.addr
    );
    let weft = Weft::start(&config, 1);
    let client = http1_client();
    let addr = weft.addr("main");
    // Without a retry policy, the dead endpoint's turns are 502s.
    let mut plain = Vec::new();
    for _ in 0..10 {
        plain.push(get(&client, addr, "/plain", &[]).await.status);
    }
    assert!(plain.contains(&502), "{plain:?}");
    // With one, each request that drew the dead endpoint is sent again to the live one.
    for _ in 0..10 {
        assert_eq!(get(&client, addr, "/", &[]).await.status, 200);
    }
    assert!(weft.metric("weft_upstream_rq_retry_total{cluster=\"pool\"}") >= 4.0);

    // 5xx: retried up to num_retries, then the last answer goes back.
    let before = weft.metric("weft_upstream_rq_retry_total{cluster=\"pool\"}");
    let mut seen_upstream = 0;
    for _ in 0..4 {
        let reply = get(&client, addr, "/status/503", &[]).await;
        assert!(
            reply.status == 503 || reply.status == 502,
            "{}",
            reply.status
        );
        seen_upstream += 1;
    }
    let retried = weft.metric("weft_upstream_rq_retry_total{cluster=\"pool\"}") - before;
    assert_eq!(
        retried,
        2.0 * seen_upstream as f64,
        "two retries per request"
    );

    // A POST is not idempotent: not retried.
    let before = weft.metric("weft_upstream_rq_retry_total{cluster=\"pool\"}");
    let req = http::Request::post(format!("http://{addr}/status/503"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let reply = send(&client, req).await;
    assert!(reply.status == 503 || reply.status == 502);
    assert_eq!(
        weft.metric("weft_upstream_rq_retry_total{cluster=\"pool\"}"),
        before
    );
}
