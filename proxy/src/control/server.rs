//! `weft control`: the control plane server. It keeps bundles and their version history
//! ([`super::store`]), checks every pushed bundle as `weft bundle build` would before it
//! can reach a proxy, and lets proxies long-poll for the active version and report
//! ACK/NACK. The API is documented in docs/control-plane.md.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::auth::Token;
use super::store::Store;
use super::{NODE_HEADER, Report};

type Reply = Response<Full<Bytes>>;

/// The largest bundle a push may carry.
const MAX_BUNDLE: usize = 256 << 20;
/// The longest a watch request is held open.
const MAX_WATCH: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct ControlOptions {
    pub data: PathBuf,
    /// Operators' token: push, rollback, list.
    pub token: Token,
    /// Proxies' token: watch, download, report.
    pub proxy_token: Token,
}

/// What the control plane knows of one proxy.
#[derive(Clone, Debug, Default, Serialize)]
struct ProxyState {
    /// The version it last reported applied (ACK).
    applied: Option<u64>,
    /// The last version it refused, with its error.
    nack: Option<Nack>,
    last_seen_unix: u64,
    /// Watch requests it has open now.
    watching: usize,
}

#[derive(Clone, Debug, Serialize)]
struct Nack {
    version: u64,
    error: String,
}

struct Control {
    store: Mutex<Store>,
    active: watch::Sender<u64>,
    proxies: Mutex<BTreeMap<String, ProxyState>>,
    options: ControlOptions,
}

/// Opens the store and serves the API on `listener` until the process ends.
pub async fn serve(listener: TcpListener, options: ControlOptions) -> Result<(), String> {
    let store = Store::open(&options.data)?;
    let active = watch::Sender::new(store.state().active);
    tracing::info!(
        data = %options.data.display(),
        versions = store.state().versions.len(),
        active = store.state().active,
        "control plane store opened"
    );
    let control = Arc::new(Control {
        store: Mutex::new(store),
        active,
        proxies: Mutex::default(),
        options,
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "control plane accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let control = control.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let control = control.clone();
                async move { Ok::<_, Infallible>(handle(&control, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn json(status: StatusCode, value: serde_json::Value) -> Reply {
    let mut res = Response::new(Full::new(Bytes::from(
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n",
    )));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn problem(status: StatusCode, message: impl Into<String>) -> Reply {
    json(status, serde_json::json!({ "error": message.into() }))
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who is calling, by the token they presented.
#[derive(Clone, Copy, PartialEq)]
enum Caller {
    Operator,
    Proxy,
}

async fn handle(control: &Arc<Control>, req: Request<Incoming>) -> Reply {
    let auth = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
    let caller = if control.options.token.matches(auth) {
        Some(Caller::Operator)
    } else if control.options.proxy_token.matches(auth) {
        Some(Caller::Proxy)
    } else {
        None
    };
    let Some(caller) = caller else {
        let mut res = problem(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        res.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Bearer realm=\"weft-control\""),
        );
        return res;
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let operator_only = |reply: Reply| match caller {
        Caller::Operator => reply,
        Caller::Proxy => problem(StatusCode::FORBIDDEN, "this needs the operators' token"),
    };
    match (method, segments.as_slice()) {
        (Method::POST, ["v1", "bundles"]) if caller == Caller::Operator => push(control, req).await,
        (Method::POST, ["v1", "rollback"]) if caller == Caller::Operator => {
            rollback(control, req).await
        }
        (Method::GET, ["v1", "versions"]) => operator_only(list(control)),
        (Method::GET, ["v1", "proxies"]) => operator_only(proxies(control)),
        (Method::GET, ["v1", "versions", n]) => match n.parse() {
            Ok(n) => version(control, n),
            Err(_) => problem(StatusCode::NOT_FOUND, "no such version"),
        },
        (Method::GET, ["v1", "versions", n, "bundle"]) => match n.parse() {
            Ok(n) => download(control, n),
            Err(_) => problem(StatusCode::NOT_FOUND, "no such version"),
        },
        (Method::GET, ["v1", "watch"]) => {
            let node = req.headers().get(NODE_HEADER).and_then(|v| v.to_str().ok());
            match node {
                Some(node) if !node.is_empty() => {
                    watch_active(control, node.to_string(), &query).await
                }
                _ => problem(
                    StatusCode::BAD_REQUEST,
                    format!("the {NODE_HEADER} header is required"),
                ),
            }
        }
        (Method::POST, ["v1", "report"]) => report(control, req).await,
        (Method::POST, ["v1", "bundles"] | ["v1", "rollback"]) => {
            problem(StatusCode::FORBIDDEN, "this needs the operators' token")
        }
        (_, ["v1", "bundles" | "rollback" | "report"]) => {
            problem(StatusCode::METHOD_NOT_ALLOWED, "use POST")
        }
        (_, ["v1", "versions" | "proxies" | "watch", ..]) => {
            problem(StatusCode::METHOD_NOT_ALLOWED, "use GET")
        }
        _ => problem(
            StatusCode::NOT_FOUND,
            "no such endpoint; see docs/control-plane.md",
        ),
    }
}

async fn body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Reply> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("cannot read the body (at most {limit} bytes): {error}"),
        )),
    }
}

/// `POST /v1/bundles`: check the archive as a proxy would load it, then store it as the
/// new active version.
async fn push(control: &Arc<Control>, req: Request<Incoming>) -> Reply {
    let archive = match body(req, MAX_BUNDLE).await {
        Ok(bytes) => bytes,
        Err(reply) => return reply,
    };
    let data = control.options.data.clone();
    let checked = tokio::task::spawn_blocking({
        let archive = archive.clone();
        move || super::check_bundle(&archive, &data.join("checked"))
    })
    .await
    .unwrap_or_else(|e| Err(vec![format!("the check failed unexpectedly: {e}")]));
    if let Err(errors) = checked {
        tracing::warn!(errors = errors.len(), "pushed bundle refused");
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "result": "refused", "errors": errors }),
        );
    }
    let pushed = control
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(&archive);
    match pushed {
        Ok(info) => {
            tracing::info!(version = info.version, sha256 = %info.sha256, "bundle pushed; now active");
            control.active.send_replace(info.version);
            json(
                StatusCode::CREATED,
                serde_json::to_value(&info).unwrap_or_default(),
            )
        }
        Err(error) => problem(StatusCode::INTERNAL_SERVER_ERROR, error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    version: u64,
}

async fn rollback(control: &Arc<Control>, req: Request<Incoming>) -> Reply {
    let bytes = match body(req, 64 << 10).await {
        Ok(bytes) => bytes,
        Err(reply) => return reply,
    };
    let request: RollbackRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"version\": N}}: {e}"),
            );
        }
    };
    let result = control
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .rollback(request.version);
    match result {
        Ok(info) => {
            tracing::info!(version = info.version, to = request.version, "rolled back");
            control.active.send_replace(info.version);
            json(
                StatusCode::OK,
                serde_json::to_value(&info).unwrap_or_default(),
            )
        }
        Err(error) => problem(StatusCode::NOT_FOUND, error),
    }
}

fn list(control: &Control) -> Reply {
    let store = control.store.lock().unwrap_or_else(|e| e.into_inner());
    json(
        StatusCode::OK,
        serde_json::to_value(store.state()).unwrap_or_default(),
    )
}

fn version(control: &Control, n: u64) -> Reply {
    let store = control.store.lock().unwrap_or_else(|e| e.into_inner());
    match store.get(n) {
        Some(info) => json(
            StatusCode::OK,
            serde_json::to_value(info).unwrap_or_default(),
        ),
        None => problem(StatusCode::NOT_FOUND, format!("there is no version {n}")),
    }
}

fn download(control: &Control, n: u64) -> Reply {
    let bytes = control
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .read(n);
    match bytes {
        Some(bytes) => {
            let mut res = Response::new(Full::new(Bytes::from(bytes)));
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
            res
        }
        None => problem(StatusCode::NOT_FOUND, format!("there is no version {n}")),
    }
}

fn proxies(control: &Control) -> Reply {
    let active = *control.active.borrow();
    let proxies = control.proxies.lock().unwrap_or_else(|e| e.into_inner());
    json(
        StatusCode::OK,
        serde_json::json!({ "active": active, "proxies": &*proxies }),
    )
}

/// Query parameters of `GET /v1/watch`.
#[derive(Default)]
struct WatchQuery {
    /// The version the proxy runs (0: none).
    have: u64,
    /// A version the proxy refused: not offered again until another one is active.
    refused: Option<u64>,
    wait: Duration,
}

fn parse_watch(query: &str) -> WatchQuery {
    let mut q = WatchQuery {
        wait: Duration::from_secs(30),
        ..WatchQuery::default()
    };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "have" => q.have = v.parse().unwrap_or(0),
            "refused" => q.refused = v.parse().ok(),
            "wait" => {
                q.wait = v
                    .parse()
                    .map(Duration::from_secs)
                    .unwrap_or(q.wait)
                    .min(MAX_WATCH)
            }
            _ => {}
        }
    }
    q
}

/// `GET /v1/watch?have=N[&refused=M][&wait=S]`: answers at once with the active version
/// when it is neither N nor M, else holds the request until it changes (200) or `wait`
/// seconds pass (204).
async fn watch_active(control: &Arc<Control>, node: String, query: &str) -> Reply {
    let q = parse_watch(query);
    let touch = |delta: isize| {
        let mut proxies = control.proxies.lock().unwrap_or_else(|e| e.into_inner());
        let state = proxies.entry(node.clone()).or_default();
        state.last_seen_unix = now_unix();
        state.watching = state.watching.saturating_add_signed(delta);
        // The version a proxy watches from is the one it runs (this also recovers its
        // state after a control plane restart, or a lost report).
        if q.have != 0 {
            state.applied = Some(q.have);
        }
    };
    touch(1);
    let mut rx = control.active.subscribe();
    let deadline = tokio::time::Instant::now() + q.wait;
    let offered = loop {
        let active = *rx.borrow_and_update();
        if active != 0 && active != q.have && Some(active) != q.refused {
            break Some(active);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            _ => break None,
        }
    };
    touch(-1);
    let info = offered.and_then(|v| {
        control
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(v)
            .cloned()
    });
    match info {
        Some(info) => json(
            StatusCode::OK,
            serde_json::to_value(&info).unwrap_or_default(),
        ),
        None => {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::NO_CONTENT;
            res
        }
    }
}

/// `POST /v1/report`: a proxy's ACK or NACK of a version.
async fn report(control: &Arc<Control>, req: Request<Incoming>) -> Reply {
    let node = req
        .headers()
        .get(NODE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = match body(req, 1 << 20).await {
        Ok(bytes) => bytes,
        Err(reply) => return reply,
    };
    let report: Report = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("not a report: {e}")),
    };
    let Some(node) = node.filter(|n| !n.is_empty()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("the {NODE_HEADER} header is required"),
        );
    };
    let mut proxies = control.proxies.lock().unwrap_or_else(|e| e.into_inner());
    let state = proxies.entry(node.clone()).or_default();
    state.last_seen_unix = now_unix();
    match report.error {
        None => {
            tracing::info!(node, version = report.version, "ACK");
            state.applied = Some(report.version);
        }
        Some(error) => {
            tracing::warn!(node, version = report.version, %error, "NACK");
            state.nack = Some(Nack {
                version: report.version,
                error,
            });
        }
    }
    json(StatusCode::OK, serde_json::json!({ "result": "recorded" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_query_parses_with_defaults_and_a_cap() {
        let q = parse_watch("have=3&refused=4&wait=5");
        assert_eq!(
            (q.have, q.refused, q.wait),
            (3, Some(4), Duration::from_secs(5))
        );
        let q = parse_watch("");
        assert_eq!(
            (q.have, q.refused, q.wait),
            (0, None, Duration::from_secs(30))
        );
        assert_eq!(parse_watch("wait=100000").wait, MAX_WATCH);
    }
}
