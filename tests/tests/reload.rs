//! Hot reload end to end: a real weft reloads its config and modules when the files change
//! (in place, editor-style rename, ConfigMap-style symlink swap), on SIGHUP and on
//! `POST /reload`, loses no request while doing it, and refuses bad input while the old
//! config keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use weft_e2e::*;

const TARGET: &str = "wasm32-unknown-unknown";

/// Replaces `path` the way editors and build scripts do: write a temporary file next to
/// it, then rename it over the old one.
fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn stamp(version: u32) -> Vec<u8> {
    std::fs::read(fixture(&format!("stamp_v{version}"), TARGET)).unwrap()
}

/// A config with one listener whose chain is `filters` (YAML under `filters:`), in front of
/// `upstream`.
fn config(filters: &str, upstream: &Upstream) -> String {
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\nwasm: {{ callback_deadline: 250ms }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    filters:\n{filters}    routes:\n      - cluster: up\nclusters:\n{}",
        cluster_yaml("up", &[upstream.addr], "")
    )
}

/// Weft on a config whose only filter is the module file `module` (a path in a directory
/// of the test's), with the config file next to it.
fn start_with_module(dir: &Path, upstream: &Upstream, extra_args: &[&str]) -> (Weft, PathBuf) {
    let module = dir.join("filter.wasm");
    std::fs::write(&module, stamp(1)).unwrap();
    let filters = format!(
        "      - name: stamp\n        module: {}\n",
        module.display()
    );
    let mut args = vec!["--workers", "2"];
    args.extend_from_slice(extra_args);
    let weft = Weft::start_with(&config(&filters, upstream), &args);
    (weft, module)
}

/// The `x-module-version` values of one response from `addr`.
async fn versions(client: &TestClient, addr: std::net::SocketAddr) -> (u16, Vec<String>) {
    let req = http::Request::get(format!("http://{addr}/"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let res = client.request(req).await.expect("request through weft");
    let status = res.status().as_u16();
    let values = res
        .headers()
        .get_all("x-module-version")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    (status, values)
}

/// Polls until a response carries `version` (at most `within`); returns how long it took.
async fn wait_for_version(weft: &Weft, version: &str, within: Duration) -> Duration {
    let client = http1_client();
    let start = Instant::now();
    loop {
        let (_, seen) = versions(&client, weft.addr("main")).await;
        if seen == [version] {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{version} not served within {within:?} (still {seen:?}); logs:\n{}",
            weft.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_swaps_under_load_lose_no_request() {
    let up = Upstream::start("up").await;
    let dir = TempDir::new();
    let (weft, module) = start_with_module(dir.path(), &up, &[]);
    assert_eq!(versions(&http1_client(), weft.addr("main")).await.1, ["v1"]);

    // Clients send requests back to back for the whole test, each on its own keep-alive
    // connection, and check every answer.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..10 {
        let (stop, addr) = (stop.clone(), weft.addr("main"));
        clients.push(tokio::spawn(async move {
            let client = http1_client();
            let mut answered = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let (status, seen) = versions(&client, addr).await;
                assert_eq!(status, 200, "a request failed during a reload");
                assert!(
                    seen == ["v1"] || seen == ["v2"],
                    "a response from not exactly one version: {seen:?}"
                );
                answered += 1;
                // About 2,000 requests/s across the clients.
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            answered
        }));
    }

    let load_started = Instant::now();
    let mut took = Vec::new();
    for i in 0..20u32 {
        let version = 2 - (i % 2); // v2, v1, v2, ...
        replace_file(&module, &stamp(version));
        took.push(wait_for_version(&weft, &format!("v{version}"), Duration::from_secs(1)).await);
    }
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        answered += client.await.expect("a client failed");
    }
    assert!(answered > 500, "only {answered} requests were sent");
    let rate = answered as f64 / load_started.elapsed().as_secs_f64();
    took.sort();
    println!(
        "20 module swaps under load: {answered} requests ({rate:.0}/s), all answered; new version seen after median {:?}, max {:?}",
        took[10], took[19]
    );
    assert_eq!(weft.metric("weft_reload_total{result=\"ok\"}"), 20.0);
    assert_eq!(weft.metric("weft_reload_total{result=\"error\"}"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reloads_are_refused_and_the_old_version_keeps_serving() {
    let up = Upstream::start("up").await;
    let dir = TempDir::new();
    let (weft, module) = start_with_module(dir.path(), &up, &["--no-watch"]);
    let good_config = std::fs::read_to_string(weft.config_path()).unwrap();
    let client = http1_client();

    let refused = |expect: &'static str| {
        let (status, body) = weft.admin_post("/reload");
        assert_eq!(status, 422, "{body}");
        assert!(body.contains(expect), "{expect:?} not in {body}");
        let (_, filters) = weft.admin_get("/filters");
        assert!(filters.contains("\"result\": \"error\""), "{filters}");
        assert!(
            filters.contains(expect),
            "{expect:?} not in /filters: {filters}"
        );
    };

    // A module that is not WebAssembly.
    replace_file(&module, b"not wasm at all");
    refused("is not valid WebAssembly");
    assert_eq!(
        versions(&client, weft.addr("main")).await,
        (200, vec!["v1".into()])
    );
    std::fs::write(&module, stamp(1)).unwrap();

    // A module whose sha256 is not the pinned one.
    let pinned = good_config.replace(
        "        module:",
        &format!("        sha256: {}\n        module:", "ab".repeat(32)),
    );
    replace_file(&weft.config_path(), pinned.as_bytes());
    refused("but the config pins abab");
    assert_eq!(versions(&client, weft.addr("main")).await.1, ["v1"]);

    // A route to a cluster that does not exist.
    let unknown = good_config.replace("      - cluster: up", "      - cluster: nowhere");
    replace_file(&weft.config_path(), unknown.as_bytes());
    refused("no cluster named \\\"nowhere\\\"");
    assert_eq!(versions(&client, weft.addr("main")).await.1, ["v1"]);

    // A filter whose on_configure returns false (the headers fixture refuses unknown fields).
    let rejecting = good_config.replace(
        &format!("        module: {}\n", module.display()),
        &format!(
            "        module: {}\n        config: {{ no_such_field: 1 }}\n",
            fixture("headers", TARGET).display()
        ),
    );
    assert_ne!(rejecting, good_config);
    replace_file(&weft.config_path(), rejecting.as_bytes());
    refused("on_configure");
    assert_eq!(versions(&client, weft.addr("main")).await.1, ["v1"]);

    // A listener moved to another address: applied at start only.
    let moved = good_config.replace(
        "address: 127.0.0.1:0\n    filters",
        "address: 127.0.0.2:0\n    filters",
    );
    assert_ne!(moved, good_config);
    replace_file(&weft.config_path(), moved.as_bytes());
    refused("restart weft to change it");

    assert_eq!(weft.metric("weft_reload_total{result=\"error\"}"), 5.0);
    // Back to a good config and a new module: accepted.
    replace_file(&weft.config_path(), good_config.as_bytes());
    replace_file(&module, &stamp(2));
    let (status, body) = weft.admin_post("/reload");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"result\": \"ok\""), "{body}");
    assert_eq!(versions(&client, weft.addr("main")).await.1, ["v2"]);
    assert_eq!(weft.metric("weft_reload_total{result=\"ok\"}"), 1.0);
    let (_, filters) = weft.admin_get("/filters");
    let sha = sha256_hex(&stamp(2));
    assert!(
        filters.contains(&sha),
        "/filters lacks the new module's sha256: {filters}"
    );

    // Mutations are POST only; reads are GET only.
    assert_eq!(weft.admin_get("/reload").0, 405);
    assert_eq!(weft.admin_post("/filters").0, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_module_seen_by_the_watcher_is_shown_on_the_admin_endpoint() {
    let up = Upstream::start("up").await;
    let dir = TempDir::new();
    let (weft, module) = start_with_module(dir.path(), &up, &[]);
    replace_file(&module, b"\0asm garbage");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, dump) = weft.admin_get("/config_dump");
        if dump.contains("\"trigger\": \"file change\"") {
            assert!(dump.contains("\"result\": \"error\""), "{dump}");
            assert!(dump.contains("filter.wasm"), "{dump}");
            break;
        }
        assert!(Instant::now() < deadline, "no reload seen: {dump}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(versions(&http1_client(), weft.addr("main")).await.1, ["v1"]);
    // Fixed: the next change reloads.
    replace_file(&module, &stamp(2));
    wait_for_version(&weft, "v2", Duration::from_secs(2)).await;
}

/// A config with one direct-response route answering `body`.
fn direct_config(body: &str) -> String {
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - direct_response: {{ status: 200, body: {body} }}\n"
    )
}

async fn wait_for_body(weft: &Weft, body: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let reply = get(&http1_client(), weft.addr("main"), "/", &[]).await;
        if reply.text() == body {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {:?}, not {body:?}; logs:\n{}",
            reply.text(),
            weft.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_style_rename_reloads_the_config() {
    let weft = Weft::start(&direct_config("first"), 1);
    wait_for_body(&weft, "first").await;
    replace_file(&weft.config_path(), direct_config("second").as_bytes());
    wait_for_body(&weft, "second").await;
    // An in-place write is seen as well.
    std::fs::write(weft.config_path(), direct_config("third")).unwrap();
    wait_for_body(&weft, "third").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_symlink_swap_reloads_the_config() {
    // The layout Kubernetes gives a ConfigMap volume: weft.yaml -> ..data/weft.yaml,
    // ..data -> ..<timestamp>/; an update writes a new timestamped directory, points a new
    // symlink at it, renames that over ..data, and removes the old directory.
    use std::os::unix::fs::symlink;
    let dir = TempDir::new();
    let root = dir.path();
    std::fs::create_dir(root.join("..2026_a")).unwrap();
    std::fs::write(root.join("..2026_a/weft.yaml"), direct_config("from-a")).unwrap();
    symlink("..2026_a", root.join("..data")).unwrap();
    symlink("..data/weft.yaml", root.join("weft.yaml")).unwrap();
    let config = root.join("weft.yaml");
    let weft = Weft::start_args(
        &[
            "run",
            "--workers",
            "1",
            "--config",
            config.to_str().unwrap(),
        ],
        1,
    );
    wait_for_body(&weft, "from-a").await;

    std::fs::create_dir(root.join("..2026_b")).unwrap();
    std::fs::write(root.join("..2026_b/weft.yaml"), direct_config("from-b")).unwrap();
    symlink("..2026_b", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_a")).unwrap();
    wait_for_body(&weft, "from-b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_when_watching_is_off() {
    let weft = Weft::start_with(&direct_config("before"), &["--workers", "1", "--no-watch"]);
    std::fs::write(weft.config_path(), direct_config("after")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = get(&http1_client(), weft.addr("main"), "/", &[]).await;
    assert_eq!(
        reply.text(),
        "before",
        "--no-watch reloaded on a file change"
    );
    weft.signal(libc::SIGHUP);
    wait_for_body(&weft, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_reloads_a_rebuilt_filter() {
    let up = Upstream::start("up").await;
    let dir = TempDir::new();
    let module = dir.path().join("stamp.wasm");
    std::fs::write(&module, stamp(1)).unwrap();
    let upstream = up.addr.to_string();
    let weft = Weft::start_args(
        &[
            "run",
            "--workers",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--admin",
            "127.0.0.1:0",
            "--filter",
            module.to_str().unwrap(),
        ],
        1,
    );
    assert_eq!(versions(&http1_client(), weft.addr("main")).await.1, ["v1"]);
    replace_file(&module, &stamp(2));
    wait_for_version(&weft, "v2", Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_data_survives_a_reload_that_changes_a_filters_config() {
    // log_counter counts on_log calls in shared data; a reload that changes its config
    // (so its VMs are replaced) keeps the count, since shared data belongs to the process.
    let up = Upstream::start("up").await;
    let entry = |tag: &str| {
        format!(
            "      - name: counter\n        module: {}\n        config: {tag}\n",
            fixture("log_counter", TARGET).display()
        )
    };
    let weft = Weft::start_with(
        &config(&entry("one"), &up),
        &["--workers", "1", "--no-watch"],
    );
    let client = http1_client();
    for _ in 0..3 {
        get(&client, weft.addr("main"), "/", &[]).await;
    }
    std::fs::write(weft.config_path(), config(&entry("two"), &up)).unwrap();
    let (status, body) = weft.admin_post("/reload");
    assert_eq!(status, 200, "{body}");
    let reply = get(&client, weft.addr("main"), "/", &[]).await;
    // Three on_log calls before the reload; this response is written before its own.
    assert_eq!(reply.header("x-log-count"), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_on_the_version_it_started_with() {
    let up = Upstream::start("up").await;
    let dir = TempDir::new();
    let (weft, module) = start_with_module(dir.path(), &up, &["--no-watch"]);
    // The upstream holds this request 600 ms: the reload happens meanwhile.
    let addr = weft.addr("main");
    let slow =
        tokio::spawn(
            async move { get(&http1_client(), addr, "/slow", &[("x-delay-ms", "600")]).await },
        );
    tokio::time::sleep(Duration::from_millis(150)).await;
    replace_file(&module, &stamp(2));
    let (status, body) = weft.admin_post("/reload");
    assert_eq!(status, 200, "{body}");
    assert_eq!(versions(&http1_client(), addr).await.1, ["v2"]);
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, 200);
    // Its response phase ran in the v1 VM it started with, not the new one.
    assert_eq!(slow.header("x-module-version"), Some("v1"));
    let seen = up
        .requests()
        .into_iter()
        .find(|r| r.path == "/slow")
        .unwrap();
    assert_eq!(seen.headers["x-module-version"], "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_unchanged_filters_and_replaces_changed_ones() {
    let up = Upstream::start("up").await;
    let dir = TempDir::new();
    let (weft, module) = start_with_module(dir.path(), &up, &["--no-watch"]);
    let instance = || {
        let (_, filters) = weft.admin_get("/filters");
        let v: serde_json::Value = serde_json::from_str(&filters).unwrap();
        v["filters"][0]["instance"].as_u64().unwrap()
    };
    let first = instance();
    // A reload that changes a route but not the filter keeps its VMs.
    let config = std::fs::read_to_string(weft.config_path()).unwrap();
    let changed_route = config.replace(
        "      - cluster: up",
        "      - cluster: up\n        timeout: 7s",
    );
    assert_ne!(changed_route, config);
    replace_file(&weft.config_path(), changed_route.as_bytes());
    assert_eq!(weft.admin_post("/reload").0, 200);
    assert_eq!(instance(), first, "an unchanged filter got new VMs");
    // A new module gets new VMs.
    replace_file(&module, &stamp(2));
    assert_eq!(weft.admin_post("/reload").0, 200);
    assert_ne!(instance(), first);
    assert_eq!(versions(&http1_client(), weft.addr("main")).await.1, ["v2"]);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
