//! Http calls from filters (`proxy_http_call`): sent to a cluster named in the config
//! through the calling worker's own connection pool, answered to the calling context with
//! `proxy_on_http_call_response`.
//!
//! As in Envoy: `:method`, `:path` and `:authority` are required and an unknown cluster is
//! BAD_ARGUMENT; `:authority` becomes the Host header. A call that fails, times out, or
//! whose response is larger than [`MAX_CALL_RESPONSE`] is delivered as a failure (no
//! headers), which the SDK reports as a call with zero headers.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Limited};
use tokio::sync::oneshot;

use super::abi::types::Status;
use super::state::{CallResponse, HostState, PendingCall};
use crate::proxy::full;

/// Bytes of an http call's response body weft keeps; a larger response is a failure.
pub const MAX_CALL_RESPONSE: usize = 16 << 20;

/// Used when a filter passes a timeout of 0.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// One call as the guest asked for it.
pub struct HttpCall {
    pub upstream: String,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(Vec<u8>, Vec<u8>)>,
    pub timeout_ms: u32,
}

fn pseudo<'a>(headers: &'a [(Vec<u8>, Vec<u8>)], name: &[u8]) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_slice())
}

/// Starts the call on the current (worker) runtime; returns its token.
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
    let cluster = state
        .place
        .clusters
        .iter()
        .find(|c| c.config.name == call.upstream)
        .ok_or(Status::BadArgument)?;
    let endpoint = cluster.pick(worker);
    let uri: Uri = format!("http://{endpoint}{path}")
        .parse()
        .map_err(|_| Status::BadArgument)?;
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in call.headers.iter().filter(|(k, _)| !k.starts_with(b":")) {
        let name = HeaderName::from_bytes(name).map_err(|_| Status::BadArgument)?;
        let value = HeaderValue::from_bytes(value).map_err(|_| Status::BadArgument)?;
        request = request.header(name, value);
    }
    let mut request = request
        .body(full(call.body))
        .map_err(|_| Status::BadArgument)?;
    request.headers_mut().insert(http::header::HOST, authority);
    if !call.trailers.is_empty() {
        tracing::debug!(target: "weft::wasm", plugin = %state.plugin.name, "http call trailers are not sent");
    }

    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Status::InternalFailure)?;
    let client = cluster.worker(worker).client.clone();
    let timeout = match call.timeout_ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)),
    };
    let plugin = state.plugin.name.clone();
    let (tx, rx) = oneshot::channel();
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
        let delivered = match result {
            Ok(response) => Some(response),
            Err(error) => {
                tracing::warn!(target: "weft::wasm", %plugin, %error, "http call failed");
                None
            }
        };
        let _ = tx.send(delivered);
    });

    let token = state.next_token;
    state.next_token = state.next_token.wrapping_add(1).max(1);
    let pending = PendingCall {
        token,
        context: state.effective_context,
        result: rx,
    };
    match state.stream.as_mut() {
        Some(stream) => stream.new_calls.push(pending),
        None => state.root_calls.push(pending),
    }
    Ok(token)
}

fn pairs(headers: &http::HeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}
