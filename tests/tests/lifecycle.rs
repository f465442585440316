//! The process as an operator sees it: the CLI, config errors, the embedded default config,
//! the admin endpoint, access logs, and graceful drain on SIGTERM.

use std::process::Command;
use std::time::{Duration, Instant};

use weft_e2e::*;

fn weft_cmd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(weft_bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_temp(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn version_and_default_config() {
    let (code, out, _) = weft_cmd(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("weft 0."), "{out}");
    let (code, out, _) = weft_cmd(&["default-config"]);
    assert_eq!(code, 0);
    assert!(out.contains("address: 127.0.0.1:8080"), "{out}");
}

#[test]
fn validate_lists_every_error_with_file_and_field() {
    let dir = weft_e2e_tempdir();
    let good = write_temp(
        dir.path(),
        "good.yaml",
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - cluster: api\nclusters:\n  - name: api\n    endpoints: [\"127.0.0.1:9000\"]\n",
    );
    let (code, out, _) = weft_cmd(&["validate", &good]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!("{good}: ok (1 listeners, 1 routes, 1 clusters)\n")
    );

    let bad = write_temp(
        dir.path(),
        "bad.yaml",
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - cluster: api\n      - cluster: nope\n      - { match: { path: { regex: '(' } }, cluster: api }\nclusters:\n  - name: api\n    endpoints: [\"no-port\"]\n",
    );
    let (code, _, err) = weft_cmd(&["validate", &bad]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        format!(r#"{bad}: clusters[0].endpoints[0]: "no-port" has no port: write host:port"#)
    );
    assert_eq!(
        lines[1],
        format!(r#"{bad}: listeners[0].routes[1].cluster: no cluster named "nope""#)
    );
    assert!(lines[2].starts_with(&format!(
        r#"{bad}: listeners[0].routes[2].match.path.regex: invalid regex "(""#
    )));

    let typo = write_temp(
        dir.path(),
        "typo.yaml",
        "listeners:\n  - name: main\n    adress: 127.0.0.1:0\n    routes: []\n",
    );
    let (code, _, err) = weft_cmd(&["validate", &typo]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "{typo}:3:5: listeners[0]: unknown field `adress`, expected one of"
        )),
        "{err}"
    );

    let (code, _, err) = weft_cmd(&["validate", "/nonexistent.yaml"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("/nonexistent.yaml: cannot read config file"),
        "{err}"
    );

    // `run` refuses the same config before binding anything.
    let (code, _, err) = weft_cmd(&["run", "--config", &bad]);
    assert_eq!(code, 2);
    assert!(
        err.contains(r#"listeners[0].routes[1].cluster: no cluster named "nope""#),
        "{err}"
    );
}

#[test]
fn a_busy_address_fails_the_start_with_its_name() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = weft_e2e_tempdir();
    let config = write_temp(
        dir.path(),
        "busy.yaml",
        &format!(
            "admin: {{ address: \"{addr}\" }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes: []\n"
        ),
    );
    let (code, _, err) = weft_cmd(&["run", "--config", &config]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("admin.address: cannot listen on {addr}")),
        "{err}"
    );
}

fn weft_e2e_tempdir() -> TempDir {
    TempDir::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_and_access_log() {
    let up = Upstream::start("up").await;
    let config = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n{}{}clusters:\n{}",
        listener_yaml("main", "", "      - { name: api, cluster: up }\n"),
        "  - name: quiet\n    address: 127.0.0.1:0\n    access_log: false\n    routes:\n      - { name: q, cluster: up }\n",
        cluster_yaml("up", &[up.addr], "")
    );
    let weft = Weft::start(&config, 2);
    let client = http1_client();
    assert_eq!(
        get(
            &client,
            weft.addr("main"),
            "/logged?secret=1",
            &[("x-request-id", "rid-1")]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        get(&client, weft.addr("quiet"), "/not-logged", &[])
            .await
            .status,
        200
    );

    assert_eq!(weft.admin_get("/ready"), (200, "ready\n".to_string()));
    let (status, dump) = weft.admin_get("/config_dump");
    assert_eq!(status, 200);
    let dump: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(dump["version"], 1);
    assert_eq!(dump["config"]["listeners"][0]["name"], "main");
    assert_eq!(
        dump["config"]["listeners"][0]["limits"]["max_request_headers"], 100,
        "defaults are filled in"
    );
    assert_eq!(dump["config"]["clusters"][0]["connect_timeout"], "5s");
    let (status, clusters) = weft.admin_get("/clusters");
    assert_eq!(status, 200);
    assert!(clusters.contains(&up.addr.to_string()), "{clusters}");
    let (status, _) = weft.admin_get("/nope");
    assert_eq!(status, 404);
    let post = raw_exchange(
        weft.admin(),
        b"POST /ready HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(post.text().starts_with("HTTP/1.1 405"), "{}", post.text());

    // Metrics: requests by listener/route/cluster/class, active connections, bytes.
    assert_eq!(
        weft.metric(
            r#"weft_requests_total{listener="main",route="api",cluster="up",code_class="2xx"}"#
        ),
        1.0
    );
    assert!(weft.metric(r#"weft_downstream_cx_total{listener="main"}"#) >= 1.0);
    assert!(weft.metric(r#"weft_request_duration_seconds_count{listener="main"}"#) >= 1.0);

    // Exactly one access-log line, for the listener that has them on.
    let deadline = Instant::now() + Duration::from_secs(5);
    let access: Vec<serde_json::Value> = loop {
        let lines: Vec<serde_json::Value> = weft
            .logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "weft::access")
            .collect();
        if !lines.is_empty() || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(access.len(), 1, "{access:?}");
    let f = &access[0]["fields"];
    assert_eq!(f["method"], "GET");
    assert_eq!(f["path"], "/logged", "the query string is not logged");
    assert_eq!(f["status"], 200);
    assert_eq!(f["route"], "api");
    assert_eq!(f["cluster"], "up");
    assert_eq!(f["upstream"], up.addr.to_string());
    assert_eq!(f["request_id"], "rid-1");
    assert_eq!(f["outcome"], "complete");
    assert!(f["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(f["bytes_out"], "up /logged".len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let up = Upstream::start("slow").await;
    let config = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n{}clusters:\n{}",
        listener_yaml("main", "", "      - cluster: slow\n"),
        cluster_yaml("slow", &[up.addr], "")
    );
    let mut weft = Weft::start_with(&config, &["--workers", "2", "--drain-timeout", "10s"]);
    let addr = weft.addr("main");
    let in_flight = tokio::spawn(async move {
        get(&http1_client(), addr, "/slow", &[("x-delay-ms", "1500")]).await
    });
    // Let the request reach the upstream, then ask weft to stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.request_count() == 0 {
        assert!(
            Instant::now() < deadline,
            "request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();
    weft.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New connections are no longer accepted.
    let refused = tokio::net::TcpStream::connect(addr).await;
    if let Ok(mut stream) = refused {
        // Accepted by the kernel backlog at most; weft must not serve it.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(0)) | Ok(Err(_))),
            "a connection after SIGTERM was served"
        );
    }
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "the in-flight request completes");
    assert_eq!(reply.text(), "slow /slow");
    let code = tokio::task::spawn_blocking(move || weft.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "weft exits 0 after draining");
    assert!(signalled.elapsed() < Duration::from_secs(5));
}

/// `weft run` with no config serves the embedded default: fixed ports 8080, 9901, 8081,
/// and the four built-in filters in front of the demo upstream. (The binary must have
/// been built after scripts/build-filters.sh, as scripts/test.sh does.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_config_runs_the_built_in_filters() {
    let (_, printed, _) = weft_cmd(&["default-config"]);
    assert!(
        printed.contains("module: builtin:auth"),
        "this weft was built without the built-in filters; run scripts/test.sh (it builds them first)"
    );
    let weft = Weft::start_args(&["run", "--workers", "1"], 1);
    let addr = weft.addr("main");
    assert_eq!(addr.to_string(), "127.0.0.1:8080");
    assert_eq!(weft.admin().to_string(), "127.0.0.1:9901");
    let client = http1_client();
    let welcome = get(&client, addr, "/", &[]).await;
    assert_eq!(welcome.status, 200);
    assert!(
        welcome.text().starts_with("Weft is running"),
        "{}",
        welcome.text()
    );
    // telemetry: every answer carries its trace id.
    assert_eq!(welcome.header("x-trace-id").map(str::len), Some(32));

    // auth: no credentials, or a bad token, is refused; ratelimit headers are there too.
    let refused = get(&client, addr, "/echo/hello", &[]).await;
    assert_eq!(refused.status, 401);
    assert!(refused.header("www-authenticate").is_some());
    assert_eq!(refused.header("x-ratelimit-limit"), Some("60"));
    let bad = get(
        &client,
        addr,
        "/echo/hello",
        &[("authorization", "Bearer not.a.token")],
    )
    .await;
    assert_eq!(bad.status, 401);
    assert!(
        bad.header("www-authenticate")
            .is_some_and(|v| v.contains("invalid_token")),
        "{:?}",
        bad.header("www-authenticate")
    );

    // With the demo API key: proxied, with the consumer and a traceparent.
    let echo = get(
        &client,
        addr,
        "/echo/hello?x=1",
        &[("x-api-key", "weft-demo-key")],
    )
    .await;
    assert_eq!(echo.status, 200);
    assert_eq!(echo.header("x-weft-demo"), Some("echo"));
    let remaining: u32 = echo
        .header("x-ratelimit-remaining")
        .unwrap()
        .parse()
        .unwrap();
    assert!(remaining < 60, "{remaining}");
    let body: serde_json::Value = serde_json::from_slice(&echo.body).unwrap();
    assert_eq!(body["path"], "/echo/hello");
    assert_eq!(body["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(body["headers"]["x-consumer"], "demo-app");
    assert!(
        body["headers"]["traceparent"]
            .as_str()
            .is_some_and(|t| t.starts_with("00-"))
    );

    // router: x-version: v2 goes to the demo-v2 cluster, which telemetry counts.
    let v2 = get(
        &client,
        addr,
        "/echo/v2",
        &[("x-api-key", "weft-demo-key"), ("x-version", "v2")],
    )
    .await;
    assert_eq!(v2.status, 200);
    assert_eq!(
        weft.metric("telemetry_route_none_cluster_demo_v2_rq_2xx_total"),
        1.0,
        "{}",
        weft.admin_get("/stats/prometheus").1
    );
    assert_eq!(
        weft.metric("telemetry_route_echo_cluster_demo_rq_2xx_total"),
        1.0
    );
    assert!(weft.metric("ratelimit_allowed_total") >= 4.0);

    let moved = get(&client, addr, "/old-echo/x", &[]).await;
    assert_eq!(moved.status, 301);
    assert_eq!(
        moved.header("location"),
        Some("http://127.0.0.1:8080/echo/x")
    );
}

#[test]
fn the_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/weft.yaml");
    let (code, out, err) = weft_cmd(&["validate", example]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with("ok (1 listeners, 5 routes, 3 clusters)\n"),
        "{out}"
    );
}
