//! The embedded default config: `weft run` alone serves the welcome text, proxies to the
//! demo upstream, and answers on the admin endpoint.

use weft_e2e::*;

#[tokio::test]
async fn harness_roundtrip() {
    let upstream = Upstream::start("one").await;
    let config = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n{}clusters:\n{}",
        listener_yaml("main", "", "      - cluster: one\n"),
        cluster_yaml("one", &[upstream.addr], "")
    );
    let weft = Weft::start(&config, 2);
    let reply = get(&http1_client(), weft.addr("main"), "/hello", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "one /hello");
    assert_eq!(reply.header("x-upstream"), Some("one"));
}
