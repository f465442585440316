//! The control plane end to end: a real `weft control`, real proxies subscribed to it, and
//! the operators' commands.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use weft_e2e::*;

const TARGET: &str = "wasm32-unknown-unknown";
const TOKEN: &str = "operator-token-0123456789";
const PROXY_TOKEN: &str = "proxy-token-0123456789abc";

/// A running `weft control`; killed when dropped.
struct ControlPlane {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl ControlPlane {
    fn start(data: &Path, listen: &str) -> ControlPlane {
        #[allow(clippy::zombie_processes)] // killed and waited for in Drop
        let mut child = Command::new(weft_bin())
            .args([
                "--log-format",
                "json",
                "control",
                "--listen",
                listen,
                "--data",
            ])
            .arg(data)
            .env("WEFT_CONTROL_TOKEN", TOKEN)
            .env("WEFT_PROXY_TOKEN", PROXY_TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start weft control");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = logs.lock().unwrap().iter().find_map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                (v["fields"]["message"] == "control plane listening")
                    .then(|| v["fields"]["address"].as_str()?.parse().ok())?
            });
            if let Some(addr) = found {
                return ControlPlane { child, addr, logs };
            }
            assert!(Instant::now() < deadline, "control plane not listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn kill(mut self) -> SocketAddr {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.addr
    }

    /// A call to the API with `token` (None: no authorization header).
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url()));
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let res = http1_client()
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn proxies(&self) -> serde_json::Value {
        let (status, body) = self
            .call("GET", "/v1/proxies", Some(TOKEN), Vec::new())
            .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until `node` reported `check` true of its state.
    async fn wait_node(&self, node: &str, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let all = self.proxies().await;
            if check(&all["proxies"][node]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{node}: {what} not seen; proxies: {all}\ncontrol plane logs:\n{}",
                self.logs.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds a bundle archive: `stamp_v{version}` in front of `upstream`, listening on
/// `listen`. Returns its path.
fn build_bundle(
    dir: &Path,
    name: &str,
    version: u32,
    upstream: SocketAddr,
    listen: &str,
) -> PathBuf {
    let src = dir.join(format!("{name}-src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(
        fixture(&format!("stamp_v{version}"), TARGET),
        src.join("stamp.wasm"),
    )
    .unwrap();
    std::fs::write(
        src.join("weft.yaml"),
        format!(
            "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: {listen}\n    filters:\n      - name: stamp\n        module: stamp.wasm\n    routes:\n      - cluster: up\nclusters:\n{}",
            cluster_yaml("up", &[upstream], "")
        ),
    )
    .unwrap();
    let out = dir.join(format!("{name}.tar.gz"));
    let status = Command::new(weft_bin())
        .args(["bundle", "build"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "weft bundle build {name}");
    out
}

/// `weft push` / `weft rollback` with the operators' token; (success, output).
fn operator(args: &[&str], url: &str) -> (bool, String) {
    let out = Command::new(weft_bin())
        .args(args)
        .args(["--control-plane", url])
        .env("WEFT_CONTROL_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn start_proxy(node: &str, url: &str, cache: &Path) -> Weft {
    Weft::start_args_env(
        &[
            "run",
            "--workers",
            "1",
            "--control-plane",
            url,
            "--node-id",
            node,
            "--bundle-cache",
            cache.to_str().unwrap(),
        ],
        1,
        &[("WEFT_PROXY_TOKEN", PROXY_TOKEN)],
    )
}

async fn served_version(weft: &Weft) -> Option<String> {
    let reply = get(&http1_client(), weft.addr("main"), "/", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.header("x-module-version").map(str::to_string)
}

async fn wait_served(weft: &Weft, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_version(weft).await.as_deref() != Some(version) {
        assert!(
            Instant::now() < deadline,
            "{version} not served:\n{}",
            weft.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_reach_two_proxies_bad_ones_are_nacked_and_rollback_works() {
    let up = Upstream::start("up").await;
    let tmp = TempDir::new();
    let cp = ControlPlane::start(&tmp.path().join("data"), "127.0.0.1:0");
    let v1 = build_bundle(tmp.path(), "v1", 1, up.addr, "127.0.0.1:0");
    let v2 = build_bundle(tmp.path(), "v2", 2, up.addr, "127.0.0.1:0");
    let moved = build_bundle(tmp.path(), "moved", 2, up.addr, "127.0.0.3:0");

    // Without the operators' token, nothing can be pushed.
    let archive = std::fs::read(&v1).unwrap();
    assert_eq!(
        cp.call("POST", "/v1/bundles", None, archive.clone())
            .await
            .0,
        401
    );
    assert_eq!(
        cp.call(
            "POST",
            "/v1/bundles",
            Some("wrong-token-0123456789"),
            archive.clone()
        )
        .await
        .0,
        401
    );
    assert_eq!(
        cp.call("POST", "/v1/bundles", Some(PROXY_TOKEN), archive)
            .await
            .0,
        403
    );
    // A bundle that does not check out is refused at push.
    let (status, body) = cp
        .call("POST", "/v1/bundles", Some(TOKEN), b"not a bundle".to_vec())
        .await;
    assert_eq!(status, 400, "{body}");

    let (ok, out) = operator(&["push", v1.to_str().unwrap()], &cp.url());
    assert!(ok && out.contains("version 1"), "{out}");
    let a = start_proxy("a", &cp.url(), &tmp.path().join("cache-a"));
    let b = start_proxy("b", &cp.url(), &tmp.path().join("cache-b"));
    assert_eq!(served_version(&a).await.as_deref(), Some("v1"));
    assert_eq!(served_version(&b).await.as_deref(), Some("v1"));
    for node in ["a", "b"] {
        cp.wait_node(node, "ACK of 1", |p| p["applied"] == 1).await;
    }

    // A push reaches both proxies, which ACK it.
    let (ok, out) = operator(&["push", v2.to_str().unwrap()], &cp.url());
    assert!(ok && out.contains("version 2"), "{out}");
    wait_served(&a, "v2").await;
    wait_served(&b, "v2").await;
    for node in ["a", "b"] {
        cp.wait_node(node, "ACK of 2", |p| p["applied"] == 2).await;
    }

    // A bundle both proxies refuse (it moves their listener): NACKed, and they keep v2.
    let (ok, out) = operator(&["push", moved.to_str().unwrap()], &cp.url());
    assert!(ok && out.contains("version 3"), "{out}");
    for node in ["a", "b"] {
        cp.wait_node(node, "NACK of 3", |p| {
            p["nack"]["version"] == 3
                && p["nack"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("restart weft to change it"))
        })
        .await;
    }
    assert_eq!(served_version(&a).await.as_deref(), Some("v2"));
    assert_eq!(served_version(&b).await.as_deref(), Some("v2"));

    // Rollback to version 1: served again by both.
    let (ok, out) = operator(&["rollback", "1"], &cp.url());
    assert!(ok && out.contains("now active as version 4"), "{out}");
    wait_served(&a, "v1").await;
    wait_served(&b, "v1").await;
    for node in ["a", "b"] {
        cp.wait_node(node, "ACK of 4", |p| p["applied"] == 4).await;
    }
    let (status, versions) = cp
        .call("GET", "/v1/versions", Some(TOKEN), Vec::new())
        .await;
    assert_eq!(status, 200);
    let versions: serde_json::Value = serde_json::from_str(&versions).unwrap();
    assert_eq!(versions["active"], 4);
    assert_eq!(versions["versions"][3]["note"], "rollback to 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_survive_the_control_plane_going_away() {
    let up = Upstream::start("up").await;
    let tmp = TempDir::new();
    let data = tmp.path().join("data");
    let cp = ControlPlane::start(&data, "127.0.0.1:0");
    let v1 = build_bundle(tmp.path(), "v1", 1, up.addr, "127.0.0.1:0");
    let v2 = build_bundle(tmp.path(), "v2", 2, up.addr, "127.0.0.1:0");
    assert!(operator(&["push", v1.to_str().unwrap()], &cp.url()).0);
    let url = cp.url();
    let cache = tmp.path().join("cache-a");
    let a = start_proxy("a", &url, &cache);
    assert_eq!(served_version(&a).await.as_deref(), Some("v1"));

    // Control plane down: the proxy keeps serving.
    let addr = cp.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_version(&a).await.as_deref(), Some("v1"));

    // A proxy (re)started while the control plane is down serves its cached bundle.
    drop(a);
    let a = start_proxy("a", &url, &cache);
    assert_eq!(served_version(&a).await.as_deref(), Some("v1"));

    // The control plane comes back (same address, same data): nothing is lost, and the
    // proxy resubscribes and takes the next push.
    let cp = ControlPlane::start(&data, &addr.to_string());
    let (status, versions) = cp
        .call("GET", "/v1/versions", Some(TOKEN), Vec::new())
        .await;
    assert_eq!(status, 200);
    assert!(versions.contains("\"active\": 1"), "{versions}");
    assert!(operator(&["push", v2.to_str().unwrap()], &cp.url()).0);
    wait_served(&a, "v2").await;
    cp.wait_node("a", "ACK of 2", |p| p["applied"] == 2).await;
}
