//! The HTTP client for one cluster on one worker: a keep-alive pool per endpoint, HTTP/1.1
//! or HTTP/2 by the cluster's protocol, with the cluster's connect and idle timeouts, over
//! TCP or TLS as the cluster's [`Connector`] makes connections.
//!
//! HTTP/1.1 goes through weft's own pool and codec ([`Http1Pool`]), whose connections are
//! run by the requests that use them. HTTP/2 (h2c, or h2 over TLS) goes through hyper-util's pooled
//! client, whose connection tasks multiplex the streams of many requests.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connect::Connector;
use super::http1::{Http1Pool, PooledBody};
use super::limits::ConnectionLimits;
use crate::config::Cluster;
use crate::config::raw::UpstreamProtocol;
use crate::proxy::{BoxError, ProxyBody, strip_hop_by_hop};

#[derive(Clone, Debug)]
pub enum UpstreamClient {
    Http1(Arc<Http1Pool>),
    /// Boxed: hyper-util's client is several hundred bytes, the pool handle one pointer.
    Http2(Box<Client<Connector, ProxyBody>>),
}

/// Why an upstream request produced no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect to {endpoint} failed")]
    Connect {
        endpoint: SocketAddr,
        #[source]
        source: BoxError,
    },
    #[error("no response headers from {endpoint} within {timeout:?}")]
    Timeout {
        endpoint: SocketAddr,
        timeout: Duration,
    },
    /// The cluster's `max_connections` are open and `max_pending_requests` wait already.
    #[error("no connection to {endpoint}: the cluster's connection and pending limits are reached")]
    Overflow { endpoint: SocketAddr },
    #[error("request to {endpoint} failed")]
    Request {
        endpoint: SocketAddr,
        #[source]
        source: BoxError,
    },
}

impl UpstreamClient {
    /// A client for `cluster` on one worker, connecting with `connector`; an HTTP/1.1
    /// client counts its connections in `limits` (the cluster's, shared by every worker).
    pub fn new(cluster: &Cluster, connector: Connector, limits: &Arc<ConnectionLimits>) -> Self {
        if cluster.protocol == UpstreamProtocol::Http1 {
            let pool = Arc::new(Http1Pool::new(
                connector,
                limits.clone(),
                cluster.idle_timeout,
                cluster.max_idle_per_endpoint,
            ));
            limits.register(&pool);
            return UpstreamClient::Http1(pool);
        }
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(cluster.idle_timeout)
            .pool_max_idle_per_host(cluster.max_idle_per_endpoint)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .set_host(false)
            .http2_only(true);
        UpstreamClient::Http2(Box::new(builder.build(connector)))
    }

    /// Sends `req` (whose URI already names the endpoint) and waits up to `timeout` for the
    /// response head, which comes back without hop-by-hop fields.
    pub async fn send(
        &self,
        endpoint: SocketAddr,
        req: Request<ProxyBody>,
        timeout: Duration,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        match self {
            UpstreamClient::Http1(pool) => pool
                .send(endpoint, req, timeout)
                .await
                .map(|r| r.map(UpstreamBody::Pooled)),
            UpstreamClient::Http2(client) => {
                match tokio::time::timeout(timeout, client.request(req)).await {
                    Err(_) => Err(UpstreamError::Timeout { endpoint, timeout }),
                    Ok(Ok(mut response)) => {
                        // As the HTTP/1.1 client, which leaves them out as it reads the head.
                        strip_hop_by_hop(response.headers_mut(), false);
                        Ok(response.map(UpstreamBody::Shared))
                    }
                    Ok(Err(source)) if source.is_connect() => Err(UpstreamError::Connect {
                        endpoint,
                        source: source.into(),
                    }),
                    Ok(Err(source)) => Err(UpstreamError::Request {
                        endpoint,
                        source: source.into(),
                    }),
                }
            }
        }
    }
}

/// An upstream response body: from weft's HTTP/1.1 pool, or from hyper-util's client (h2c).
/// (The pooled body carries its exchange inline: the proxy boxes the whole body once
/// anyway, and a box of its own would be one more allocation per request.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum UpstreamBody {
    Pooled(PooledBody),
    Shared(Incoming),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Pooled(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Shared(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(BoxError::from))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Pooled(body) => body.is_end_stream(),
            UpstreamBody::Shared(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Pooled(body) => body.size_hint(),
            UpstreamBody::Shared(body) => body.size_hint(),
        }
    }
}
