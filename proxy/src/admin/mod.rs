//! The admin endpoint (its own listener, loopback by default): readiness, the effective
//! config, clusters, filters, Prometheus metrics, and reload. Reads are GET (or HEAD);
//! the one mutation, `/reload`, is POST only.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::reload::Reloader;
use crate::state::Shared;

type AdminResponse = Response<Full<Bytes>>;

const INDEX: &str = "weft admin\n\
GET  /ready              200 when every worker is serving, 503 while starting or draining\n\
GET  /config_dump        the effective config (defaults filled in) and the last reload, as JSON\n\
GET  /clusters           clusters and their endpoints as JSON\n\
GET  /filters            loaded filters (module, sha256, when loaded) and the last reload, as JSON\n\
GET  /stats/prometheus   metrics in Prometheus text format\n\
POST /reload             reload the config and modules now (as SIGHUP does)\n";

/// The endpoints and the methods each accepts.
const ENDPOINTS: &[(&str, &[Method])] = &[
    ("/", &[Method::GET, Method::HEAD]),
    ("/ready", &[Method::GET, Method::HEAD]),
    ("/config_dump", &[Method::GET, Method::HEAD]),
    ("/clusters", &[Method::GET, Method::HEAD]),
    ("/filters", &[Method::GET, Method::HEAD]),
    ("/stats/prometheus", &[Method::GET, Method::HEAD]),
    ("/reload", &[Method::POST]),
];

pub async fn serve(listener: TcpListener, shared: Arc<Shared>, reloader: Arc<Reloader>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let reloader = reloader.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                let reloader = reloader.clone();
                async move { Ok::<_, Infallible>(handle(&shared, &reloader, &req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> AdminResponse {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

pub async fn handle(
    shared: &Shared,
    reloader: &Arc<Reloader>,
    req: &Request<Incoming>,
) -> AdminResponse {
    let path = req.uri().path();
    let Some((_, methods)) = ENDPOINTS.iter().find(|(p, _)| *p == path) else {
        return respond(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found; GET / lists the endpoints\n",
        );
    };
    if !methods.contains(req.method()) {
        let allowed = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut res = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            format!("use {allowed}\n"),
        );
        if let Ok(value) = HeaderValue::from_str(&allowed) {
            res.headers_mut().insert(ALLOW, value);
        }
        return res;
    }
    match path {
        "/reload" => reload(reloader).await,
        "/filters" => respond(StatusCode::OK, JSON, filters(shared)),
        "/ready" if shared.is_ready() => respond(StatusCode::OK, TEXT, "ready\n"),
        "/ready" if shared.is_draining() => {
            respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, "draining\n")
        }
        "/ready" => respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, "starting\n"),
        "/config_dump" => respond(StatusCode::OK, JSON, config_dump(shared)),
        "/clusters" => respond(StatusCode::OK, JSON, clusters(shared)),
        "/stats/prometheus" => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.encode_metrics(),
        ),
        _ => respond(StatusCode::OK, TEXT, INDEX),
    }
}

fn config_dump(shared: &Shared) -> String {
    let snapshot = shared.snapshot();
    let loaded_at = snapshot
        .loaded_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dump = serde_json::json!({
        "version": snapshot.version,
        "source": snapshot.config.source,
        "loaded_at_unix": loaded_at,
        "workers": shared.workers,
        "last_reload": last_reload(shared),
        "config": snapshot.config.raw,
    });
    serde_json::to_string_pretty(&dump).unwrap_or_default() + "\n"
}

fn clusters(shared: &Shared) -> String {
    let snapshot = shared.snapshot();
    let list: Vec<_> = snapshot
        .clusters
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.config.name,
                "protocol": format!("{:?}", c.config.protocol).to_lowercase(),
                "lb_policy": format!("{:?}", c.config.lb_policy),
                "health_checked": c.config.health_check.is_some(),
                "outlier_detection": c.outliers.is_some(),
                "endpoints": c.config.endpoints.iter().enumerate().map(|(i, e)| {
                    let outlier = c.outliers.as_ref().map(|o| o.state(i)).unwrap_or_default();
                    serde_json::json!({
                        "address": e.to_string(),
                        "weight": c.config.weights[i],
                        "healthy": c.health.is_healthy(i),
                        "ejected": outlier.ejected,
                        "times_ejected": outlier.times_ejected,
                        "consecutive_failures": outlier.consecutive_failures,
                        "in_rotation": c.in_rotation(i),
                        "active_requests": c.endpoint_active(i),
                    })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "clusters": list })).unwrap_or_default()
        + "\n"
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `POST /reload`: 200 with the new version, or 422 with every error (nothing changed).
async fn reload(reloader: &Arc<Reloader>) -> AdminResponse {
    let (status, body) = match reloader.reload("admin").await {
        Ok(version) => (
            StatusCode::OK,
            serde_json::json!({ "result": "ok", "version": version }),
        ),
        Err(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({
                "result": "error",
                "errors": errors.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        ),
    };
    respond(
        status,
        JSON,
        serde_json::to_string_pretty(&body).unwrap_or_default() + "\n",
    )
}

/// The last reload attempt as JSON (null before the first).
fn last_reload(shared: &Shared) -> serde_json::Value {
    let Some(r) = shared.last_reload() else {
        return serde_json::Value::Null;
    };
    serde_json::json!({
        "at_unix": unix_secs(r.at),
        "trigger": r.trigger,
        "result": if r.error.is_none() { "ok" } else { "error" },
        "version": r.version,
        "error": r.error,
        "took_ms": (r.took.as_secs_f64() * 1e3 * 10.0).round() / 10.0,
    })
}

fn filters(shared: &Shared) -> String {
    let snapshot = shared.snapshot();
    let list: Vec<_> = snapshot
        .listeners
        .iter()
        .flat_map(|l| l.filters.iter().map(move |p| (l, p)))
        .map(|(listener, plugin)| {
            serde_json::json!({
                "listener": &*listener.name,
                "name": plugin.spec.name,
                // Changes when a reload gives the filter new VMs; kept when it keeps them.
                "instance": plugin.id,
                "module": plugin.spec.module.display().to_string(),
                "sha256": plugin.module.sha256,
                "abi": plugin.module.abi.as_str(),
                "code_from": plugin.module.cache.as_str(),
                "root_id": plugin.spec.root_id,
                "vm_id": plugin.spec.vm_id,
                "fail_open": plugin.spec.fail_open,
                "loaded_at_unix": unix_secs(plugin.loaded_at),
                "vm_replacements": plugin.replaced.load(std::sync::atomic::Ordering::Relaxed),
            })
        })
        .collect();
    let dump = serde_json::json!({
        "version": snapshot.version,
        "loaded_at_unix": unix_secs(snapshot.loaded_at),
        "filters": list,
        "last_reload": last_reload(shared),
    });
    serde_json::to_string_pretty(&dump).unwrap_or_default() + "\n"
}
