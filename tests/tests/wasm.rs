//! The proxy-wasm host end to end: filters built with the proxy-wasm Rust SDK (for
//! wasm32-unknown-unknown and wasm32-wasip1) run in a real weft, one test per ABI area.

use std::time::{Duration, Instant};

use weft_e2e::*;

/// One filter entry (YAML, indented for `filters:`).
fn filter(name: &str, fixture_name: &str, target: &str, extra: &str) -> String {
    format!(
        "      - name: {name}\n        module: {}\n{extra}",
        fixture(fixture_name, target).display()
    )
}

/// Tests that are not about CPU deadlines run with a generous one: epoch deadlines are
/// wall-clock, and on a loaded 2-core CI machine a worker can be descheduled for longer
/// than the 10 ms default in the middle of a callback.
const RELAXED_WASM: &str = "wasm: { callback_deadline: 250ms }\n";

fn config(filters: &str, upstream: &Upstream, wasm: &str) -> String {
    let wasm = if wasm.is_empty() { RELAXED_WASM } else { wasm };
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\n{wasm}listeners:\n  - name: main\n    address: 127.0.0.1:0\n    filters:\n{filters}    routes:\n      - cluster: up\nclusters:\n{}",
        cluster_yaml("up", &[upstream.addr], "")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_read_added_replaced_and_removed_both_ways() {
    for target in TARGETS {
        let up = Upstream::start("up").await;
        let filters = filter(
            "headers",
            "headers",
            target,
            "        config: { add_request: { x-added: yes }, replace_request: { x-replace: new }, remove_request: [x-remove], add_response: { x-resp-added: '1' }, remove_response: [x-upstream], tag: t1 }\n",
        );
        let weft = Weft::start(&config(&filters, &up, ""), 2);
        let reply = get(
            &http1_client(),
            weft.addr("main"),
            "/path?q=1",
            &[
                ("x-replace", "old"),
                ("x-remove", "gone"),
                ("x-request-id", "rid-7"),
            ],
        )
        .await;
        assert_eq!(reply.status, 200, "{target}");
        let seen = &up.requests()[0].headers;
        assert_eq!(seen["x-added"], "yes", "{target}");
        assert_eq!(seen["x-replace"], "new", "{target}");
        assert!(seen.get("x-remove").is_none(), "{target}");
        assert_eq!(seen["x-wasm-method"], "GET");
        assert_eq!(seen["x-wasm-path"], "/path?q=1");
        assert_eq!(seen["x-wasm-authority"], weft.addr("main").to_string());
        assert_eq!(seen["x-wasm-scheme"], "http");
        // 4 pseudo-headers + x-replace, x-request-id, x-added (x-remove gone, host is :authority).
        assert_eq!(seen["x-wasm-request-header-count"], "7", "{target}");
        assert_eq!(reply.header("x-resp-added"), Some("1"));
        assert_eq!(reply.header("x-upstream"), None, "response header removed");
        assert_eq!(reply.header("x-wasm-status"), Some("200"));
        assert_eq!(reply.header("x-wasm-tag"), Some("t1"));
        assert_eq!(reply.header("x-wasm-saw-request-id"), Some("rid-7"));
        // The guest's log line reaches weft's log (written by a background thread).
        weft.wait_for_log("headers filter: GET /path?q=1").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_response_skips_the_rest_and_runs_response_phases() {
    let up = Upstream::start("up").await;
    // The local-response filter is second: the headers filter runs before it on the
    // request, and after it on the response (reverse order).
    let filters = format!(
        "{}{}",
        filter(
            "headers",
            "headers",
            "wasm32-wasip1",
            "        config: { tag: outer }\n"
        ),
        filter("deny", "local_response", "wasm32-unknown-unknown", "")
    );
    let weft = Weft::start(&config(&filters, &up, ""), 2);
    let client = http1_client();
    let denied = get(&client, weft.addr("main"), "/deny/x", &[]).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.text(), "denied by wasm\n");
    assert_eq!(denied.header("x-denied-by"), Some("wasm"));
    assert_eq!(denied.header("x-local-response-filter"), Some("seen"));
    assert_eq!(
        denied.header("x-wasm-tag"),
        Some("outer"),
        "response phase of the earlier filter ran"
    );
    assert_eq!(denied.header("x-wasm-status"), Some("403"));
    let teapot = get(&client, weft.addr("main"), "/teapot", &[]).await;
    assert_eq!(
        (teapot.status, teapot.text().as_str()),
        (418, "short and stout\n")
    );
    assert_eq!(
        up.request_count(),
        0,
        "local replies never reach the upstream"
    );
    let fine = get(&client, weft.addr("main"), "/fine", &[]).await;
    assert_eq!(fine.status, 200);
    assert_eq!(fine.header("x-local-response-filter"), Some("seen"));
    assert_eq!(up.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_filter_gives_500_and_the_next_request_succeeds() {
    let up = Upstream::start("up").await;
    let filters = filter("bad", "misbehave", "wasm32-unknown-unknown", "");
    let wasm = "wasm: { memory_limit_mb: 32, callback_deadline: 100ms }\n";
    let weft = Weft::start(&config(&filters, &up, wasm), 1);
    let client = http1_client();
    for (mode, kind) in [
        ("panic", "trap"),
        ("loop", "deadline"),
        ("oom", "oom"),
        ("trap", "trap"),
    ] {
        let started = Instant::now();
        let failed = get(&client, weft.addr("main"), "/", &[("x-misbehave", mode)]).await;
        assert_eq!(failed.status, 500, "{mode}");
        assert_eq!(failed.text(), "filter \"bad\" failed\n", "{mode}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{mode} took {:?}",
            started.elapsed()
        );
        let next = get(&client, weft.addr("main"), "/", &[]).await;
        assert_eq!(
            next.status, 200,
            "the request after {mode} is served by a fresh VM"
        );
        assert!(
            weft.metric(&format!(
                r#"weft_filter_failures_total{{listener="main",filter="bad",kind="{kind}"}}"#
            )) >= 1.0,
            "{mode} counted as {kind}"
        );
    }
    assert_eq!(
        weft.metric(r#"weft_filter_failures_total{listener="main",filter="bad",kind="trap"}"#),
        2.0
    );
    assert_eq!(
        up.request_count(),
        4,
        "only the good requests reached the upstream"
    );
    assert_eq!(up.requests()[0].headers["x-misbehave-ok"], "1");
    // The panic message and the deadline are logged.
    weft.wait_for_log("asked to panic").await;
    weft.wait_for_log("CPU deadline").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_skips_a_failing_filter() {
    let up = Upstream::start("up").await;
    let filters = filter(
        "bad",
        "misbehave",
        "wasm32-wasip1",
        "        fail_open: true\n",
    );
    let weft = Weft::start(&config(&filters, &up, ""), 1);
    let reply = get(
        &http1_client(),
        weft.addr("main"),
        "/",
        &[("x-misbehave", "trap")],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(up.requests()[0].headers.get("x-misbehave-ok").is_none());
    assert_eq!(
        weft.metric(r#"weft_filter_failures_total{listener="main",filter="bad",kind="trap"}"#),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_have_envoy_encodings() {
    let up = Upstream::start("up").await;
    let paths = r#"[["request","path"],["request","url_path"],["request","method"],["request","host"],["request","scheme"],["request","protocol"],["request","id"],["source","address"],["destination","port"],["connection","mtls"],["connection","id"],["plugin_name"],["plugin_root_id"],["plugin_vm_id"],["listener_name"],["node","id"],["node","cluster"],["node","metadata","region"],["node","metadata","weight"],["no","such"]]"#;
    let filters = filter(
        "props",
        "properties",
        "wasm32-unknown-unknown",
        &format!(
            "        root_id: the-root\n        vm_id: the-vm\n        config: {{ properties: {paths} }}\n"
        ),
    );
    let node = "node: { id: weft-7, cluster: edge, metadata: { region: eu-west, weight: 3 } }\nwasm: { callback_deadline: 250ms }\n";
    let weft = Weft::start(&config(&filters, &up, node), 1);
    let addr = weft.addr("main");
    get(
        &http1_client(),
        addr,
        "/p/q?x=1",
        &[("x-request-id", "abc")],
    )
    .await;
    let h = &up.requests()[0].headers;
    let prop = |name: &str| {
        h[format!("x-prop-{name}").as_str()]
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(prop("request.path"), "/p/q?x=1");
    assert_eq!(prop("request.url_path"), "/p/q");
    assert_eq!(prop("request.method"), "GET");
    assert_eq!(prop("request.host"), addr.to_string());
    assert_eq!(prop("request.scheme"), "http");
    assert_eq!(prop("request.protocol"), "HTTP/1.1");
    assert_eq!(prop("request.id"), "abc");
    assert!(
        prop("source.address").starts_with("127.0.0.1:"),
        "{}",
        prop("source.address")
    );
    let port = format!("hex:{}", hex(&i64::from(addr.port()).to_le_bytes()));
    assert_eq!(
        prop("destination.port"),
        port,
        "integers are 8-byte little-endian"
    );
    assert_eq!(prop("connection.mtls"), "hex:00", "booleans are one byte");
    assert!(
        prop("connection.id").starts_with("hex:"),
        "an 8-byte integer: {}",
        prop("connection.id")
    );
    assert_eq!(prop("connection.id").len(), 4 + 16);
    assert_eq!(prop("plugin_name"), "props");
    assert_eq!(prop("plugin_root_id"), "the-root");
    assert_eq!(prop("plugin_vm_id"), "the-vm");
    assert_eq!(prop("listener_name"), "main");
    assert_eq!(prop("node.id"), "weft-7");
    assert_eq!(prop("node.cluster"), "edge");
    assert_eq!(prop("node.metadata.region"), "eu-west");
    assert_eq!(
        prop("node.metadata.weight"),
        "3",
        "non-string metadata is JSON text"
    );
    assert_eq!(prop("no.such"), "missing");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_defined_by_a_filter_are_exported() {
    let up = Upstream::start("up").await;
    let filters = filter("metrics", "metrics", "wasm32-wasip1", "");
    let weft = Weft::start(&config(&filters, &up, ""), 2);
    let client = http1_client();
    for i in 1..=5 {
        let path = format!("/{}", "x".repeat(i));
        get(&client, weft.addr("main"), &path, &[]).await;
    }
    let counters: Vec<u64> = up
        .requests()
        .iter()
        .map(|r| {
            r.headers["x-wasm-counter"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(counters, [1, 2, 3, 4, 5]);
    assert_eq!(weft.metric("wasm_requests_total"), 5.0);
    assert_eq!(
        weft.metric("wasm_last_path_len"),
        6.0,
        "gauge holds the last value"
    );
    assert_eq!(weft.metric("wasm_path_len_count"), 5.0);
    assert_eq!(weft.metric("wasm_path_len_sum"), 20.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_data_cas_counts_every_request_across_workers() {
    let up = Upstream::start("up").await;
    let filters = filter("shared", "shared_data", "wasm32-unknown-unknown", "");
    let weft = Weft::start(&config(&filters, &up, ""), 2);
    let addr = weft.addr("main");
    let total = 2000;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        tasks.push(tokio::spawn(async move {
            let client = http1_client();
            let mut seen = Vec::new();
            for _ in 0..total / 16 {
                let reply = get(&client, addr, "/", &[]).await;
                seen.push(
                    reply
                        .header("x-shared-counter")
                        .unwrap()
                        .parse::<u64>()
                        .unwrap(),
                );
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let expected: Vec<u64> = (1..=total as u64).collect();
    assert_eq!(
        all, expected,
        "every request wrote a distinct value, ending at {total}"
    );
    assert!(weft.metric(r#"weft_downstream_cx_total{listener="main"}"#) >= 16.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_functions_are_not_found_and_wasi_logs_reach_the_log() {
    let up = Upstream::start("up").await;
    let filters = format!(
        "{}{}",
        filter("foreign", "foreign", "wasm32-unknown-unknown", ""),
        filter("wasi", "wasi_log", "wasm32-wasip1", "")
    );
    let weft = Weft::start(&config(&filters, &up, ""), 1);
    assert_eq!(
        get(&http1_client(), weft.addr("main"), "/", &[])
            .await
            .status,
        200
    );
    let h = &up.requests()[0].headers;
    assert_eq!(h["x-foreign"], "not_found");
    assert_eq!(h["x-wasi-time-ok"], "1");
    assert_eq!(h["x-wasi-home"], "absent", "filters see no environment");
    weft.wait_for_log("wasi stdout line").await;
    weft.wait_for_log("wasi stderr line").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abi_0_2_0_module_runs() {
    let up = Upstream::start("up").await;
    let filters = filter("old", "abi_020", "wasm32-unknown-unknown", "");
    let weft = Weft::start(&config(&filters, &up, ""), 1);
    assert_eq!(
        get(&http1_client(), weft.addr("main"), "/", &[])
            .await
            .status,
        200
    );
    assert_eq!(up.requests()[0].headers["x-abi"], "0.2.0");
}

#[test]
fn bad_modules_and_configs_are_refused_with_their_reason() {
    let dir = TempDir::new();
    let not_wasm = dir.path().join("not.wasm");
    std::fs::write(&not_wasm, b"hello").unwrap();
    let cases = [
        (
            not_wasm.display().to_string(),
            String::new(),
            "is not valid WebAssembly",
        ),
        (
            fixture("abi_010", "wasm32-unknown-unknown")
                .display()
                .to_string(),
            String::new(),
            "is not a proxy-wasm module: it exports neither proxy_abi_version_0_2_1 nor proxy_abi_version_0_2_0",
        ),
        (
            fixture("headers", "wasm32-unknown-unknown")
                .display()
                .to_string(),
            format!("        sha256: {}\n", "0".repeat(64)),
            "but the config pins 0000",
        ),
        (
            fixture("headers", "wasm32-wasip1").display().to_string(),
            "        config: { no_such_option: 1 }\n".to_string(),
            "on_configure returned false: the plugin rejected its configuration",
        ),
    ];
    for (module, extra, want) in cases {
        let yaml = format!(
            "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    filters:\n      - name: f\n        module: {module}\n{extra}    routes: []\n"
        );
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = std::process::Command::new(weft_bin())
            .args(["validate", path.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{module}: {err}");
        assert!(
            err.contains("listeners[0].filters[0]: filter \"f\""),
            "{err}"
        );
        assert!(err.contains(want), "{module}: want {want:?} in {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_call_pauses_the_request_and_its_response_resumes_it() {
    for target in TARGETS {
        let up = Upstream::start("up").await;
        let auth = Upstream::start("auth").await;
        let refused = refused_addr();
        let dead = refused.addr;
        let yaml = format!(
            "admin: {{ address: 127.0.0.1:0 }}\nwasm: {{ callback_deadline: 250ms }}\nlisteners:\n{}{}clusters:\n{}{}{}",
            format_args!(
                "  - name: main\n    address: 127.0.0.1:0\n    filters:\n{}    routes:\n      - cluster: up\n",
                filter(
                    "call",
                    "http_call",
                    target,
                    "        config: { cluster: auth, path: /check }\n"
                )
            ),
            format_args!(
                "  - name: broken\n    address: 127.0.0.1:0\n    filters:\n{}    routes:\n      - cluster: up\n",
                filter(
                    "call",
                    "http_call",
                    target,
                    "        config: { cluster: dead, path: /check }\n"
                )
            ),
            cluster_yaml("up", &[up.addr], ""),
            cluster_yaml("auth", &[auth.addr], ""),
            cluster_yaml("dead", &[dead], "    connect_timeout: 200ms\n"),
        );
        let weft = Weft::start(&yaml, 2);
        let client = http1_client();
        let reply = get(&client, weft.addr("main"), "/resource", &[]).await;
        assert_eq!(reply.status, 200, "{target}: {}", reply.text());
        let call = &auth.requests()[0];
        assert_eq!(call.method, "GET");
        assert_eq!(call.path, "/check");
        assert_eq!(
            call.headers["host"], "auth.test",
            "{target}: :authority becomes Host"
        );
        assert_eq!(call.headers["x-from"], "wasm");
        let seen = &up.requests()[0].headers;
        assert_eq!(seen["x-call-status"], "200", "{target}");
        assert_eq!(seen["x-call-body"], "auth /check", "{target}");

        // Missing :authority is BAD_ARGUMENT, as in Envoy.
        let bad = get(
            &client,
            weft.addr("main"),
            "/",
            &[("x-call-missing-authority", "1")],
        )
        .await;
        assert_eq!(bad.status, 400, "{target}");
        assert_eq!(bad.header("x-dispatch-error"), Some("BadArgument"));

        // A call that cannot connect is delivered as a failure; the filter answers 503.
        let failed = get(&client, weft.addr("broken"), "/", &[]).await;
        assert_eq!(
            (failed.status, failed.text().as_str()),
            (503, "call failed\n"),
            "{target}"
        );
        assert_eq!(
            up.request_count(),
            1,
            "{target}: only the first request went upstream"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_call_to_an_unknown_cluster_is_bad_argument() {
    // Checked at dispatch time (as in Envoy), so the filter loads; its dispatch gets
    // BadArgument and the fixture answers 500 "dispatch failed".
    let up = Upstream::start("up").await;
    let filters = filter(
        "call",
        "http_call",
        "wasm32-unknown-unknown",
        "        config: { cluster: nowhere }\n",
    );
    let weft = Weft::start(&config(&filters, &up, ""), 1);
    let reply = get(&http1_client(), weft.addr("main"), "/", &[]).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (500, "dispatch failed\n")
    );
    assert_eq!(up.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_fire_at_the_period_the_filter_set() {
    let up = Upstream::start("up").await;
    let filters = filter("tick", "tick", "wasm32-wasip1", "");
    let weft = Weft::start(&config(&filters, &up, ""), 2);
    let client = http1_client();
    let first: u64 = get(&client, weft.addr("main"), "/", &[])
        .await
        .header("x-ticks")
        .unwrap()
        .parse()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let later: u64 = get(&client, weft.addr("main"), "/", &[])
        .await
        .header("x-ticks")
        .unwrap()
        .parse()
        .unwrap();
    // 50 ms period on each of 2 workers: about 40 ticks a second; allow a wide margin for a
    // loaded machine, but ticks must be firing on both workers' root contexts.
    let fired = later - first;
    assert!((15..=50).contains(&fired), "{fired} ticks in 1 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_queue_items_reach_the_registering_root_context() {
    let up = Upstream::start("up").await;
    let filters = filter("queue", "queue", "wasm32-unknown-unknown", "");
    let weft = Weft::start(&config(&filters, &up, ""), 2);
    let client = http1_client();
    let sent = 10;
    for i in 0..sent {
        assert_eq!(
            get(&client, weft.addr("main"), &format!("/item/{i}"), &[])
                .await
                .status,
            200
        );
    }
    assert!(
        up.requests()
            .iter()
            .all(|r| r.headers["x-queue-enqueue"] == "ok"),
        "every enqueue succeeded"
    );
    // Each item is appended to "queue.log" by on_queue_ready; the header shows the count.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = get(&client, weft.addr("main"), "/count", &[]).await;
        let lines: u64 = reply.header("x-queue-log-len").unwrap().parse().unwrap();
        // The /count requests are enqueued too; at least the 10 items must have arrived.
        if lines >= sent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {lines} of {sent} queue items delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_chooses_the_cluster_through_the_routing_contract() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let yaml = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nwasm: {{ callback_deadline: 250ms }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    filters:\n{}    routes:\n      - {{ name: default, cluster: v1, timeout: 5s }}\nclusters:\n{}{}",
        filter("router", "choose_cluster", "wasm32-unknown-unknown", ""),
        cluster_yaml("v1", &[v1.addr], ""),
        cluster_yaml("v2", &[v2.addr], ""),
    );
    let weft = Weft::start(&yaml, 1);
    let client = http1_client();
    let addr = weft.addr("main");
    assert_eq!(
        get(&client, addr, "/", &[]).await.header("x-upstream"),
        Some("v1"),
        "no choice: the route"
    );
    assert_eq!(
        get(&client, addr, "/", &[("x-route-to", "v2")])
            .await
            .header("x-upstream"),
        Some("v2"),
        "weft.cluster overrides the route"
    );
    let unknown = get(&client, addr, "/", &[("x-route-to", "nope")]).await;
    assert_eq!(unknown.status, 500);
    assert_eq!(
        unknown.text(),
        "a filter chose cluster \"nope\", which does not exist\n"
    );
    assert_eq!(
        weft.metric(
            r#"weft_requests_total{listener="main",route="(filter)",cluster="v2",code_class="2xx"}"#
        ),
        1.0
    );
}

/// POSTs `body` to `path` and returns (status, response body).
async fn post(addr: std::net::SocketAddr, path: &str, body: Vec<u8>) -> (u16, bytes::Bytes) {
    let req = http::Request::post(format!("http://{addr}{path}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let reply = send(&http1_client(), req).await;
    (reply.status, reply.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_filters_rewrite_request_and_response_bodies() {
    for target in TARGETS {
        let up = Upstream::start("up").await;
        let filters = filter("body", "body", target, "");
        let weft = Weft::start(&config(&filters, &up, ""), 2);
        // The upstream echoes the body it got: uppercased by the request body phase,
        // then wrapped by the response body phase.
        let (status, body) = post(weft.addr("main"), "/echo-body", b"hello, body!".to_vec()).await;
        assert_eq!(status, 200, "{target}");
        assert_eq!(&body[..], b"wrapped:HELLO, BODY!", "{target}");
        // A body in many chunks: the filter holds them all and sees the whole body once.
        let big: Vec<u8> = (0..200_000u32)
            .map(|i| b"abcdefghij"[(i % 10) as usize])
            .collect();
        let (status, body) = post(weft.addr("main"), "/echo-body", big.clone()).await;
        assert_eq!(status, 200);
        let mut expected = b"wrapped:".to_vec();
        expected.extend(big.to_ascii_uppercase());
        assert_eq!(body.len(), expected.len());
        assert!(body[..] == expected[..], "{target}: rewritten body differs");
    }
}

/// A response body that arrives with its head goes through the body phase before the head
/// is written, so the client gets its exact length (not chunked), also when a filter
/// changed it; over HTTP/2 as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_body_keeps_an_exact_length_through_the_filters() {
    let up = Upstream::start("up").await;
    let filters = format!(
        "{}{}",
        filter("noop", "noop", "wasm32-unknown-unknown", ""),
        filter("body", "body", "wasm32-unknown-unknown", "")
    );
    let weft = Weft::start(&config(&filters, &up, ""), 1);
    for client in [http1_client(), http2_client()] {
        let reply = get(&client, weft.addr("main"), "/", &[]).await;
        assert_eq!(reply.status, 200);
        assert!(reply.text().starts_with("wrapped:"), "{}", reply.text());
        // The body phase ran once: no second pass over a body already filtered.
        assert!(!reply.text()[8..].contains("wrapped:"), "{}", reply.text());
        let length = reply.header("content-length").map(str::to_string);
        assert_eq!(
            length,
            Some(reply.body.len().to_string()),
            "{:?}",
            reply.headers
        );
        assert_eq!(reply.header("transfer-encoding"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_body_past_the_limit_is_413() {
    let up = Upstream::start("up").await;
    let filters = filter("body", "body", "wasm32-unknown-unknown", "");
    let weft = Weft::start(
        &config(
            &filters,
            &up,
            "wasm: { max_buffered_body_kb: 64, callback_deadline: 250ms }\n",
        ),
        1,
    );
    let (status, body) = post(weft.addr("main"), "/echo-body", vec![b'x'; 1 << 20]).await;
    assert_eq!(status, 413);
    // The local reply goes through the response body phase too (the filter wraps it).
    assert_eq!(
        &body[..],
        b"wrapped:request body larger than the filters may hold (wasm.max_buffered_body_kb)\n"
    );
    // Small bodies still pass.
    let (status, body) = post(weft.addr("main"), "/echo-body", b"ok".to_vec()).await;
    assert_eq!((status, &body[..]), (200, &b"wrapped:OK"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_through_a_filter_chain_that_does_not_hold_them() {
    let up = Upstream::start("up").await;
    let filters = format!(
        "{}{}",
        filter("noop", "noop", "wasm32-unknown-unknown", ""),
        filter("headers", "headers", "wasm32-wasip1", "")
    );
    let weft = Weft::start(&config(&filters, &up, ""), 1);
    let before = weft.peak_rss_kib();
    let size = 256 << 20;
    let (status, body) = post(weft.addr("main"), "/echo-body", vec![b'z'; size]).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), size);
    let peak = weft.peak_rss_kib();
    assert!(
        peak < before + 64 * 1024,
        "peak RSS grew from {before} to {peak} KiB streaming 256 MiB both ways"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_grpc_call_to_an_h2_upstream_resumes_the_request() {
    for target in TARGETS {
        let up = Upstream::start("up").await;
        let grpc = Upstream::start("grpc").await;
        let listener = |name: &str, method: &str| {
            format!(
                "  - name: {name}\n    address: 127.0.0.1:0\n    filters:\n{}    routes:\n      - cluster: up\n",
                filter(
                    "grpc",
                    "grpc",
                    target,
                    &format!("        config: {{ cluster: echo, method: {method} }}\n")
                )
            )
        };
        let yaml = format!(
            "admin: {{ address: 127.0.0.1:0 }}\nwasm: {{ callback_deadline: 250ms }}\nlisteners:\n{}{}clusters:\n{}{}",
            listener("main", "Say"),
            listener("failing", "SayFail"),
            cluster_yaml("up", &[up.addr], ""),
            cluster_yaml("echo", &[grpc.addr], "    protocol: http2\n"),
        );
        let weft = Weft::start(&yaml, 2);
        let client = http1_client();
        let reply = get(&client, weft.addr("main"), "/", &[]).await;
        assert_eq!(reply.status, 200, "{target}: {}", reply.text());
        let call = &grpc.requests()[0];
        assert_eq!(call.method, "POST");
        assert_eq!(call.path, "/test.Echo/Say");
        assert_eq!(call.version, http::Version::HTTP_2);
        assert_eq!(call.headers["content-type"], "application/grpc");
        assert_eq!(call.headers["te"], "trailers");
        let seen = &up.requests()[0].headers;
        assert_eq!(seen["x-grpc-status"], "0", "{target}");
        assert_eq!(seen["x-grpc-message"], "echo:hello", "{target}");

        // A failing call arrives as its status, through on_grpc_close.
        let reply = get(&client, weft.addr("failing"), "/", &[]).await;
        assert_eq!(reply.status, 200, "{target}");
        let seen = &up.requests()[1].headers;
        assert_eq!(seen["x-grpc-status"], "7", "{target}: PERMISSION_DENIED");
        assert_eq!(
            seen["x-grpc-message"], "",
            "{target}: no message on failure"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_go_through_the_trailer_phases_both_ways() {
    use http_body_util::BodyExt;
    let grpc = Upstream::start("grpc").await;
    let yaml = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nwasm: {{ callback_deadline: 250ms }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    filters:\n{}    routes:\n      - cluster: grpc\nclusters:\n{}",
        filter("trailers", "trailers", "wasm32-wasip1", ""),
        cluster_yaml("grpc", &[grpc.addr], "    protocol: http2\n"),
    );
    let weft = Weft::start(&yaml, 1);
    // A gRPC-style request over h2 with a request trailer.
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().unwrap());
    let frames = vec![
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from_static(
            b"\0\0\0\0\x02hi",
        ))),
        Ok(hyper::body::Frame::trailers(trailers)),
    ];
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let req = http::Request::post(format!("http://{}/test.Echo/Say", weft.addr("main")))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("response trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(
        trailers["echo-x-checksum"], "abc",
        "the client's trailer reached the upstream"
    );
    assert_eq!(
        trailers["echo-x-wasm-request-trailer"], "seen",
        "the request trailer phase ran"
    );
    assert_eq!(
        trailers["echo-x-wasm-checksum"], "abc",
        "the filter read the request trailer"
    );
    // Both ways, the body phase had its end of stream before the trailers phase ran.
    assert_eq!(trailers["echo-x-wasm-body-ended-first"], "true");
    assert_eq!(trailers["x-wasm-body-ended-first"], "true");
    assert_eq!(
        trailers["x-wasm-response-trailer"], "seen",
        "the response trailer phase ran"
    );
    assert_eq!(trailers["x-wasm-saw-grpc-status"], "0");
    assert_eq!(&collected.to_bytes()[5..], b"echo:hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_stream_sends_messages_and_receives_every_event() {
    for target in TARGETS {
        let up = Upstream::start("up").await;
        let grpc = Upstream::start("grpc").await;
        let yaml = format!(
            "admin: {{ address: 127.0.0.1:0 }}\nwasm: {{ callback_deadline: 250ms }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    filters:\n{}    routes:\n      - cluster: up\nclusters:\n{}{}",
            filter(
                "stream",
                "grpc_stream",
                target,
                "        config: { cluster: echo }\n"
            ),
            cluster_yaml("up", &[up.addr], ""),
            cluster_yaml("echo", &[grpc.addr], "    protocol: http2\n"),
        );
        let weft = Weft::start(&yaml, 2);
        let client = http1_client();
        let reply = get(&client, weft.addr("main"), "/", &[]).await;
        assert_eq!(reply.status, 200, "{target}: {}", reply.text());
        let seen = &up.requests()[0].headers;
        assert_eq!(seen["x-stream-messages"], "echo:a,echo:b", "{target}");
        assert_eq!(seen["x-stream-status"], "0", "{target}");
        assert_eq!(seen["x-stream-initial"], "1", "{target}");
        assert_eq!(seen["x-stream-trailing"], "1", "{target}");
        assert_eq!(grpc.requests()[0].path, "/test.Echo/Chat");

        // A cancelled stream delivers nothing; the request goes on.
        let reply = get(&client, weft.addr("main"), "/", &[("x-cancel", "1")]).await;
        assert_eq!(reply.status, 200, "{target}");
        let seen = &up.requests()[1].headers;
        assert_eq!(seen["x-stream-cancelled"], "1");
        assert!(
            seen.get("x-stream-status").is_none(),
            "{target}: no callback after cancel"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_request_is_resumed_from_on_tick() {
    let up = Upstream::start("up").await;
    let filters = filter("resume", "resume_on_tick", "wasm32-unknown-unknown", "");
    let weft = Weft::start(&config(&filters, &up, ""), 2);
    let client = http1_client();
    for _ in 0..5 {
        let started = Instant::now();
        let reply = get(&client, weft.addr("main"), "/", &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "resumed within a few ticks"
        );
    }
    assert_eq!(up.request_count(), 5);
    assert_eq!(up.requests()[0].headers["x-paused-by-tick"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_nothing_resumes_ends_with_500_after_the_pause_timeout() {
    let up = Upstream::start("up").await;
    // http_call to a cluster whose endpoint never answers (accepts, reads, waits): the
    // call's own timeout (5 s) is longer than the pause timeout (300 ms).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (s, _) = listener.accept().await.unwrap();
            held.push(s);
        }
    });
    let yaml = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nwasm: {{ callback_deadline: 250ms, pause_timeout: 300ms }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    filters:\n{}    routes:\n      - cluster: up\nclusters:\n{}{}",
        filter(
            "call",
            "http_call",
            "wasm32-unknown-unknown",
            "        config: { cluster: silent, path: /check }\n"
        ),
        cluster_yaml("up", &[up.addr], ""),
        cluster_yaml("silent", &[silent], ""),
    );
    let weft = Weft::start(&yaml, 1);
    let started = Instant::now();
    let reply = get(&http1_client(), weft.addr("main"), "/", &[]).await;
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.text(),
        "filter \"call\" paused the request and nothing resumed it within 300ms\n"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(up.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_log_runs_for_every_request_also_when_the_client_goes_away() {
    use tokio::io::AsyncWriteExt;
    let up = Upstream::start("up").await;
    let filters = filter("log", "log_counter", "wasm32-unknown-unknown", "");
    let weft = Weft::start(&config(&filters, &up, ""), 1);
    let addr = weft.addr("main");
    let client = http1_client();
    assert_eq!(
        get(&client, addr, "/", &[]).await.header("x-log-count"),
        Some("0")
    );
    // A client that leaves while its request waits on a slow upstream.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nhost: a\r\nx-delay-ms: 1500\r\n\r\n")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.request_count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stream);
    // Dropping the connection cancels that request, which runs on_log at once. One probe
    // then sees exactly two logged requests: the first one and the abandoned one (the
    // probe itself is logged only after its response).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probe = get(&client, addr, "/", &[]).await;
    assert_eq!(
        probe.header("x-log-count"),
        Some("2"),
        "on_log ran for the abandoned request"
    );
}
