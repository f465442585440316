//! Test harness for end-to-end tests: a real `weft` process, real upstream servers and real
//! clients, all on loopback.
//!
//! - [`Weft::start`] writes a config, starts the binary with JSON logs, and learns the bound
//!   addresses from its `listening` log lines (configs use port 0).
//! - [`Upstream`] is a hyper server (HTTP/1.1 and h2c, or both over TLS) that records what it
//!   received, including the raw bytes, and behaves as the request asks (`x-delay-ms`,
//!   `/status/N`, ...).
//! - [`Pki`] makes a test CA and certificates at test time.
//! - [`raw_exchange`] speaks raw bytes to a listener, for framing and limit tests.

mod fixtures;
mod pki;
mod upstream;
mod weft;

pub use fixtures::{TARGETS, filter_module, fixture};
pub use pki::{Issued, Pki};
pub use upstream::{Recorded, TlsSession, Upstream};
pub use weft::{TempDir, Weft, validate_errors, weft_bin};

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

/// An HTTP/1.1 keep-alive client.
pub fn http1_client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// An HTTP/2 prior-knowledge (h2c) client.
pub fn http2_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends a request and reads the whole response.
pub async fn send(client: &TestClient, req: http::Request<Full<Bytes>>) -> Reply {
    let res = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("response within 30 s")
        .expect("request succeeded");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// GET `http://addr{path}` with extra headers.
pub async fn get(
    client: &TestClient,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut builder = http::Request::get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    send(client, builder.body(Full::default()).unwrap()).await
}

/// What a raw exchange produced: the bytes the server sent, and whether it then closed.
#[derive(Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    pub closed: bool,
}

impl RawReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Status codes of every response in the bytes, in order.
    pub fn statuses(&self) -> Vec<u16> {
        let text = self.text();
        text.match_indices("HTTP/1.1 ")
            .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
            .collect()
    }
}

/// Writes `request` and reads until the server closes or `wait` passes without new bytes.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> RawReply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return RawReply {
                    bytes,
                    closed: true,
                };
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => {
                return RawReply {
                    bytes,
                    closed: false,
                };
            }
        }
    }
}

/// A listener config block with the given routes (YAML, indented for `routes:`), on port 0.
pub fn listener_yaml(name: &str, limits: &str, routes: &str) -> String {
    format!("  - name: {name}\n    address: 127.0.0.1:0\n{limits}    routes:\n{routes}")
}

/// A cluster config block.
pub fn cluster_yaml(name: &str, endpoints: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "  - name: {name}\n    endpoints: [{}]\n{extra}",
        list.join(", ")
    )
}

/// An address on loopback where connecting is refused, reserved for as long as this lives:
/// the port is bound but not listening, so no other test's server can take it meanwhile
/// (a port merely bound and released can be, when tests run in parallel).
pub struct RefusedAddr {
    pub addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

pub fn refused_addr() -> RefusedAddr {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().unwrap())
        .expect("bind 127.0.0.1:0");
    RefusedAddr {
        addr: socket.local_addr().expect("local address"),
        _socket: socket,
    }
}
