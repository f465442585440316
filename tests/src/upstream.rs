//! A real upstream server for tests: HTTP/1.1 and h2c on one port (or, started with
//! [`Upstream::start_tls`], HTTP/1.1 and h2 over TLS), recording every request, every
//! connection, every TLS session, and every raw (plaintext) byte it receives.
//!
//! What it answers is chosen by the request:
//! - `x-delay-ms: N` waits N ms before answering;
//! - `/status/N` answers with status N;
//! - `/echo-body` streams the request body back;
//! - `/bytes/N` streams N bytes back in 64 KiB chunks;
//! - a gRPC request (`content-type: application/grpc`) gets `echo:<message>` with
//!   grpc-status 0 in trailers (and each request trailer back as `echo-<name>`), or
//!   grpc-status 7 for a method whose name ends in `Fail`; a method ending in `Chat` is a
//!   streaming echo (each message back as `echo:<message>` as it arrives);
//! - anything else: 200 with body `<name> <method> <path>`.
//!
//! On demand ([`Upstream::fail_with`]) every request is answered with a given status
//! instead; [`Upstream::kill`] closes the listener and every open connection, as a crashed
//! server would.
//!
//! Every response has `x-upstream: <name>`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

/// A request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    /// The scheme of the request target, when it had one (HTTP/2's `:scheme`).
    pub scheme: Option<String>,
}

/// What a TLS upstream saw of one handshake that succeeded.
#[derive(Clone, Debug)]
pub struct TlsSession {
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
    /// The client certificate (DER), when the client sent one.
    pub client_cert: Option<Vec<u8>>,
}

#[derive(Default)]
struct State {
    connections: AtomicUsize,
    /// Nonzero: the status every request gets.
    failing: AtomicU16,
    requests: Mutex<Vec<Recorded>>,
    raw: Mutex<Vec<u8>>,
    tls_sessions: Mutex<Vec<TlsSession>>,
    tls_failures: AtomicUsize,
}

/// A running upstream; stops accepting when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
    /// Set to true by `kill`: every connection task closes its connection.
    killed: tokio::sync::watch::Sender<bool>,
}

impl Upstream {
    /// Starts on 127.0.0.1 (an ephemeral port) in the current tokio runtime.
    pub async fn start(name: &str) -> Upstream {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(name: &str, addr: SocketAddr) -> Upstream {
        Self::listen(name, addr, None).await
    }

    /// Starts on 127.0.0.1 speaking TLS with `config` (its ALPN list decides HTTP/1.1 or h2).
    pub async fn start_tls(name: &str, config: Arc<rustls::ServerConfig>) -> Upstream {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        Self::listen(name, "127.0.0.1:0".parse().unwrap(), Some(acceptor)).await
    }

    async fn listen(
        name: &str,
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Upstream {
        let listener = TcpListener::bind(addr).await.expect("bind upstream");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let (killed, watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(accept_loop(
            listener,
            name.to_string(),
            state.clone(),
            tls,
            watch,
        ));
        Upstream {
            addr,
            name: name.to_string(),
            state,
            task,
            killed,
        }
    }

    /// From now on every request is answered with `status` (0: as usual again).
    pub fn fail_with(&self, status: u16) {
        self.state.failing.store(status, Ordering::SeqCst);
    }

    /// Stops accepting and closes every open connection at once.
    pub fn kill(&self) {
        self.task.abort();
        let _ = self.killed.send(true);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// The TLS handshakes that succeeded, in order.
    pub fn tls_sessions(&self) -> Vec<TlsSession> {
        self.state.tls_sessions.lock().unwrap().clone()
    }

    /// TLS handshakes that failed.
    pub fn tls_failures(&self) -> usize {
        self.state.tls_failures.load(Ordering::SeqCst)
    }

    /// Every byte received on every connection, in arrival order.
    pub fn raw(&self) -> Vec<u8> {
        self.state.raw.lock().unwrap().clone()
    }

    /// Stops accepting (connections already open keep going until they close).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    name: String,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    killed: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let state = state.clone();
        let name = name.clone();
        let tls = tls.clone();
        let mut killed = killed.clone();
        tokio::spawn(async move {
            let connection = async move {
                match tls {
                    None => serve(stream, name, state).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(stream) => {
                            let (_, session) = stream.get_ref();
                            let seen = TlsSession {
                                sni: session.server_name().map(str::to_string),
                                alpn: session.alpn_protocol().map(<[u8]>::to_vec),
                                client_cert: session
                                    .peer_certificates()
                                    .and_then(|chain| chain.first())
                                    .map(|cert| cert.as_ref().to_vec()),
                            };
                            state.tls_sessions.lock().unwrap().push(seen);
                            serve(stream, name, state).await
                        }
                        Err(_) => {
                            state.tls_failures.fetch_add(1, Ordering::SeqCst);
                        }
                    },
                }
            };
            // Dropping the connection closes it.
            tokio::select! {
                _ = connection => {}
                _ = killed.wait_for(|k| *k) => {}
            }
        });
    }
}

/// Serves HTTP/1.1 and HTTP/2 on one connection (plain or TLS).
async fn serve<S>(stream: S, name: String, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Recording {
        inner: stream,
        state: state.clone(),
    });
    let service = service_fn(move |req| respond(name.clone(), state.clone(), req));
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

async fn respond(
    name: String,
    state: Arc<State>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    state.requests.lock().unwrap().push(Recorded {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        version: req.version(),
        headers: req.headers().clone(),
        scheme: req.uri().scheme_str().map(str::to_string),
    });
    if let Some(ms) = req
        .headers()
        .get("x-delay-ms")
        .and_then(|v| v.to_str().ok()?.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let failing = state.failing.load(Ordering::SeqCst);
    if failing != 0 {
        let mut res = http::Response::new(full(format!("{name} failing with {failing}")));
        *res.status_mut() = http::StatusCode::from_u16(failing).unwrap();
        res.headers_mut()
            .insert("x-upstream", http::HeaderValue::from_str(&name).unwrap());
        return Ok(res);
    }
    let path = req.uri().path().to_string();
    let grpc = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        return Ok(grpc_reply(&name, &path, req).await);
    }
    let mut status = 200;
    let body: Body = if let Some(code) = path.strip_prefix("/status/") {
        status = code.parse().unwrap_or(500);
        full(format!("{name} status {status}"))
    } else if path == "/echo-body" {
        req.into_body().map_err(Into::into).boxed()
    } else if let Some(n) = path.strip_prefix("/bytes/") {
        let total: u64 = n.parse().unwrap_or(0);
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let mut left = total;
        let stream = futures_util::stream::poll_fn(move |_| {
            if left == 0 {
                return Poll::Ready(None);
            }
            let n = left.min(chunk.len() as u64) as usize;
            left -= n as u64;
            Poll::Ready(Some(Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                Frame::data(chunk.slice(..n)),
            )))
        });
        StreamBody::new(stream).boxed()
    } else {
        // Drain the request body before answering.
        let _ = req.into_body().collect().await;
        full(format!("{name} {path}"))
    };
    let mut res = http::Response::new(body);
    *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
    res.headers_mut()
        .insert("x-upstream", name.parse().unwrap());
    Ok(res)
}

/// A gRPC reply: `echo:<message>` with grpc-status 0 in trailers, or, for a method whose
/// name ends in `Fail`, a trailers-only reply with grpc-status 7 (PERMISSION_DENIED).
async fn grpc_reply(name: &str, path: &str, req: http::Request<Incoming>) -> http::Response<Body> {
    if path.ends_with("Chat") {
        return grpc_chat(name, req);
    }
    let collected = req.into_body().collect().await.ok();
    let request_trailers = collected
        .as_ref()
        .and_then(|c| c.trailers().cloned())
        .unwrap_or_default();
    let body = collected.map(|c| c.to_bytes()).unwrap_or_default();
    let message = body.get(5..).unwrap_or_default();
    let mut res = if path.ends_with("Fail") {
        let mut res = http::Response::new(full(String::new()));
        res.headers_mut()
            .insert("grpc-status", "7".parse().unwrap());
        res.headers_mut()
            .insert("grpc-message", "denied".parse().unwrap());
        res
    } else {
        let mut reply = b"echo:".to_vec();
        reply.extend_from_slice(message);
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(reply.len() as u32).to_be_bytes());
        framed.extend_from_slice(&reply);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        // Request trailers come back as echo-<name>.
        for (k, v) in &request_trailers {
            let name = http::HeaderName::from_bytes(format!("echo-{k}").as_bytes()).unwrap();
            trailers.append(name, v.clone());
        }
        let frames = vec![
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from(framed))),
            Ok(Frame::trailers(trailers)),
        ];
        http::Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed())
    };
    res.headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    res.headers_mut()
        .insert("x-upstream", name.parse().unwrap());
    res
}

/// A streaming gRPC echo: each request message comes back as `echo:<message>` as soon
/// as it arrives; grpc-status 0 follows the end of the request.
fn grpc_chat(name: &str, req: http::Request<Incoming>) -> http::Response<Body> {
    type Item = Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>;
    let (tx, rx) = tokio::sync::mpsc::channel::<Item>(8);
    let mut body = req.into_body();
    tokio::spawn(async move {
        let mut pending = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while pending.len() >= 5 {
                let length =
                    u32::from_be_bytes([pending[1], pending[2], pending[3], pending[4]]) as usize;
                if pending.len() < 5 + length {
                    break;
                }
                let message: Vec<u8> = pending.drain(..5 + length).skip(5).collect();
                let mut reply = b"echo:".to_vec();
                reply.extend_from_slice(&message);
                let mut framed = vec![0u8];
                framed.extend_from_slice(&(reply.len() as u32).to_be_bytes());
                framed.extend_from_slice(&reply);
                let _ = tx.send(Ok(Frame::data(Bytes::from(framed)))).await;
            }
        }
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let _ = tx.send(Ok(Frame::trailers(trailers))).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut res = http::Response::new(StreamBody::new(stream).boxed());
    res.headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    res.headers_mut()
        .insert("x-upstream", name.parse().unwrap());
    res
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

/// Records every byte read from the connection.
struct Recording<S> {
    inner: S,
    state: Arc<State>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recording<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let new = &buf.filled()[before..];
        // Large bodies are not kept whole: the first bytes of each read are enough to check framing.
        if !new.is_empty() {
            let mut raw = self.state.raw.lock().unwrap();
            if raw.len() < 1 << 20 {
                raw.extend_from_slice(&new[..new.len().min(4096)]);
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recording<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
