//! The request path: edge checks, route selection, then a local answer or a forward to an
//! upstream cluster, with the response streamed back.
//!
//! ```text
//! accept -> hardening::check -> routing::select -> direct | redirect | forward
//!                                                            |
//!                      ResponseBody (counts, logs on end) <--+-- cluster pool
//! ```

mod body;
pub mod conn;
mod early;
mod exchange;
mod filters;
mod hardening;
mod headers;
pub(crate) use hardening::{BodyLength, FramingCheck, Rejection, host_count};
pub use headers::Present;
pub(crate) use headers::{
    ConnectionField, is_hop_by_hop, lists, parse_content_length, strip_hop_by_hop, visible_ascii,
};
mod local;
mod pump;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;

pub use body::{BoxError, DownstreamBody, ProxyBody, empty, full};
use body::{IntoProxyBody, RequestBody, ResponseBody};
pub use conn::{Activity, ConnContext};
use exchange::Exchange;
pub use exchange::FILTER_ROUTE;
pub use filters::events as call_events;
use filters::{BodyStop, FilterRun, Verdict};
pub use headers::client_address_value;

use crate::cluster::UpstreamError;
use crate::config::RouteAction;
use crate::config::raw::UpstreamProtocol;
use crate::routing::{self, RequestHead};
use crate::snapshot::Snapshot;
use crate::wasm::state::StreamInfo;

/// Handles one downstream request to its response head; the body streams afterwards.
///
/// `present` says which of the headers the path looks up the head may carry: what weft's
/// HTTP/1 parser found, which also applied the edge checks; [`Present::ANY`] for HTTP/2.
pub async fn handle(
    conn: Arc<ConnContext>,
    req: Request<DownstreamBody>,
    mut present: Present,
) -> Result<Response<ProxyBody>, Infallible> {
    let snapshot = conn.shared.snapshot();
    let (mut parts, body) = req.into_parts();
    let mut exchange = Exchange::start(conn.clone(), snapshot.clone(), &parts);
    let listener = &snapshot.config.listeners[conn.listener];
    let metrics = &snapshot.listeners[conn.listener].metrics;

    if parts.version == Version::HTTP_2 {
        if let Err(rejection) = hardening::check(&parts, &listener.limits) {
            return Ok(finish(exchange, rejection.answer(metrics)).await);
        }
    }

    let request_id = headers::ensure_request_id(&mut parts.headers, present);
    exchange.request_id = Some(request_id.clone());

    if !snapshot.listeners[conn.listener].filters.is_empty() {
        // What the filters' properties read; made only for a chain that can read it.
        let info = StreamInfo {
            listener: snapshot.listeners[conn.listener].name.clone(),
            peer: conn.peer,
            local: conn.local,
            start: std::time::SystemTime::now(),
            protocol: parts.version,
            request_id: Some(request_id),
            connection_id: conn.id,
            tls: conn.tls.clone(),
        };
        let end_of_stream = http_body::Body::is_end_stream(&body);
        let mut run = FilterRun::new(snapshot.clone(), conn.listener, conn.worker, info, parts);
        let verdict = match run.request_headers(end_of_stream) {
            Ok(verdict) => verdict,
            // Boxed: most requests never wait for a filter.
            Err(paused) => Box::pin(run.resume_request_headers(paused, end_of_stream)).await,
        };
        parts = clone_head(&run.stream().request);
        // Filters may have set any header.
        present = Present::ANY;
        exchange.filters = Some(run);
        match verdict {
            Verdict::Continue => {}
            Verdict::Reply(reply) => return Ok(finish(exchange, local::from_filter(reply)).await),
            Verdict::Fail(why) => {
                return Ok(finish(exchange, local::filter_failure(&why)).await);
            }
        }
    }

    let authority = routing::request_authority(&parts);
    let host = routing::request_host(authority.as_ref().and_then(|a| a.to_str().ok()));
    let peer = conn.tls.as_ref().and_then(|t| t.peer.as_ref());
    let head = RequestHead::new(&parts, &host).with_peer(peer);
    let matched = routing::select(&listener.routes, &head);

    // The routing contract: a filter that set the property `weft.cluster` chooses the
    // cluster itself; a matching route still gives its timeout.
    let chosen = exchange
        .filters
        .as_mut()
        .and_then(|run| run.chosen_cluster());
    let (cluster, route) = if let Some(name) = chosen {
        let Some(cluster) = snapshot.config.clusters.iter().position(|c| c.name == name) else {
            tracing::error!(cluster = %name, "a filter chose a cluster that does not exist");
            let why = format!("a filter chose cluster {name:?}, which does not exist\n");
            return Ok(finish(
                exchange,
                local::text(StatusCode::INTERNAL_SERVER_ERROR, why),
            )
            .await);
        };
        exchange.filter_routed = Some(cluster);
        (cluster, matched.map(|r| &listener.routes[r]))
    } else {
        let Some(route_index) = matched else {
            return Ok(finish(
                exchange,
                local::text(StatusCode::NOT_FOUND, "no route matched this request\n"),
            )
            .await);
        };
        let route = &listener.routes[route_index];
        exchange.route = Some((route_index, 0));
        if let Some(run) = exchange.filters.as_mut() {
            // Filters read it as `route_name`, also for direct responses and redirects.
            run.stream().route = Some(
                snapshot.listeners[conn.listener].routes[route_index]
                    .name
                    .clone(),
            );
        }

        if let Some(fault) = &route.fault {
            if let Some(reply) = inject_fault(fault, &parts.headers, metrics).await {
                return Ok(finish(exchange, reply).await);
            }
        }

        let (cluster, target) = match &route.action {
            RouteAction::Direct {
                status,
                body,
                content_type,
            } => {
                let reply = local::direct(*status, body.clone(), content_type);
                return Ok(finish(exchange, reply).await);
            }
            RouteAction::Redirect(redirect) => {
                let location = local::redirect_location(
                    redirect,
                    route.matcher.path.as_ref(),
                    authority.as_ref().and_then(|a| a.to_str().ok()),
                    parts.uri.path(),
                    parts.uri.query(),
                );
                return Ok(finish(exchange, local::redirect(redirect.status, &location)).await);
            }
            RouteAction::Cluster(cluster) => (*cluster, 0),
            RouteAction::Weighted(targets) => {
                let total: u32 = targets.iter().map(|t| t.weight).sum();
                let mut roll = fastrand::u32(..total);
                let target = targets
                    .iter()
                    .position(|t| {
                        if roll < t.weight {
                            true
                        } else {
                            roll -= t.weight;
                            false
                        }
                    })
                    .unwrap_or(0);
                (targets[target].cluster, target)
            }
        };
        exchange.route = Some((route_index, target));
        (cluster, Some(route))
    };
    if let Some(run) = exchange.filters.as_mut() {
        run.stream().cluster = Some(snapshot.clusters[cluster].name.clone());
    }
    forward(
        &conn,
        &snapshot,
        exchange,
        (parts, present),
        body,
        authority,
        cluster,
        route,
    )
    .await
}

/// Methods that may be sent twice (RFC 9110 §9.2.2).
fn idempotent(method: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
    ]
    .contains(method)
}

type UpstreamResult = Result<Response<crate::cluster::UpstreamBody>, crate::cluster::UpstreamError>;

/// What a retry needs to send the request again.
struct Attempt<'a> {
    conn: &'a ConnContext,
    cluster: &'a crate::cluster::ClusterRuntime,
    key: Option<u64>,
    timeout: std::time::Duration,
}

impl Attempt<'_> {
    /// Retries `result` under `policy` (a new endpoint pick each time, exponential backoff
    /// with full jitter, within the cluster's retry budget); returns the last result and
    /// the endpoint it came from.
    async fn retry(
        &self,
        policy: &crate::config::RetryPolicy,
        (head, body): (&http::request::Parts, &Bytes),
        mut result: UpstreamResult,
        mut endpoint: (usize, std::net::SocketAddr),
    ) -> (UpstreamResult, (usize, std::net::SocketAddr)) {
        for attempt in 1..=policy.num_retries {
            if !should_retry(policy, &result) {
                break;
            }
            let Some(_retrying) = self.cluster.start_retry() else {
                self.cluster.metrics.retry_overflow.inc();
                break;
            };
            self.cluster.metrics.retries.inc();
            let cap = policy
                .base_interval
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(policy.max_interval);
            tokio::time::sleep(cap.mul_f64(fastrand::f64())).await;
            let (index, next, authority) = self.cluster.pick_for(self.conn.worker, self.key);
            endpoint = (index, next);
            let mut parts = clone_head(head);
            if self.cluster.config.protocol == UpstreamProtocol::Http2 {
                let mut uri = http::uri::Parts::default();
                uri.scheme = Some(self.cluster.connector.scheme());
                uri.authority = Some(authority.clone());
                uri.path_and_query = head.uri.path_and_query().cloned();
                if let Ok(uri) = Uri::from_parts(uri) {
                    parts.uri = uri;
                }
            }
            let body = if body.is_empty() {
                empty()
            } else {
                body::full(body.clone())
            };
            let request = Request::from_parts(parts, body);
            let _in_flight = self.cluster.worker(self.conn.worker).balancer.start(index);
            let _on_endpoint = self.cluster.endpoint_request(index);
            result = self
                .cluster
                .worker(self.conn.worker)
                .client
                .send(next, request, self.timeout)
                .await;
            self.cluster.report(index, &result);
        }
        (result, endpoint)
    }
}

/// Whether an attempt's outcome is one the policy retries.
fn should_retry(policy: &crate::config::RetryPolicy, result: &UpstreamResult) -> bool {
    use crate::cluster::UpstreamError;
    match result {
        Err(UpstreamError::Connect { .. }) => policy.on_connect_failure,
        Err(UpstreamError::Request { .. }) => policy.on_reset,
        Err(UpstreamError::Timeout { .. }) => policy.on_gateway_error || policy.on_5xx,
        // Sending again would only add to the load the breaker sheds.
        Err(UpstreamError::Overflow { .. }) => false,
        Ok(response) => {
            let status = response.status().as_u16();
            (policy.on_5xx && status >= 500)
                || (policy.on_gateway_error && matches!(status, 502..=504))
                || policy.retriable_status_codes.contains(&status)
        }
    }
}

/// A route's fault injection: sleeps for an injected delay, and returns the reply of an
/// injected abort.
async fn inject_fault(
    fault: &crate::config::Fault,
    headers: &http::HeaderMap,
    metrics: &crate::metrics::ListenerMetrics,
) -> Option<Response<ProxyBody>> {
    if fault
        .only_with_header
        .as_ref()
        .is_some_and(|name| !headers.contains_key(name))
    {
        return None;
    }
    if let Some((delay, share)) = fault.delay {
        if fastrand::f64() < share {
            metrics.fault_delays.inc();
            tokio::time::sleep(delay).await;
        }
    }
    match fault.abort {
        Some((status, share)) if fastrand::f64() < share => {
            metrics.fault_aborts.inc();
            Some(local::text(status, "fault filter abort\n"))
        }
        _ => None,
    }
}

/// A copy of a request head (method, URI, version, headers) for the upstream request, while
/// the filters keep the original for the response phase.
fn clone_head(parts: &http::request::Parts) -> http::request::Parts {
    let mut request = Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request.into_parts().0
}

/// Sends the request to one endpoint of `cluster_index` and streams the answer back.
#[allow(clippy::too_many_arguments)]
async fn forward(
    conn: &ConnContext,
    snapshot: &Snapshot,
    mut exchange: Box<Exchange>,
    (mut parts, present): (http::request::Parts, Present),
    body: DownstreamBody,
    authority: Option<HeaderValue>,
    cluster_index: usize,
    route: Option<&crate::config::Route>,
) -> Result<Response<ProxyBody>, Infallible> {
    let authority_in_target = parts.uri.authority().is_some();
    let route_timeout = route.and_then(|r| r.timeout);
    let cluster = &snapshot.clusters[cluster_index];
    exchange.cluster = Some(cluster_index);
    // The circuit breaker: past max_requests in flight, fail fast instead of queueing.
    let Some(admitted) = cluster.admit() else {
        cluster.metrics.overflow.inc();
        let res = overloaded("upstream overflow: too many requests in flight to this cluster\n");
        return Ok(finish(exchange, res).await);
    };
    exchange.admitted = Some(admitted);
    // The hash policies key on the client address, a header or a cookie (cluster config).
    let key = cluster.hash_key(conn.peer.ip(), &parts.headers);
    let (endpoint_index, endpoint, authority_of_endpoint) = cluster.pick_for(conn.worker, key);
    exchange.upstream = Some(endpoint);
    exchange.on_endpoint = Some(cluster.endpoint_request(endpoint_index));
    if let Some(run) = exchange.filters.as_mut() {
        run.stream().upstream = Some(endpoint);
    }

    // HTTP/1.1 puts the origin form on the wire; hyper-util's client (HTTP/2) wants the
    // absolute form, and takes the :scheme and :authority from it.
    let mut target = http::uri::Parts::default();
    if cluster.config.protocol == UpstreamProtocol::Http2 {
        target.scheme = Some(cluster.connector.scheme());
        target.authority = Some(authority_of_endpoint.clone());
    }
    target.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    let Ok(uri) = Uri::from_parts(target) else {
        return Ok(finish(
            exchange,
            local::text_and_close(StatusCode::BAD_REQUEST, "invalid request target\n"),
        )
        .await);
    };
    parts.uri = uri;
    if present.hop_by_hop() {
        headers::strip_hop_by_hop(&mut parts.headers, true);
    }
    // Framing is derived again from the body by the client, never passed through.
    if present.content_length() {
        parts.headers.remove(CONTENT_LENGTH);
    }
    // An authority from the request target (absolute form, HTTP/2's :authority) becomes
    // the Host header; one that came from the Host header is already there.
    if let Some(authority) = authority.filter(|_| authority_in_target) {
        parts.headers.insert(HOST, authority);
    }
    headers::set_forwarded(&mut parts.headers, present, &conn.peer_value, conn.scheme());
    parts.version = match cluster.config.protocol {
        UpstreamProtocol::Http1 => Version::HTTP_11,
        UpstreamProtocol::Http2 => Version::HTTP_2,
    };
    let stats = exchange.request.clone();
    let body = RequestBody::new(body, stats.clone());
    // With filters, a request body goes through their body phases on its way (see pump.rs).
    let filtered = exchange.filters.is_some() && !http_body::Body::is_end_stream(&body);
    // Retries: of idempotent methods unless the policy allows others, and only when the
    // body can be sent again: none, or one of a known length the policy lets us buffer
    // (read whole here, before the first attempt). A streamed body is never retried.
    let policy = route
        .and_then(|r| r.retry.as_ref())
        .filter(|p| p.retry_non_idempotent || idempotent(&parts.method));
    let bufferable = |p: &&crate::config::RetryPolicy| {
        http_body::Body::size_hint(&body)
            .exact()
            .is_some_and(|n| n <= p.max_buffered_body_bytes as u64)
    };
    let (upstream_body, mut pump, replay) = if filtered {
        let (pump, channel) = pump::channel(body);
        (channel.boxed_unsync(), Some(pump), None)
    } else if http_body::Body::is_end_stream(&body) {
        (body.boxed_unsync(), None, Some(Bytes::new()))
    } else if policy.filter(bufferable).is_some() {
        match body.collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                (body::full(bytes.clone()), None, Some(bytes))
            }
            Err(_) => {
                let response =
                    local::text_and_close(StatusCode::BAD_REQUEST, "malformed request body\n");
                return Ok(finish(exchange, response).await);
            }
        }
    } else {
        (body.boxed_unsync(), None, None)
    };
    let retry = policy.zip(replay);
    let retry_head = retry.as_ref().map(|_| clone_head(&parts));
    let upstream_req = Request::from_parts(parts, upstream_body);

    cluster.metrics.requests.inc();
    let timeout = route_timeout.unwrap_or(cluster.config.request_timeout);
    let timeout = retry
        .as_ref()
        .and_then(|(p, _)| p.per_try_timeout)
        .map_or(timeout, |t| t.min(timeout));
    // In flight (for least_request) until the response head is back.
    let in_flight = cluster.worker(conn.worker).balancer.start(endpoint_index);
    let send = cluster
        .worker(conn.worker)
        .client
        .send(endpoint, upstream_req, timeout);
    let outcome = match (pump.as_mut(), exchange.filters.as_mut()) {
        (Some(active), Some(run)) => {
            tokio::pin!(send);
            let mut pumped = false;
            std::future::poll_fn(|cx| {
                if !pumped {
                    match active.poll(run, cx) {
                        Poll::Ready(Ok(())) => pumped = true,
                        // The upstream request was cut with an error; answer now.
                        Poll::Ready(Err(stop)) => return Poll::Ready(Err(stop)),
                        Poll::Pending => {}
                    }
                }
                send.as_mut().poll(cx).map(Ok)
            })
            .await
            .inspect(|result| {
                if pumped {
                    pump = None;
                }
                cluster.report(endpoint_index, result);
            })
        }
        _ => {
            let first = send.await;
            drop(in_flight);
            cluster.report(endpoint_index, &first);
            match (retry, retry_head.as_ref()) {
                (Some((policy, replay)), Some(head)) => {
                    let attempt = Attempt {
                        conn,
                        cluster,
                        key,
                        timeout,
                    };
                    // Boxed: only requests that may be retried carry its state.
                    let (result, (index, endpoint)) = Box::pin(attempt.retry(
                        policy,
                        (head, &replay),
                        first,
                        (endpoint_index, endpoint),
                    ))
                    .await;
                    if index != endpoint_index {
                        exchange.on_endpoint = Some(cluster.endpoint_request(index));
                    }
                    exchange.upstream = Some(endpoint);
                    if let Some(run) = exchange.filters.as_mut() {
                        run.stream().upstream = Some(endpoint);
                    }
                    Ok(result)
                }
                _ => Ok(first),
            }
        }
    };
    // A body still uploading goes on alongside the response.
    exchange.request_pump = pump;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(stop) => {
            return Ok(finish(exchange, body_stop_answer(stop)).await);
        }
    };
    match outcome {
        Ok(response) => {
            // The client hands back a head without hop-by-hop fields.
            Ok(finish(exchange, response).await)
        }
        Err(error) => {
            let response = match &error {
                UpstreamError::Timeout { .. } => {
                    cluster.metrics.timeouts.inc();
                    local::text(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout\n")
                }
                UpstreamError::Connect { .. } => {
                    cluster.metrics.connect_errors.inc();
                    local::text(StatusCode::BAD_GATEWAY, "upstream connect error\n")
                }
                // Counted by the cluster's connection limits.
                UpstreamError::Overflow { .. } => overloaded(
                    "upstream overflow: too many connections and pending requests to this cluster\n",
                ),
                UpstreamError::Request { .. } if stats.failed() => {
                    local::text_and_close(StatusCode::BAD_REQUEST, "malformed request body\n")
                }
                UpstreamError::Request { .. } => {
                    cluster.metrics.errors.inc();
                    local::text(StatusCode::BAD_GATEWAY, "upstream reset before response\n")
                }
            };
            if !stats.failed() && !matches!(error, UpstreamError::Overflow { .. }) {
                tracing::warn!(
                    cluster = %cluster.config.name,
                    error = %crate::error::chain(&error),
                    "upstream request failed"
                );
            }
            Ok(finish(exchange, response).await)
        }
    }
}

/// The 503 of a circuit breaker, marked with `x-weft-overloaded: true` (as Envoy's
/// `x-envoy-overloaded`).
fn overloaded(why: &'static str) -> Response<ProxyBody> {
    let mut res = local::text(StatusCode::SERVICE_UNAVAILABLE, why);
    res.headers_mut().insert(
        http::header::HeaderName::from_static("x-weft-overloaded"),
        HeaderValue::from_static("true"),
    );
    res
}

/// The answer to a body phase that stopped the request.
fn body_stop_answer(stop: BodyStop) -> Response<ProxyBody> {
    match stop {
        BodyStop::TooLarge => local::text_and_close(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body larger than the filters may hold (wasm.max_buffered_body_kb)\n",
        ),
        BodyStop::Reply(reply) => local::from_filter(reply),
        BodyStop::Fail(why) => local::filter_failure(&why),
    }
}

/// Runs the response phase of the filters, then attaches the exchange to the response body
/// so it is logged and counted when that ends.
///
/// Generic over the body so that an upstream body is boxed once, with the exchange.
async fn finish<B: IntoProxyBody>(
    mut exchange: Box<Exchange>,
    response: Response<B>,
) -> Response<ProxyBody> {
    let Some(run) = exchange.filters.as_mut() else {
        exchange.status = response.status().as_u16();
        exchange.expected_len = http_body::Body::size_hint(response.body()).exact();
        return response.map(|body| ResponseBody::new(body, exchange).boxed_unsync());
    };
    let (parts, body) = response.into_parts();
    let body = body.into_proxy_body();
    let end_of_stream = http_body::Body::is_end_stream(&body);
    let phase = match run.response_headers(parts, end_of_stream) {
        Ok(done) => done,
        // Boxed: most requests never wait for a filter.
        Err(paused) => Box::pin(run.resume_response_headers(paused, end_of_stream)).await,
    };
    let (mut parts, body) = match phase {
        (parts, Verdict::Continue) => (parts, body),
        (_, Verdict::Reply(reply)) => local::from_filter(reply).into_parts(),
        (_, Verdict::Fail(why)) => local::filter_failure(&why).into_parts(),
    };
    let (parts, body, filtered) = if http_body::Body::is_end_stream(&body) {
        // No body: the body phase does not run, and the head keeps its length (for HEAD,
        // of the body a GET would have had).
        (parts, body, true)
    } else {
        // The body phase may change the body's length: the framing is derived again, from
        // the whole body when it is there already.
        parts.headers.remove(CONTENT_LENGTH);
        let mut body = Some(body);
        match std::future::poll_fn(|cx| Poll::Ready(early::take_whole(run, &mut body, cx))).await {
            early::Early::Whole(data) => (parts, full(data), true),
            early::Early::Streaming(body) => (parts, body, false),
            early::Early::Stop(stop) => {
                let (parts, body) = body_stop_answer(stop).into_parts();
                (parts, body, true)
            }
        }
    };
    exchange.status = parts.status.as_u16();
    let body = if filtered {
        ResponseBody::filtered(body, exchange)
    } else {
        ResponseBody::new(body, exchange)
    };
    Response::from_parts(parts, body.boxed_unsync())
}
