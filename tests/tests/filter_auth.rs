//! The built-in auth filter (filters/auth) in a real weft in front of a test upstream:
//! JWTs checked with inline keys and with keys fetched over an http call, API keys, basic
//! auth, and external authorization. The keys and tokens are the test-only fixtures in
//! filters/auth/testdata/e2e.json (this crate has no crypto of its own).
//!
//! The module is `target/filters/auth.wasm` (scripts/build-filters.sh puts it there); when
//! it is missing the test builds it with cargo.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use weft_e2e::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn module() -> PathBuf {
    filter_module("auth")
}

fn fixtures() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let text = std::fs::read_to_string(root().join("filters/auth/testdata/e2e.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn token(name: &str) -> String {
    fixtures()["tokens"][name].as_str().unwrap().to_string()
}

/// A request the helper service received.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: http::HeaderMap,
}

/// A small server playing the identity provider (`GET /jwks.json`) and the external
/// authorization service (`/check/...`: paths containing `deny` are refused with 403,
/// others allowed with `x-user-id: 42`).
struct Helper {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    jwks_hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Helper {
    async fn start() -> Helper {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let jwks = serde_json::to_vec(&fixtures()["jwks"]).unwrap();
        let (s, h) = (seen.clone(), jwks_hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (seen, hits, jwks) = (s.clone(), h.clone(), jwks.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let path = req.uri().to_string();
                        seen.lock().unwrap().push(Seen {
                            path: path.clone(),
                            headers: req.headers().clone(),
                        });
                        let reply = if path == "/jwks.json" {
                            hits.fetch_add(1, Ordering::SeqCst);
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(jwks.clone())))
                        } else if path.contains("deny") {
                            http::Response::builder()
                                .status(403)
                                .header("x-authz-reason", "policy")
                                .header("x-internal", "secret")
                                .body(Full::new(Bytes::from("denied by policy")))
                        } else {
                            http::Response::builder()
                                .header("x-user-id", "42")
                                .header("x-internal", "secret")
                                .body(Full::default())
                        };
                        async move { Ok::<_, Infallible>(reply.unwrap()) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Helper {
            addr,
            seen,
            jwks_hits,
            task,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// The filter config used by every test; `ext_authz` names the cluster of the service.
fn auth_config() -> Value {
    let f = fixtures();
    json!({
        "realm": "e2e",
        "jwt_providers": {
            "inline": {
                "issuer": f["issuer"], "audiences": [f["audience"]], "jwks": f["jwks"],
                "forward_claims": {"email": "x-jwt-email"}
            },
            "remote": {
                "issuer": f["issuer"], "audiences": [f["audience"]],
                "remote_jwks": {"cluster": "helper", "path": "/jwks.json", "cache_duration": "10m"},
                "from_headers": [{"name": "x-remote-token"}]
            }
        },
        "api_key": {"header": "x-api-key", "keys": [{"key": f["api_key"], "consumer": "svc-a"}]},
        "basic": {"users": [{"username": f["basic"]["username"], "password_hash": f["basic"]["password_hash"]}]},
        "ext_authz": {
            "cluster": "helper", "path_prefix": "/check",
            "allowed_headers": ["x-api-key", "x-trace"],
            "allowed_upstream_headers": ["x-user-id"],
            "allowed_client_headers": ["x-authz-reason"]
        },
        "rules": [
            {"match": {"path": {"prefix": "/public"}}, "public": true},
            {"match": {"path": {"prefix": "/jwt"}}, "require_any": ["jwt:inline"], "ext_authz": false},
            {"match": {"path": {"prefix": "/remote"}}, "require_any": ["jwt:remote"], "ext_authz": false},
            {"match": {"path": {"prefix": "/key"}}, "require_any": ["api_key"], "ext_authz": false},
            {"match": {"path": {"prefix": "/admin"}}, "require_any": ["basic"], "ext_authz": false},
            {"match": {"path": {"prefix": "/authz"}}, "require_any": ["api_key"]}
        ]
    })
}

/// A weft with the auth filter, forwarding to `up`; `helper` is the cluster the filter
/// calls (identity provider and authorization service).
fn start(up: &Upstream, helper: SocketAddr) -> Weft {
    // JSON in a single-quoted YAML string: handed to the filter as it is.
    let config = auth_config().to_string();
    let yaml = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nwasm: {{ callback_deadline: 250ms }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    filters:\n      - name: auth\n        module: {}\n        config: '{}'\n    routes:\n      - cluster: up\nclusters:\n{}{}",
        module().display(),
        config.replace('\'', "''"),
        cluster_yaml("up", &[up.addr], ""),
        cluster_yaml("helper", &[helper], ""),
    );
    Weft::start(&yaml, 2)
}

fn challenge(reply: &Reply) -> String {
    reply
        .header("www-authenticate")
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_with_inline_keys_good_expired_wrong_audience_bad_signature() {
    let up = Upstream::start("up").await;
    let helper = Helper::start().await;
    let weft = start(&up, helper.addr);
    let (client, addr) = (http1_client(), weft.addr("main"));

    let missing = get(&client, addr, "/jwt/x", &[]).await;
    assert_eq!(missing.status, 401);
    assert_eq!(challenge(&missing), r#"Bearer realm="e2e""#);

    for name in ["rs256_good", "es256_good"] {
        let auth = format!("Bearer {}", token(name));
        let ok = get(
            &client,
            addr,
            "/jwt/x",
            &[("authorization", &auth), ("x-consumer", "mallory")],
        )
        .await;
        assert_eq!(ok.status, 200, "{name}: {}", ok.text());
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    for r in &seen {
        assert_eq!(
            r.headers["x-consumer"], "alice",
            "the client's x-consumer is replaced"
        );
        assert_eq!(r.headers["x-jwt-email"], "alice@example.test");
        assert!(
            r.headers.get("authorization").is_none(),
            "the token is not forwarded"
        );
    }

    for (name, why) in [
        ("rs256_expired", "the token is expired"),
        ("rs256_wrong_audience", "the token audience is not allowed"),
        ("rs256_bad_signature", "the token signature is invalid"),
    ] {
        let auth = format!("Bearer {}", token(name));
        let refused = get(&client, addr, "/jwt/x", &[("authorization", &auth)]).await;
        assert_eq!(refused.status, 401, "{name}");
        assert_eq!(
            challenge(&refused),
            format!(r#"Bearer realm="e2e", error="invalid_token", error_description="{why}""#),
            "{name}"
        );
    }
    assert_eq!(
        up.request_count(),
        2,
        "refused requests never reach the upstream"
    );

    let public = get(&client, addr, "/public/x", &[("x-consumer", "mallory")]).await;
    assert_eq!(public.status, 200);
    assert!(up.requests()[2].headers.get("x-consumer").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_is_fetched_over_an_http_call_and_cached() {
    let up = Upstream::start("up").await;
    let helper = Helper::start().await;
    let weft = start(&up, helper.addr);
    let (client, addr) = (http1_client(), weft.addr("main"));
    let good = token("rs256_good");
    for _ in 0..10 {
        let ok = get(&client, addr, "/remote/x", &[("x-remote-token", &good)]).await;
        assert_eq!(ok.status, 200, "{}", ok.text());
    }
    let bad = token("rs256_bad_signature");
    let refused = get(&client, addr, "/remote/x", &[("x-remote-token", &bad)]).await;
    assert_eq!(refused.status, 401);
    let hits = helper.jwks_hits.load(Ordering::SeqCst);
    // Each of the 2 workers' VMs fetches at most once at start (the root context) and a
    // request may fetch once more if it arrives before that answer; never once per request.
    assert!(
        (1..=4).contains(&hits),
        "{hits} JWKS fetches for 11 requests"
    );
    let fetch = helper
        .seen()
        .into_iter()
        .find(|s| s.path == "/jwks.json")
        .unwrap();
    assert_eq!(fetch.headers["host"], "helper");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_and_basic_auth() {
    let up = Upstream::start("up").await;
    let helper = Helper::start().await;
    let weft = start(&up, helper.addr);
    let (client, addr) = (http1_client(), weft.addr("main"));
    let f = fixtures();

    let key = f["api_key"].as_str().unwrap();
    let ok = get(&client, addr, "/key/x", &[("x-api-key", key)]).await;
    assert_eq!(ok.status, 200);
    let seen = &up.requests()[0].headers;
    assert_eq!(seen["x-consumer"], "svc-a");
    assert!(seen.get("x-api-key").is_none(), "the key is not forwarded");
    let wrong = get(&client, addr, "/key/x", &[("x-api-key", "nope")]).await;
    assert_eq!(
        (wrong.status, challenge(&wrong).as_str()),
        (401, r#"ApiKey realm="e2e""#)
    );

    let user = f["basic"]["username"].as_str().unwrap();
    let password = f["basic"]["password"].as_str().unwrap();
    let good = format!("Basic {}", base64(&format!("{user}:{password}")));
    // The first check per worker VM runs bcrypt (cost 5); later ones are remembered.
    for _ in 0..4 {
        let start = Instant::now();
        let ok = get(&client, addr, "/admin", &[("authorization", &good)]).await;
        assert_eq!(ok.status, 200);
        eprintln!("basic auth request: {:?}", start.elapsed());
    }
    assert_eq!(up.requests()[1].headers["x-consumer"], "root");
    let bad = format!("Basic {}", base64(&format!("{user}:wrong")));
    let refused = get(&client, addr, "/admin", &[("authorization", &bad)]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(challenge(&refused), r#"Basic realm="e2e", charset="UTF-8""#);
    let missing = get(&client, addr, "/admin", &[]).await;
    assert_eq!(
        (missing.status, challenge(&missing)),
        (401, challenge(&refused))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_allows_denies_and_fails_closed() {
    let up = Upstream::start("up").await;
    let helper = Helper::start().await;
    let weft = start(&up, helper.addr);
    let (client, addr) = (http1_client(), weft.addr("main"));
    let key = fixtures()["api_key"].as_str().unwrap();

    let allowed = get(
        &client,
        addr,
        "/authz/ok?q=1",
        &[("x-api-key", key), ("x-trace", "t1"), ("x-other", "o")],
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    let upstream = &up.requests()[0].headers;
    assert_eq!(
        upstream["x-user-id"], "42",
        "allowed response headers are copied upstream"
    );
    assert!(upstream.get("x-internal").is_none());
    let check = helper
        .seen()
        .into_iter()
        .find(|s| s.path.starts_with("/check"))
        .unwrap();
    assert_eq!(check.path, "/check/authz/ok?q=1");
    assert_eq!(check.headers["x-trace"], "t1");
    assert_eq!(check.headers["x-consumer"], "svc-a");
    assert!(
        check.headers.get("x-other").is_none(),
        "only allowed headers are sent"
    );

    let denied = get(&client, addr, "/authz/deny", &[("x-api-key", key)]).await;
    assert_eq!(
        (denied.status, denied.text().as_str()),
        (403, "denied by policy")
    );
    assert_eq!(denied.header("x-authz-reason"), Some("policy"));
    assert_eq!(denied.header("x-internal"), None);
    assert_eq!(up.request_count(), 1);

    // Authentication still comes first.
    assert_eq!(get(&client, addr, "/authz/ok", &[]).await.status, 401);

    // An unreachable service denies (fail closed).
    drop(weft);
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let weft = start(&up, closed);
    let down = get(
        &http1_client(),
        weft.addr("main"),
        "/authz/ok",
        &[("x-api-key", key)],
    )
    .await;
    assert_eq!(
        down.status,
        403,
        "{}\n{}",
        down.text(),
        weft.logs().join("\n")
    );
    assert_eq!(up.request_count(), 1);
}

/// RS256 against HS256-free baseline: the extra time per request is about one RS256
/// verification in wasm (printed; run with --nocapture).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_verification_cost_in_wasm() {
    let up = Upstream::start("up").await;
    let helper = Helper::start().await;
    let weft = start(&up, helper.addr);
    let (client, addr) = (http1_client(), weft.addr("main"));
    let auth = format!("Bearer {}", token("rs256_good"));
    let key = fixtures()["api_key"].as_str().unwrap();
    let rounds = 100;
    let timed = |path: &'static str, header: (&'static str, String)| {
        let client = client.clone();
        async move {
            let start = Instant::now();
            for _ in 0..rounds {
                let r = get(&client, addr, path, &[(header.0, &header.1)]).await;
                assert_eq!(r.status, 200);
            }
            start.elapsed() / rounds
        }
    };
    // Warm up both paths (module instantiation, pools).
    timed("/key/x", ("x-api-key", key.to_string())).await;
    timed("/jwt/x", ("authorization", auth.clone())).await;
    let baseline = timed("/key/x", ("x-api-key", key.to_string())).await;
    let rs256 = timed("/jwt/x", ("authorization", auth)).await;
    eprintln!(
        "per request: API key {baseline:?}, RS256 JWT {rs256:?}: RS256 adds {:?}",
        rs256.saturating_sub(baseline)
    );
    assert!(
        rs256 < Duration::from_millis(50),
        "RS256 request took {rs256:?}"
    );
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
