//! Calls from filters to clusters named in the config, through the calling worker's own
//! connection pool, answered to the calling context.
//!
//! - Http calls (`proxy_http_call`), answered with `proxy_on_http_call_response`. As in
//!   Envoy: `:method`, `:path` and `:authority` are required and an unknown cluster is
//!   BAD_ARGUMENT; `:authority` becomes the Host header. A call that fails, times out, or
//!   whose response is larger than [`MAX_CALL_RESPONSE`] is delivered as a failure (no
//!   headers), which the SDK reports as a call with zero headers.
//! - Unary gRPC calls (`proxy_grpc_call`) over HTTP/2 (the cluster must be `protocol:
//!   http2`): answered with `proxy_on_grpc_receive` (status OK, the reply in buffer 5) or
//!   `proxy_on_grpc_close` (any other status; HTTP, transport and timeout failures mapped
//!   to gRPC codes as the gRPC spec says). An unknown cluster is PARSE_FAILURE.
//! - gRPC streams (`proxy_grpc_stream`): messages sent with `proxy_grpc_send` (end of
//!   stream with its flag, or `proxy_grpc_close`), answered with
//!   `proxy_on_grpc_receive_initial_metadata`, `proxy_on_grpc_receive` per message,
//!   `proxy_on_grpc_receive_trailing_metadata` and `proxy_on_grpc_close`.
//!   `proxy_grpc_cancel` ends a call or stream with no further callback.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Limited};
use tokio::sync::mpsc;

use super::abi::types::Status;
use super::state::{CallResponse, CallResult, GrpcHandle, GrpcResult, HostState, PendingCall};
use crate::cluster::ClusterRuntime;
use crate::config::raw::UpstreamProtocol;
use crate::proxy::full;

/// Bytes of a call's response body weft keeps; a larger response is a failure.
pub const MAX_CALL_RESPONSE: usize = 16 << 20;

/// Used when a filter passes a timeout of 0.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// gRPC status codes weft produces itself.
const GRPC_DEADLINE_EXCEEDED: u32 = 4;
const GRPC_UNIMPLEMENTED: u32 = 12;
const GRPC_INTERNAL: u32 = 13;
const GRPC_UNAVAILABLE: u32 = 14;
const GRPC_UNKNOWN: u32 = 2;

/// One http call as the guest asked for it.
pub struct HttpCall {
    pub upstream: String,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(Vec<u8>, Vec<u8>)>,
    pub timeout_ms: u32,
}

/// One unary gRPC call as the guest asked for it.
pub struct GrpcCall {
    pub target: GrpcStream,
    pub message: Vec<u8>,
    pub timeout_ms: u32,
}

fn pseudo<'a>(headers: &'a [(Vec<u8>, Vec<u8>)], name: &[u8]) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_slice())
}

fn timeout(ms: u32) -> Duration {
    match ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)),
    }
}

fn cluster<'a>(state: &'a HostState, name: &str) -> Option<&'a ClusterRuntime> {
    state.place.clusters.iter().find(|c| c.config.name == name)
}

fn headers_into(
    mut request: http::request::Builder,
    pairs: &[(Vec<u8>, Vec<u8>)],
) -> Result<http::request::Builder, Status> {
    for (name, value) in pairs.iter().filter(|(k, _)| !k.starts_with(b":")) {
        let name = HeaderName::from_bytes(name).map_err(|_| Status::BadArgument)?;
        let value = HeaderValue::from_bytes(value).map_err(|_| Status::BadArgument)?;
        request = request.header(name, value);
    }
    Ok(request)
}

fn next_token(state: &mut HostState) -> u32 {
    let token = state.next_token;
    state.next_token = state.next_token.wrapping_add(1).max(1);
    token
}

/// Records a call in flight (in the HTTP context that made it, or the root context).
fn register(state: &mut HostState, token: u32, events: mpsc::UnboundedReceiver<CallResult>) -> u32 {
    let pending = PendingCall {
        token,
        context: state.effective_context,
        events,
    };
    match state.stream.as_mut() {
        Some(stream) => stream.new_calls.push(pending),
        None => state.root_calls.push(pending),
    }
    token
}

fn pairs(headers: &http::HeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Starts an http call on the current (worker) runtime; returns its token.
pub fn dispatch(state: &mut HostState, call: HttpCall) -> Result<u32, Status> {
    let (Some(method), Some(path), Some(authority)) = (
        pseudo(&call.headers, b":method"),
        pseudo(&call.headers, b":path"),
        pseudo(&call.headers, b":authority"),
    ) else {
        return Err(Status::BadArgument);
    };
    let method = Method::from_bytes(method).map_err(|_| Status::BadArgument)?;
    let authority = HeaderValue::from_bytes(authority).map_err(|_| Status::BadArgument)?;
    let path = std::str::from_utf8(path)
        .map_err(|_| Status::BadArgument)?
        .to_string();
    let worker = state.place.worker;
    let cluster = cluster(state, &call.upstream).ok_or(Status::BadArgument)?;
    let endpoint = cluster.pick(worker);
    let uri: Uri = format!("{}://{endpoint}{path}", cluster.connector.scheme())
        .parse()
        .map_err(|_| Status::BadArgument)?;
    let request = headers_into(Request::builder().method(method).uri(uri), &call.headers)?;
    let mut request = request
        .body(full(call.body))
        .map_err(|_| Status::BadArgument)?;
    request.headers_mut().insert(http::header::HOST, authority);
    if !call.trailers.is_empty() {
        tracing::debug!(target: "weft::wasm", plugin = %state.plugin.name, "http call trailers are not sent");
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Status::InternalFailure)?;
    let client = cluster.worker(worker).client.clone();
    let timeout = timeout(call.timeout_ms);
    let plugin = state.plugin.name.clone();
    let (tx, rx) = mpsc::unbounded_channel();
    runtime.spawn(async move {
        let result = tokio::time::timeout(timeout, async {
            let response = client
                .send(endpoint, request, timeout)
                .await
                .map_err(|e| crate::error::chain(&e))?;
            let (parts, body) = response.into_parts();
            let collected = Limited::new(body, MAX_CALL_RESPONSE)
                .collect()
                .await
                .map_err(|e| format!("reading the response: {e}"))?;
            let trailers = collected.trailers().map(pairs).unwrap_or_default();
            let mut headers = vec![(
                b":status".to_vec(),
                parts.status.as_str().as_bytes().to_vec(),
            )];
            headers.extend(pairs(&parts.headers));
            Ok::<_, String>(CallResponse {
                headers,
                body: collected.to_bytes(),
                trailers,
            })
        })
        .await
        .unwrap_or_else(|_| Err(format!("no complete response within {timeout:?}")));
        let delivered = result
            .map_err(
                |error| tracing::warn!(target: "weft::wasm", %plugin, %error, "http call failed"),
            )
            .ok();
        let _ = tx.send(CallResult::Http(delivered));
    });
    let token = next_token(state);
    Ok(register(state, token, rx))
}

/// A gRPC request ready to go out on the calling worker's pool.
struct GrpcRequest {
    endpoint: std::net::SocketAddr,
    client: crate::cluster::UpstreamClient,
    /// The cluster's time to wait for the reply head.
    head_timeout: Duration,
    request: Request<crate::proxy::ProxyBody>,
}

/// `POST /<service>/<method>` with the gRPC content type, `te: trailers`, the guest's
/// metadata, `grpc-timeout` when given and Host naming the cluster, to an endpoint of the
/// target cluster (which must speak HTTP/2).
fn grpc_request(
    state: &HostState,
    target: &GrpcStream,
    grpc_timeout: Option<String>,
    body: crate::proxy::ProxyBody,
) -> Result<GrpcRequest, Status> {
    let worker = state.place.worker;
    let cluster = cluster(state, &target.upstream).ok_or(Status::ParseFailure)?;
    if cluster.config.protocol != UpstreamProtocol::Http2 {
        tracing::warn!(target: "weft::wasm", plugin = %state.plugin.name, cluster = %target.upstream, "gRPC needs a cluster with protocol: http2");
        return Err(Status::InternalFailure);
    }
    let endpoint = cluster.pick(worker);
    let uri: Uri = format!(
        "{}://{endpoint}/{}/{}",
        cluster.connector.scheme(),
        target.service,
        target.method
    )
    .parse()
    .map_err(|_| Status::ParseFailure)?;
    let mut builder = headers_into(
        Request::builder().method(Method::POST).uri(uri),
        &target.metadata,
    )?
    .header(http::header::CONTENT_TYPE, "application/grpc")
    .header(http::header::TE, "trailers");
    if let Some(value) = grpc_timeout {
        builder = builder.header("grpc-timeout", value);
    }
    let mut request = builder.body(body).map_err(|_| Status::ParseFailure)?;
    if let Ok(host) = HeaderValue::from_str(&target.upstream) {
        request.headers_mut().insert(http::header::HOST, host);
    }
    Ok(GrpcRequest {
        endpoint,
        client: cluster.worker(worker).client.clone(),
        head_timeout: cluster.config.request_timeout,
        request,
    })
}

/// Starts a unary gRPC call on the current (worker) runtime; returns its token.
pub fn dispatch_grpc(state: &mut HostState, call: GrpcCall) -> Result<u32, Status> {
    let timeout = timeout(call.timeout_ms);
    let mut framed = BytesMut::with_capacity(5 + call.message.len());
    framed.put_u8(0);
    framed.put_u32(call.message.len() as u32);
    framed.put_slice(&call.message);
    let grpc_timeout = format!("{}m", timeout.as_millis());
    let GrpcRequest {
        endpoint,
        client,
        request,
        ..
    } = grpc_request(
        state,
        &call.target,
        Some(grpc_timeout),
        full(framed.freeze()),
    )?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Status::InternalFailure)?;
    let plugin = state.plugin.name.clone();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = runtime.spawn(async move {
        let result = match tokio::time::timeout(timeout, grpc_exchange(client, endpoint, request, timeout)).await {
            Ok(result) => result,
            Err(_) => GrpcResult {
                status: GRPC_DEADLINE_EXCEEDED,
                status_message: format!("no reply within {timeout:?}"),
                message: None,
            },
        };
        if result.status != 0 {
            tracing::debug!(target: "weft::wasm", %plugin, status = result.status, message = %result.status_message, "gRPC call ended with an error status");
        }
        let _ = tx.send(CallResult::Grpc(result));
    });
    let token = next_token(state);
    state.grpc.insert(
        token,
        GrpcHandle {
            messages: None,
            task: task.abort_handle(),
        },
    );
    Ok(register(state, token, rx))
}

async fn grpc_exchange(
    client: crate::cluster::UpstreamClient,
    endpoint: std::net::SocketAddr,
    request: Request<crate::proxy::ProxyBody>,
    timeout: Duration,
) -> GrpcResult {
    let fail = |status, message: String| GrpcResult {
        status,
        status_message: message,
        message: None,
    };
    let response = match client.send(endpoint, request, timeout).await {
        Ok(response) => response,
        Err(error) => return fail(GRPC_UNAVAILABLE, crate::error::chain(&error)),
    };
    let (parts, body) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        // gRPC's mapping of HTTP statuses to codes.
        let status = match parts.status.as_u16() {
            400 => GRPC_INTERNAL,
            401 => 16,
            403 => 7,
            404 => GRPC_UNIMPLEMENTED,
            429 | 502..=504 => GRPC_UNAVAILABLE,
            _ => GRPC_UNKNOWN,
        };
        return fail(status, format!("HTTP status {}", parts.status));
    }
    let collected = match Limited::new(body, MAX_CALL_RESPONSE).collect().await {
        Ok(collected) => collected,
        Err(error) => return fail(GRPC_INTERNAL, format!("reading the reply: {error}")),
    };
    // grpc-status comes in the trailers, or in the headers of a trailers-only reply.
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status_of = |map: &http::HeaderMap| {
        map.get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
    };
    let message_of = |map: &http::HeaderMap| {
        map.get("grpc-message")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    let (status, status_message) = match (status_of(&trailers), status_of(&parts.headers)) {
        (Some(status), _) => (status, message_of(&trailers)),
        (None, Some(status)) => (status, message_of(&parts.headers)),
        (None, None) => return fail(GRPC_INTERNAL, "the reply has no grpc-status".into()),
    };
    if status != 0 {
        return fail(status, status_message);
    }
    let mut body = collected.to_bytes();
    if body.len() < 5 {
        return fail(GRPC_INTERNAL, "the reply has no message".into());
    }
    let compressed = body.get_u8();
    let length = body.get_u32() as usize;
    if compressed != 0 {
        return fail(GRPC_INTERNAL, "compressed replies are not supported".into());
    }
    if body.len() < length {
        return fail(GRPC_INTERNAL, "the reply message is truncated".into());
    }
    GrpcResult {
        status: 0,
        status_message,
        message: Some(body.slice(..length)),
    }
}

/// One gRPC stream as the guest opened it.
pub struct GrpcStream {
    pub upstream: String,
    pub service: String,
    pub method: String,
    pub metadata: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A gRPC request body fed by `proxy_grpc_send`: each message length-prefixed; it ends at
/// a message sent with end of stream, or when the guest closes the stream.
struct MessageBody {
    rx: mpsc::UnboundedReceiver<(bytes::Bytes, bool)>,
    ended: bool,
}

impl http_body::Body for MessageBody {
    type Data = bytes::Bytes;
    type Error = crate::proxy::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.ended {
            return std::task::Poll::Ready(None);
        }
        match std::task::ready!(self.rx.poll_recv(cx)) {
            Some((message, end)) => {
                self.ended = end;
                let mut framed = BytesMut::with_capacity(5 + message.len());
                framed.put_u8(0);
                framed.put_u32(message.len() as u32);
                framed.put_slice(&message);
                std::task::Poll::Ready(Some(Ok(http_body::Frame::data(framed.freeze()))))
            }
            None => {
                self.ended = true;
                std::task::Poll::Ready(None)
            }
        }
    }
}

/// Opens a gRPC stream on the current (worker) runtime; returns its token.
pub fn dispatch_grpc_stream(state: &mut HostState, call: GrpcStream) -> Result<u32, Status> {
    let (messages_tx, messages_rx) = mpsc::unbounded_channel();
    let body = MessageBody {
        rx: messages_rx,
        ended: false,
    };
    let GrpcRequest {
        endpoint,
        client,
        head_timeout,
        request,
    } = grpc_request(
        state,
        &call,
        None,
        http_body_util::BodyExt::boxed_unsync(body),
    )?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Status::InternalFailure)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let task = runtime.spawn(async move {
        let close = |status, message: String| {
            CallResult::GrpcClose(GrpcResult {
                status,
                status_message: message,
                message: None,
            })
        };
        let response = match client.send(endpoint, request, head_timeout).await {
            Ok(response) => response,
            Err(error) => {
                let _ = tx.send(close(GRPC_UNAVAILABLE, crate::error::chain(&error)));
                return;
            }
        };
        let (parts, mut body) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            let _ = tx.send(close(
                GRPC_UNAVAILABLE,
                format!("HTTP status {}", parts.status),
            ));
            return;
        }
        let status_of = |map: &http::HeaderMap| {
            map.get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok())
                .map(|status| {
                    let message = map
                        .get("grpc-message")
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .unwrap_or_default();
                    (status, message)
                })
        };
        // A trailers-only reply: the status is in the headers.
        if let Some((status, message)) = status_of(&parts.headers) {
            let _ = tx.send(close(status, message));
            return;
        }
        let _ = tx.send(CallResult::GrpcInitialMetadata(pairs(&parts.headers)));
        let mut pending = BytesMut::new();
        loop {
            match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        pending.extend_from_slice(&data);
                        // Every complete message in what arrived so far.
                        while pending.len() >= 5 {
                            let length = u32::from_be_bytes([
                                pending[1], pending[2], pending[3], pending[4],
                            ]) as usize;
                            if pending.len() < 5 + length {
                                break;
                            }
                            let mut message = pending.split_to(5 + length);
                            if message[0] != 0 {
                                let _ = tx.send(close(
                                    GRPC_INTERNAL,
                                    "compressed messages are not supported".into(),
                                ));
                                return;
                            }
                            message.advance(5);
                            if tx.send(CallResult::GrpcMessage(message.freeze())).is_err() {
                                return;
                            }
                        }
                    }
                    Err(frame) => {
                        let trailers = frame.into_trailers().unwrap_or_default();
                        let (status, message) = status_of(&trailers)
                            .unwrap_or((GRPC_INTERNAL, "the stream has no grpc-status".into()));
                        let _ = tx.send(CallResult::GrpcTrailingMetadata(pairs(&trailers)));
                        let _ = tx.send(close(status, message));
                        return;
                    }
                },
                Some(Err(error)) => {
                    let _ = tx.send(close(
                        GRPC_UNAVAILABLE,
                        format!("the stream broke: {error}"),
                    ));
                    return;
                }
                None => {
                    let _ = tx.send(close(
                        GRPC_INTERNAL,
                        "the stream ended without grpc-status".into(),
                    ));
                    return;
                }
            }
        }
    });
    let token = next_token(state);
    state.grpc.insert(
        token,
        GrpcHandle {
            messages: Some(messages_tx),
            task: task.abort_handle(),
        },
    );
    Ok(register(state, token, rx))
}
