//! Routing end to end: every match kind, first match wins, weighted split, direct
//! responses, redirects and the 404 for no match, over HTTP/1.1 and HTTP/2.

use weft_e2e::*;

struct Setup {
    weft: Weft,
    _upstreams: Vec<Upstream>,
}

async fn setup() -> Setup {
    let names = [
        "exact", "prefix", "regex", "wild", "host", "method", "header", "hre", "present", "query",
        "fallback", "canary", "stable",
    ];
    let mut upstreams = Vec::new();
    for name in names {
        upstreams.push(Upstream::start(name).await);
    }
    let routes = "
      - { match: { path: { exact: /exact } }, cluster: exact }
      - { match: { host: api.test, path: { prefix: /api } }, cluster: host }
      - { match: { host: '*.wild.test' }, cluster: wild }
      - { match: { path: { regex: '/users/[0-9]+' } }, cluster: regex }
      - { match: { path: { prefix: /m }, methods: [PUT, DELETE] }, cluster: method }
      - { match: { headers: [ { name: x-env, exact: prod } ] }, cluster: header }
      - { match: { headers: [ { name: x-version, regex: 'v[23]' } ] }, cluster: hre }
      - { match: { headers: [ { name: x-debug, present: true } ] }, cluster: present }
      - { match: { query: [ { name: debug, exact: '1' } ] }, cluster: query }
      - { name: split, match: { path: { prefix: /split } }, weighted_clusters: [ { cluster: stable, weight: 90 }, { cluster: canary, weight: 10 } ] }
      - { match: { path: { exact: /hello } }, direct_response: { status: 202, body: hi there } }
      - { match: { path: { prefix: /old } }, redirect: { status: 308, prefix_rewrite: /new, host: new.test } }
      - { match: { path: { prefix: /pre } }, cluster: prefix }
      - { match: { host: '*' , path: { prefix: /fallback } }, cluster: fallback }
";
    let clusters: String = upstreams
        .iter()
        .map(|u| cluster_yaml(&u.name, &[u.addr], ""))
        .collect();
    let config = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n{}clusters:\n{clusters}",
        listener_yaml("main", "", routes)
    );
    Setup {
        weft: Weft::start(&config, 2),
        _upstreams: upstreams,
    }
}

/// Which upstream answered (or the status when none did).
async fn who(
    client: &TestClient,
    s: &Setup,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", s.weft.addr("main")));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let reply = send(client, b.body(Default::default()).unwrap()).await;
    reply
        .header("x-upstream")
        .map(str::to_string)
        .unwrap_or_else(|| format!("status {}", reply.status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_match_kind_over_http1_and_http2() {
    let s = setup().await;
    for client in [http1_client(), http2_client()] {
        let c = &client;
        assert_eq!(who(c, &s, "GET", "/exact", &[]).await, "exact");
        assert_eq!(
            who(c, &s, "GET", "/exact/more", &[]).await,
            "status 404",
            "exact must not prefix-match"
        );
        assert_eq!(
            who(c, &s, "GET", "/pr", &[]).await,
            "status 404",
            "shorter than the prefix"
        );
        assert_eq!(
            who(c, &s, "GET", "/prefix-x", &[]).await,
            "prefix",
            "prefixes are string prefixes, as in Envoy"
        );
        assert_eq!(who(c, &s, "GET", "/pre/x", &[]).await, "prefix");
        assert_eq!(who(c, &s, "GET", "/users/42", &[]).await, "regex");
        assert_eq!(
            who(c, &s, "GET", "/users/42x", &[]).await,
            "status 404",
            "regex matches the whole path"
        );
        assert_eq!(who(c, &s, "GET", "/m/x", &[]).await, "status 404");
        assert_eq!(who(c, &s, "PUT", "/m/x", &[]).await, "method");
        assert_eq!(
            who(c, &s, "GET", "/x", &[("x-env", "prod")]).await,
            "header"
        );
        assert_eq!(
            who(c, &s, "GET", "/x", &[("x-env", "dev")]).await,
            "status 404"
        );
        assert_eq!(who(c, &s, "GET", "/x", &[("x-version", "v3")]).await, "hre");
        assert_eq!(who(c, &s, "GET", "/x", &[("x-debug", "")]).await, "present");
        assert_eq!(who(c, &s, "GET", "/x?a=b&debug=1", &[]).await, "query");
        assert_eq!(who(c, &s, "GET", "/x?debug=2", &[]).await, "status 404");
        assert_eq!(who(c, &s, "GET", "/fallback", &[]).await, "fallback");
    }
    // Host matching needs control of the Host header / :authority.
    let h1 = http1_client();
    assert_eq!(
        who(&h1, &s, "GET", "/api/v1", &[("host", "API.test:9999")]).await,
        "host"
    );
    assert_eq!(
        who(&h1, &s, "GET", "/api/v1", &[("host", "other.test")]).await,
        "status 404"
    );
    assert_eq!(
        who(&h1, &s, "GET", "/", &[("host", "a.wild.test")]).await,
        "wild"
    );
    assert_eq!(
        who(&h1, &s, "GET", "/", &[("host", "wild.test")]).await,
        "status 404"
    );
    // HTTP/2: connect to weft while :authority names another host.
    let addr = s.weft.addr("main");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("http://a.wild.test/")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(
        res.headers().get("x-upstream").map(|v| v.to_str().unwrap()),
        Some("wild"),
        "h2 :authority is matched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_response_redirect_and_404() {
    let s = setup().await;
    let c = http1_client();
    let addr = s.weft.addr("main");
    let direct = get(&c, addr, "/hello", &[]).await;
    assert_eq!((direct.status, direct.text().as_str()), (202, "hi there"));
    let redirect = get(&c, addr, "/old/page?q=1", &[]).await;
    assert_eq!(redirect.status, 308);
    assert_eq!(
        redirect.header("location"),
        Some("http://new.test/new/page?q=1")
    );
    let missing = get(&c, addr, "/nothing/here", &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.text(), "no route matched this request\n");
    assert_eq!(
        s.weft.metric(
            r#"weft_requests_total{listener="main",route="route10",cluster="",code_class="2xx"}"#
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_is_within_five_percent() {
    let s = setup().await;
    let addr = s.weft.addr("main");
    let total = 2000;
    let mut tasks = Vec::new();
    // 8 concurrent keep-alive clients, so both workers take part.
    for _ in 0..8 {
        tasks.push(tokio::spawn(async move {
            let c = http1_client();
            let mut canary = 0;
            for _ in 0..total / 8 {
                if get(&c, addr, "/split", &[]).await.header("x-upstream") == Some("canary") {
                    canary += 1;
                }
            }
            canary
        }));
    }
    let mut canary = 0;
    for t in tasks {
        canary += t.await.unwrap();
    }
    let share = canary as f64 / total as f64;
    assert!(
        (0.05..=0.15).contains(&share),
        "canary share {share} not within 10% ± 5%"
    );
    let stable = s.weft.metric(
        r#"weft_requests_total{listener="main",route="split",cluster="stable",code_class="2xx"}"#,
    );
    let canary_metric = s.weft.metric(
        r#"weft_requests_total{listener="main",route="split",cluster="canary",code_class="2xx"}"#,
    );
    assert_eq!(stable + canary_metric, total as f64);
    assert_eq!(canary_metric, canary as f64);
}
