//! Opening connections to a cluster's endpoints: TCP, then TLS for a cluster with a `tls`
//! block. One [`Connector`] per cluster serves weft's HTTP/1.1 pool, hyper-util's h2
//! client (as its connector service) and the health checks, so all three reach an
//! endpoint the same way.
//!
//! The cluster's `connect_timeout` covers the TCP connect and the TLS handshake together
//! (as in Envoy, where a connection counts as connected once its handshake is done). A
//! failed or timed-out handshake, and an upstream that picks an ALPN protocol other than
//! the cluster's, are connect failures, counted in the cluster's TLS handshake errors.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::Cluster;

/// Opens connections to one cluster's endpoints.
#[derive(Clone)]
pub struct Connector {
    timeout: Duration,
    tls: Option<Arc<TlsConnect>>,
}

/// What a TLS cluster's connections need beyond TCP.
struct TlsConnect {
    connector: TlsConnector,
    /// Each endpoint's address and the name its certificate is verified as.
    names: Vec<(SocketAddr, ServerName<'static>)>,
    protocol_alpn: &'static str,
    handshake_errors: Counter,
}

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("TCP connect failed")]
    Tcp(#[source] io::Error),
    #[error("no connection within {0:?}")]
    Timeout(Duration),
    #[error("TLS handshake (server name {server_name}) failed")]
    Handshake {
        server_name: String,
        #[source]
        source: io::Error,
    },
    #[error("the upstream chose ALPN protocol {chosen:?}; this cluster speaks {wanted:?}")]
    Alpn {
        chosen: String,
        wanted: &'static str,
    },
    #[error("{0} names no endpoint address")]
    NotAnEndpoint(Uri),
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

// === impl Connector ===

impl Connector {
    /// Plain TCP connections, each made within `timeout`.
    pub fn plain(timeout: Duration) -> Self {
        Connector { timeout, tls: None }
    }

    /// Connections as `cluster` wants them; failed TLS handshakes count in
    /// `handshake_errors`.
    pub fn for_cluster(cluster: &Cluster, handshake_errors: Counter) -> Self {
        let tls = cluster.tls.as_ref().map(|tls| {
            Arc::new(TlsConnect {
                connector: TlsConnector::from(tls.client_config.clone()),
                names: cluster
                    .endpoints
                    .iter()
                    .copied()
                    .zip(tls.server_names.iter().cloned())
                    .collect(),
                protocol_alpn: tls.protocol_alpn,
                handshake_errors,
            })
        });
        Connector {
            timeout: cluster.connect_timeout,
            tls,
        }
    }

    /// `https` for a TLS cluster, else `http`: the scheme of absolute request URIs (and
    /// so of HTTP/2's `:scheme`).
    pub fn scheme(&self) -> http::uri::Scheme {
        if self.tls.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        }
    }

    /// A connection to `endpoint`, through TLS when the cluster has it.
    pub async fn connect(&self, endpoint: SocketAddr) -> Result<UpstreamIo, ConnectError> {
        let deadline = Instant::now() + self.timeout;
        let tcp = match tokio::time::timeout_at(deadline, TcpStream::connect(endpoint)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(error)) => return Err(ConnectError::Tcp(error)),
            Err(_) => return Err(ConnectError::Timeout(self.timeout)),
        };
        tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
        let Some(tls) = &self.tls else {
            return Ok(UpstreamIo::Plain(tcp));
        };
        let result = tls.handshake(tcp, endpoint, deadline, self.timeout).await;
        if result.is_err() {
            tls.handshake_errors.inc();
        }
        result
    }
}

impl TlsConnect {
    async fn handshake(
        &self,
        tcp: TcpStream,
        endpoint: SocketAddr,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<UpstreamIo, ConnectError> {
        let server_name = self
            .names
            .iter()
            .find(|(address, _)| *address == endpoint)
            .map_or_else(
                || ServerName::IpAddress(endpoint.ip().into()),
                |(_, name)| name.clone(),
            );
        let handshake = self.connector.connect(server_name.clone(), tcp);
        let stream = match tokio::time::timeout_at(deadline, handshake).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(ConnectError::Handshake {
                    server_name: server_name.to_str().into_owned(),
                    source,
                });
            }
            Err(_) => return Err(ConnectError::Timeout(timeout)),
        };
        match stream.get_ref().1.alpn_protocol() {
            Some(chosen) if chosen != self.protocol_alpn.as_bytes() => Err(ConnectError::Alpn {
                chosen: String::from_utf8_lossy(chosen).into_owned(),
                wanted: self.protocol_alpn,
            }),
            _ => Ok(UpstreamIo::Tls(Box::new(stream))),
        }
    }
}

/// hyper-util's client asks for connections by URI; weft's URIs name the endpoint's
/// address (`http://10.0.0.7:8080/...`).
impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<UpstreamIo>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move {
            let endpoint = uri
                .authority()
                .and_then(|a| a.as_str().parse::<SocketAddr>().ok())
                .ok_or_else(|| ConnectError::NotAnEndpoint(uri.clone()))?;
            connector.connect(endpoint).await.map(TokioIo::new)
        })
    }
}

// === impl UpstreamIo ===

/// An open upstream connection, plain or TLS.
pub enum UpstreamIo {
    Plain(TcpStream),
    /// Boxed: a TLS session is much larger than a socket.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        match self {
            UpstreamIo::Tls(stream) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                Connected::new().negotiated_h2()
            }
            _ => Connected::new(),
        }
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            UpstreamIo::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            UpstreamIo::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(stream) => stream.is_write_vectored(),
            UpstreamIo::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(stream) => Pin::new(stream).poll_flush(cx),
            UpstreamIo::Tls(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            UpstreamIo::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests;
