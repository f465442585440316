//! The HTTP client for one cluster on one worker: a keep-alive pool per endpoint, HTTP/1.1
//! or h2c by the cluster's protocol, with the cluster's connect and idle timeouts.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::Cluster;
use crate::config::raw::UpstreamProtocol;
use crate::proxy::ProxyBody;

#[derive(Clone, Debug)]
pub struct UpstreamClient {
    client: Client<HttpConnector, ProxyBody>,
}

/// Why an upstream request produced no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect to {endpoint} failed")]
    Connect {
        endpoint: SocketAddr,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("no response headers from {endpoint} within {timeout:?}")]
    Timeout {
        endpoint: SocketAddr,
        timeout: Duration,
    },
    #[error("request to {endpoint} failed")]
    Request {
        endpoint: SocketAddr,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
}

impl UpstreamClient {
    pub fn new(cluster: &Cluster) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cluster.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(cluster.idle_timeout)
            .pool_max_idle_per_host(cluster.max_idle_per_endpoint)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .set_host(false)
            .http2_only(cluster.protocol == UpstreamProtocol::Http2);
        UpstreamClient {
            client: builder.build(connector),
        }
    }

    /// Sends `req` (whose URI already names the endpoint) and waits up to `timeout` for the
    /// response head.
    pub async fn send(
        &self,
        endpoint: SocketAddr,
        req: Request<ProxyBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout { endpoint, timeout }),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(source)) if source.is_connect() => {
                Err(UpstreamError::Connect { endpoint, source })
            }
            Ok(Err(source)) => Err(UpstreamError::Request { endpoint, source }),
        }
    }
}
