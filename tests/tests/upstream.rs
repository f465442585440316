//! The upstream side: connection reuse, round robin, h2c clusters, forwarding headers, and
//! the 502 / 504 answers when an upstream can't be reached or is too slow.

use std::time::{Duration, Instant};

use weft_e2e::*;

fn config(routes: &str, clusters: &str) -> String {
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n{}clusters:\n{clusters}",
        listener_yaml("main", "", routes)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reuses_upstream_connections_and_round_robins() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let weft = Weft::start(
        &config(
            "      - cluster: pair\n",
            &cluster_yaml("pair", &[a.addr, b.addr], ""),
        ),
        2,
    );
    let client = http1_client();
    for i in 0..100 {
        let reply = get(&client, weft.addr("main"), &format!("/r/{i}"), &[]).await;
        assert_eq!(reply.status, 200);
    }
    // One client connection lands on one worker, whose pool keeps its upstream connections.
    // hyper-util puts a connection back in the pool from the connection's own task, so
    // on a busy machine the next request can occasionally beat it and open a second one:
    // allow a few, where no reuse would mean 50 per endpoint.
    assert!(
        (1..=3).contains(&a.connections()),
        "upstream a connections: {}",
        a.connections()
    );
    assert!(
        (1..=3).contains(&b.connections()),
        "upstream b connections: {}",
        b.connections()
    );
    // Each worker alternates exactly; the test client may (rarely) open a second
    // connection that lands on the other worker, so the totals differ by at most one per
    // worker.
    let (ra, rb) = (a.request_count(), b.request_count());
    assert_eq!(ra + rb, 100);
    assert!(ra.abs_diff(rb) <= 2, "round robin alternates: {ra} / {rb}");
    assert_eq!(
        weft.metric(r#"weft_upstream_rq_total{cluster="pair"}"#),
        100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_cluster_speaks_http2_upstream() {
    let up = Upstream::start("h2").await;
    let weft = Weft::start(
        &config(
            "      - cluster: h2\n",
            &cluster_yaml("h2", &[up.addr], "    protocol: http2\n"),
        ),
        1,
    );
    for client in [http1_client(), http2_client()] {
        let reply = get(&client, weft.addr("main"), "/x", &[]).await;
        assert_eq!(reply.status, 200);
    }
    let seen: Vec<_> = up.requests().iter().map(|r| r.version).collect();
    assert_eq!(seen, vec![http::Version::HTTP_2; 2]);
    let paths: Vec<_> = up.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/x", "/x"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_set_and_hop_by_hop_removed() {
    let up = Upstream::start("up").await;
    let weft = Weft::start(
        &config("      - cluster: up\n", &cluster_yaml("up", &[up.addr], "")),
        1,
    );
    let addr = weft.addr("main");
    let reply = raw_exchange(
        addr,
        b"GET /h HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 10.1.2.3\r\nConnection: keep-alive, x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-Kept: yes\r\n\r\n",
        Duration::from_millis(500),
    )
    .await;
    assert!(reply.text().starts_with("HTTP/1.1 200"), "{}", reply.text());
    let seen = &up.requests()[0];
    let h = &seen.headers;
    assert_eq!(h["host"], "app.test", "Host is kept");
    assert_eq!(h["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-request-id"].len(), 36, "a request id is generated");
    assert_eq!(h["x-kept"], "yes");
    assert_eq!(
        h.get("te").map(|v| v.to_str().unwrap()),
        Some("trailers"),
        "te: trailers survives"
    );
    for gone in ["x-secret", "keep-alive", "proxy-connection"] {
        assert!(h.get(gone).is_none(), "{gone} must not be forwarded: {h:?}");
    }
    // An incoming request id is kept.
    let client = http1_client();
    get(&client, addr, "/h2", &[("x-request-id", "abc-123")]).await;
    assert_eq!(up.requests()[1].headers["x-request-id"], "abc-123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_502() {
    // A port that was just free: connecting to it is refused.
    let refused = refused_addr();
    let dead = refused.addr;
    let weft = Weft::start(
        &config(
            "      - cluster: dead\n",
            &cluster_yaml("dead", &[dead], "    connect_timeout: 500ms\n"),
        ),
        1,
    );
    let reply = get(&http1_client(), weft.addr("main"), "/", &[]).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.text(), "upstream connect error\n");
    assert_eq!(
        weft.metric(r#"weft_upstream_cx_connect_errors_total{cluster="dead"}"#),
        1.0
    );
    assert_eq!(
        weft.metric(
            r#"weft_requests_total{listener="main",route="route0",cluster="dead",code_class="5xx"}"#
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_without_answer_is_502() {
    // Accepts, reads the request, and closes without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            drop(s);
        }
    });
    let weft = Weft::start(
        &config(
            "      - cluster: rude\n",
            &cluster_yaml("rude", &[addr], ""),
        ),
        1,
    );
    let reply = get(&http1_client(), weft.addr("main"), "/", &[]).await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        weft.metric(r#"weft_upstream_rq_error_total{cluster="rude"}"#),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_is_504_after_the_route_timeout() {
    let up = Upstream::start("slow").await;
    let routes = "      - { match: { path: { prefix: /fast } }, cluster: slow, timeout: 300ms }\n      - cluster: slow\n";
    let weft = Weft::start(
        &config(
            routes,
            &cluster_yaml("slow", &[up.addr], "    request_timeout: 1s\n"),
        ),
        1,
    );
    let client = http1_client();
    let started = Instant::now();
    let reply = get(
        &client,
        weft.addr("main"),
        "/fast",
        &[("x-delay-ms", "3000")],
    )
    .await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.text(), "upstream request timeout\n");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(2000),
        "route timeout took {took:?}"
    );
    // The cluster's own timeout applies when the route sets none.
    let started = Instant::now();
    let reply = get(
        &client,
        weft.addr("main"),
        "/other",
        &[("x-delay-ms", "3000")],
    )
    .await;
    assert_eq!(reply.status, 504);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_millis(2800),
        "cluster timeout took {took:?}"
    );
    assert_eq!(
        weft.metric(r#"weft_upstream_rq_timeout_total{cluster="slow"}"#),
        2.0
    );
    // A timely request on the same connection still works.
    assert_eq!(
        get(&client, weft.addr("main"), "/fast", &[]).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_endpoints_resolve_and_refresh_without_reloading_when_unchanged() {
    let up = Upstream::start("up").await;
    let port = up.addr.port();
    let weft = Weft::start(
        &config(
            "      - cluster: named\n",
            &format!(
                "  - name: named\n    endpoints: [\"localhost:{port}\"]\n    dns_refresh_rate: 50ms\n"
            ),
        ),
        1,
    );
    let reply = get(&http1_client(), weft.addr("main"), "/", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-upstream"), Some("up"));
    // localhost's IPv4 address (v4_preferred) is the endpoint.
    let (_, clusters) = weft.admin_get("/clusters");
    assert!(
        clusters.contains(&format!("\"127.0.0.1:{port}\"")),
        "{clusters}"
    );
    // Many refreshes later, the same answer has caused no reload.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(weft.metric("weft_reload_total{result=\"ok\"}"), 0.0);
    assert!(
        !weft.logs().iter().any(|l| l.contains("DNS")),
        "{:?}",
        weft.logs()
    );
}
