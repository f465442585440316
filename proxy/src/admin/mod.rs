//! The admin endpoint (its own listener, loopback by default): readiness, the effective
//! config, clusters, and Prometheus metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::state::Shared;

type AdminResponse = Response<Full<Bytes>>;

const INDEX: &str = "weft admin\n\
GET /ready              200 when every worker is serving, 503 while starting or draining\n\
GET /config_dump        the effective config (defaults filled in) as JSON\n\
GET /clusters           clusters and their endpoints as JSON\n\
GET /stats/prometheus   metrics in Prometheus text format\n";

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
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
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, &req)) }
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

pub fn handle(shared: &Shared, req: &Request<Incoming>) -> AdminResponse {
    let path = req.uri().path();
    let known = matches!(
        path,
        "/" | "/ready" | "/config_dump" | "/clusters" | "/stats/prometheus"
    );
    if !known {
        return respond(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found; GET / lists the endpoints\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = respond(StatusCode::METHOD_NOT_ALLOWED, TEXT, "use GET\n");
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    match path {
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
                "endpoints": c.config.endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "clusters": list })).unwrap_or_default()
        + "\n"
}
