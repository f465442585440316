//! Filter bundles end to end: `weft bundle build` and `inspect`, and a real weft serving
//! `--bundle` archives that are replaced under it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use weft_e2e::*;

const TARGET: &str = "wasm32-unknown-unknown";

/// A bundle source directory: weft.yaml with one filter (`filters/stamp.wasm`, a copy of
/// `stamp_v{version}`) in front of `upstream`, and a schema for that filter's config.
fn bundle_dir(dir: &Path, version: u32, upstream: &Upstream, filter_config: &str) {
    std::fs::create_dir_all(dir.join("filters")).unwrap();
    std::fs::copy(
        fixture(&format!("stamp_v{version}"), TARGET),
        dir.join("filters/stamp.wasm"),
    )
    .unwrap();
    std::fs::write(
        dir.join("filters/stamp.schema.json"),
        r#"{"type":"object","properties":{"team":{"type":"string"}},"additionalProperties":false}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("weft.yaml"),
        format!(
            "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    filters:\n      - name: stamp\n        module: filters/stamp.wasm\n        config: {filter_config}\n    routes:\n      - cluster: up\nclusters:\n{}",
            cluster_yaml("up", &[upstream.addr], "")
        ),
    )
    .unwrap();
}

/// Runs `weft bundle ARGS`; returns (exit code, stdout + stderr).
fn weft_bundle(args: &[&str]) -> (i32, String) {
    let out = Command::new(weft_bin())
        .arg("bundle")
        .args(args)
        .output()
        .expect("run weft bundle");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

async fn version_served(weft: &Weft) -> Option<String> {
    let reply = get(&http1_client(), weft.addr("main"), "/", &[]).await;
    assert_eq!(reply.status, 200);
    reply.header("x-module-version").map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_is_built_inspected_served_and_replaced() {
    let up = Upstream::start("up").await;
    let tmp = TempDir::new();
    let (src, archive) = (tmp.path().join("src"), tmp.path().join("app.tar.gz"));
    bundle_dir(&src, 1, &up, "{ team: edge }");
    let (code, out) = weft_bundle(&[
        "build",
        src.to_str().unwrap(),
        "-o",
        archive.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 modules"), "{out}");

    let (code, out) = weft_bundle(&["inspect", archive.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("filters/stamp.wasm  sha256 "), "{out}");
    assert!(out.contains("schema filters/stamp.schema.json"), "{out}");
    assert!(
        out.contains("main on 127.0.0.1:0: 1 routes, filters [stamp]"),
        "{out}"
    );

    let cache = tmp.path().join("cache");
    let mut weft = Weft::start_args_env(
        &[
            "run",
            "--workers",
            "2",
            "--bundle",
            archive.to_str().unwrap(),
        ],
        1,
        &[("XDG_CACHE_HOME", cache.to_str().unwrap())],
    );
    assert_eq!(version_served(&weft).await.as_deref(), Some("v1"));

    // A new version of the bundle replaces the archive: weft reloads it.
    bundle_dir(&src, 2, &up, "{ team: edge }");
    let next = tmp.path().join("next.tar.gz");
    let (code, out) = weft_bundle(&["build", src.to_str().unwrap(), "-o", next.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    std::fs::rename(&next, &archive).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while version_served(&weft).await.as_deref() != Some("v2") {
        assert!(
            Instant::now() < deadline,
            "v2 not served: {}",
            weft.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A tampered archive (its module does not match its manifest) is refused, and the
    // old version keeps serving.
    std::fs::copy(fixture("stamp_v1", TARGET), src.join("filters/stamp.wasm")).unwrap();
    let (code, out) = weft_bundle(&["inspect", src.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("but the manifest says"), "{out}");
    let packed = tmp.path().join("bad.tar.gz");
    let tar = Command::new("tar")
        .args([
            "-czf",
            packed.to_str().unwrap(),
            "-C",
            src.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(tar.success());
    std::fs::rename(&packed, &archive).unwrap();
    let (status, body) = weft.admin_post("/reload");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("but the manifest says"), "{body}");
    assert_eq!(version_served(&weft).await.as_deref(), Some("v2"));
    assert_eq!(weft.wait_exit(Duration::from_millis(1)), None);
}

#[test]
fn bundle_build_refuses_a_filter_config_its_schema_rejects() {
    let tmp = TempDir::new();
    let src = tmp.path().join("src");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(Upstream::start("up"));
    bundle_dir(&src, 1, &up, "{ team: 7, extra: yes }");
    let out = tmp.path().join("x.tar.gz");
    let (code, text) = weft_bundle(&["build", src.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("listeners[0].filters[0].config: at /team: 7 is not of type \"string\""),
        "{text}"
    );
    assert!(
        text.contains("(schema filters/stamp.schema.json)"),
        "{text}"
    );
    assert!(!out.exists(), "an archive was written for a refused bundle");
}
