//! Quick mode (`weft run --listen ADDR --upstream ADDR --filter F.wasm ...`) end to end: it
//! serves as the same setup written in YAML does, and `--print-config` prints that YAML.

use std::path::Path;
use std::process::{Command, Output};

use weft_e2e::*;

const TARGET: &str = "wasm32-unknown-unknown";
const HEADERS_CONFIG: &str = r#"{"tag":"quick","add_request":{"x-q":"1"}}"#;

/// Runs `weft` to completion with these arguments (no readiness wait).
fn run_weft(args: &[&str], dir: Option<&Path>) -> Output {
    let mut command = Command::new(weft_bin());
    command.args(args).env_remove("RUST_LOG");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command.output().expect("run weft")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The quick-mode flags of the headers + add_header chain, in front of `upstream`.
fn chain_args(upstream: &str, headers: &str, add_header: &str) -> Vec<String> {
    [
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        upstream,
        "--admin",
        "127.0.0.1:0",
        "--filter",
        headers,
        "--filter-config",
        HEADERS_CONFIG,
        "--filter",
        add_header,
    ]
    .map(str::to_string)
    .to_vec()
}

async fn assert_chain_ran(weft: &Weft, up: &Upstream) {
    let reply = get(&http1_client(), weft.addr("main"), "/", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let requests = up.requests();
    let seen = &requests
        .last()
        .expect("the upstream got the request")
        .headers;
    assert_eq!(seen["x-q"], "1", "headers filter with its --filter-config");
    assert_eq!(seen["x-added"], "1", "add_header filter");
    assert_eq!(reply.header("x-wasm-tag"), Some("quick"));
}

fn config_dump(weft: &Weft) -> serde_json::Value {
    let (status, body) = weft.admin_get("/config_dump");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_serves_a_filter_chain() {
    let up = Upstream::start("up").await;
    let headers = fixture("headers", TARGET);
    let add_header = fixture("add_header", TARGET);
    let weft = Weft::start_args(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.addr.to_string(),
            "--admin",
            "127.0.0.1:0",
            "--filter",
            headers.to_str().unwrap(),
            "--filter-config",
            HEADERS_CONFIG,
            "--filter",
            add_header.to_str().unwrap(),
            "--workers",
            "1",
        ],
        1,
    );
    assert_chain_ran(&weft, &up).await;
    let dump = config_dump(&weft);
    assert_eq!(dump["source"], "<command line>");
    let filters = &dump["config"]["listeners"][0]["filters"];
    assert_eq!(filters[0]["name"], "headers");
    assert_eq!(filters[1]["name"], "add_header");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_repeated_filters_get_unique_names_and_run_in_order() {
    let up = Upstream::start("up").await;
    let headers = fixture("headers", TARGET);
    let headers = headers.to_str().unwrap();
    let weft = Weft::start_args(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.addr.to_string(),
            "--admin",
            "127.0.0.1:0",
            "--filter",
            headers,
            "--filter-config",
            r#"{"tag":"first","add_request":{"x-first":"1"}}"#,
            "--filter",
            headers,
            "--filter-config",
            r#"{"tag":"second","add_request":{"x-second":"2"}}"#,
            "--workers",
            "1",
        ],
        1,
    );
    let reply = get(&http1_client(), weft.addr("main"), "/", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = &up.requests()[0].headers;
    assert_eq!(seen["x-first"], "1");
    assert_eq!(seen["x-second"], "2");
    // Response phases run in reverse: the second filter sets the tag, then the first
    // replaces it.
    let tags: Vec<&str> = reply
        .headers
        .get_all("x-wasm-tag")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(tags, ["first"]);
    let dump = config_dump(&weft);
    let filters = &dump["config"]["listeners"][0]["filters"];
    assert_eq!(filters[0]["name"], "headers");
    assert_eq!(filters[1]["name"], "headers-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_clusters_serve_filter_callouts() {
    let up = Upstream::start("up").await;
    let auth = Upstream::start("auth").await;
    let call = fixture("http_call", TARGET);
    let weft = Weft::start_args(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.addr.to_string(),
            "--admin",
            "127.0.0.1:0",
            "--filter",
            call.to_str().unwrap(),
            "--filter-config",
            r#"{"cluster":"auth","path":"/check"}"#,
            "--cluster",
            &format!("auth={}", auth.addr),
            "--workers",
            "1",
        ],
        1,
    );
    let reply = get(&http1_client(), weft.addr("main"), "/resource", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(auth.requests()[0].path, "/check");
    let seen = &up.requests()[0].headers;
    assert_eq!(seen["x-call-status"], "200");
    assert_eq!(seen["x-call-body"], "auth /check");
}

#[test]
fn quick_mode_bad_cluster_value_exits_naming_it() {
    for bad in ["auth", "auth=127.0.0.1", "=127.0.0.1:1"] {
        let out = run_weft(
            &[
                "run",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:1",
                "--cluster",
                bad,
            ],
            None,
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{bad}: {stderr}");
        assert!(stderr.contains(bad), "{bad}: {stderr}");
        assert!(stderr.contains("--cluster"), "{bad}: {stderr}");
    }
}

#[test]
fn quick_mode_flag_mistakes_are_clear_errors() {
    let cases: [(&[&str], &[&str]); 5] = [
        (&["run", "--listen", "127.0.0.1:0"], &["--upstream"]),
        (&["run", "--upstream", "127.0.0.1:1"], &["--listen"]),
        (
            &[
                "run",
                "--config",
                "weft.yaml",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:1",
            ],
            &["--config", "cannot be used with", "--listen"],
        ),
        (
            &[
                "run",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:1",
                "--filter-config",
                "{}",
                "--filter",
                "a.wasm",
            ],
            &["--filter-config", "before any --filter"],
        ),
        (
            &[
                "run",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:1",
                "--admin",
                "127.0.0.1:0",
                "--filter",
                "/no/such/filter.wasm",
            ],
            &["listeners[0].filters[0].module", "/no/such/filter.wasm"],
        ),
    ];
    for (args, says) in cases {
        let out = run_weft(args, None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for s in says {
            assert!(stderr.contains(s), "{args:?}: {s:?} not in {stderr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_print_config_round_trips_through_a_file() {
    let up = Upstream::start("up").await;
    let upstream = up.addr.to_string();
    let headers = fixture("headers", TARGET);
    let add_header = fixture("add_header", TARGET);
    let extra = ["--cluster", "auth=127.0.0.1:9", "--workers", "1"].map(str::to_string);

    // Printed from the fixture folder with relative filter paths: they become absolute in
    // the YAML, so the file works wherever it is written.
    let mut print = chain_args(&upstream, "headers.wasm", "./add_header.wasm");
    print.extend(extra.clone());
    print.push("--print-config".to_string());
    let print: Vec<&str> = print.iter().map(String::as_str).collect();
    let printed = run_weft(&print, headers.parent());
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let yaml = text(&printed.stdout);
    for module in [&headers, &add_header] {
        assert!(
            yaml.contains(&format!("module: {}", module.display())),
            "{yaml}"
        );
    }

    let dir = TempDir::new();
    let file = dir.path().join("quick.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let validated = run_weft(&["validate", file.to_str().unwrap()], None);
    assert!(
        validated.status.success(),
        "{}\n{yaml}",
        text(&validated.stderr)
    );
    assert!(
        text(&validated.stdout).contains("ok (1 listeners, 1 routes, 2 clusters)"),
        "{}",
        text(&validated.stdout)
    );

    // The file serves exactly as quick mode does: same behaviour, same effective config.
    let from_file = Weft::start_args(
        &["run", "--config", file.to_str().unwrap(), "--workers", "1"],
        1,
    );
    assert_chain_ran(&from_file, &up).await;
    let mut run = chain_args(
        &upstream,
        headers.to_str().unwrap(),
        add_header.to_str().unwrap(),
    );
    run.extend(extra);
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let quick = Weft::start_args(&run, 1);
    assert_chain_ran(&quick, &up).await;
    assert_eq!(
        config_dump(&quick)["config"],
        config_dump(&from_file)["config"]
    );
}
