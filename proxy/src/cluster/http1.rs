//! HTTP/1.1 upstream connections for one cluster on one worker, pooled by weft.
//!
//! A connection is hyper's `client::conn::http1` pair: a [`SendRequest`], kept here, and
//! the connection future, which runs in a task of its own on the worker's runtime. A
//! request checks out the most recently used idle connection to its endpoint (or opens
//! one), sends on it, and its response body ([`PooledBody`]) holds the connection until the
//! body has been read to its end; the connection then goes back to the pool. A response
//! body dropped before its end takes the connection with it (it closes, the exchange on it
//! being unfinished), unless the rest of the body had already arrived.
//!
//! Why a connection task, and not the request's task polling the connection itself: both
//! were built and measured on the load benchmark (benches/load.sh). Driving the connection from the request
//! task runs fewer instructions, but each request then writes upstream as soon as it is
//! parsed and each response goes downstream as soon as it is read; on loopback the upstream
//! and the client were woken about three times as often per request and the proxy spent
//! more CPU per request in the kernel than it saved. With a connection task, the requests
//! and responses of one turn of the event loop go out together, as with hyper-util's
//! client; what this pool saves is that client's machinery (a hashed pool behind its own
//! checkout futures, connect racing, wrappers per request).
//!
//! A connection whose task has ended (the upstream closed it) is dropped on checkout. One
//! that closes between checkout and sending gives the request back untouched (hyper returns
//! a request it never began to write), and that request goes once more on a fresh
//! connection, as hyper-util's client does. Idle connections are dropped past
//! `idle_timeout` (on checkout, and by a small reaper task per pool that runs only while the
//! pool holds connections) and past `max_idle_per_endpoint`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;

use super::client::UpstreamError;
use super::connect::Connector;
use super::limits::{ConnectionLimits, OpenConnection, Overflow};
use crate::proxy::ProxyBody;

/// The idle HTTP/1.1 connections of one cluster on one worker, per endpoint.
pub struct Http1Pool {
    connector: Connector,
    /// The cluster's connection circuit breakers, shared with the other workers' pools.
    limits: Arc<ConnectionLimits>,
    idle_timeout: Duration,
    max_idle: usize,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    /// Idle connections per endpoint, oldest first (a cluster has a handful of endpoints).
    idle: Vec<(SocketAddr, Vec<Idle>)>,
    /// Whether a reaper task is running for this pool.
    reaping: bool,
}

struct Idle {
    link: Link,
    since: Instant,
}

impl std::fmt::Debug for Http1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle: usize = self.lock().idle.iter().map(|(_, list)| list.len()).sum();
        f.debug_struct("Http1Pool")
            .field("idle", &idle)
            .field("max_idle", &self.max_idle)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

// === impl Http1Pool ===

impl Http1Pool {
    pub fn new(
        connector: Connector,
        limits: Arc<ConnectionLimits>,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> Self {
        Http1Pool {
            connector,
            limits,
            idle_timeout,
            max_idle,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Nothing panics while holding the lock; a poisoned pool is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `req` to `endpoint` on an idle connection, or a new one, and waits for the
    /// response head. The response body holds the connection until it ends.
    pub async fn send(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        origin_form(req.uri_mut());
        let mut reuse = true;
        loop {
            let (mut link, reused) = self.obtain(endpoint, reuse).await?;
            match link.sender.try_send_request(req).await {
                Ok(response) => {
                    let (parts, incoming) = response.into_parts();
                    let mut body = PooledBody {
                        incoming,
                        link: Some(link),
                        endpoint,
                        pool: self.clone(),
                    };
                    if body.incoming.is_end_stream() {
                        body.release();
                    }
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut error) => match error.take_message() {
                    // The connection closed before hyper began to write the request (an idle
                    // connection the upstream had just closed): nothing of it went out, so it
                    // goes once more, on a fresh connection.
                    Some(unsent) if reused => {
                        tracing::debug!(%endpoint, error = %error.error(), "pooled connection closed; sending on a new one");
                        req = unsent;
                        reuse = false;
                    }
                    _ => {
                        return Err(UpstreamError::Request {
                            endpoint,
                            source: error.into_error().into(),
                        });
                    }
                },
            }
        }
    }

    /// A connection to `endpoint`: an idle one (unless `reuse` is false), else a new one
    /// if the cluster's `max_connections` allow, else the first of those to come while
    /// the request waits as pending; says whether it was reused.
    async fn obtain(
        &self,
        endpoint: SocketAddr,
        reuse: bool,
    ) -> Result<(Link, bool), UpstreamError> {
        let idle = || reuse.then(|| self.checkout(endpoint)).flatten();
        if let Some(link) = idle() {
            return Ok((link, true));
        }
        let open = match self.limits.try_open() {
            Some(open) => open,
            None => {
                let found = self
                    .limits
                    .wait_for(|| match idle() {
                        Some(link) => Some(Err(link)),
                        None => self.limits.try_open().map(Ok),
                    })
                    .await
                    .map_err(|Overflow| UpstreamError::Overflow { endpoint })?;
                match found {
                    Ok(open) => open,
                    Err(link) => return Ok((link, true)),
                }
            }
        };
        let mut link = self.connect(endpoint).await?;
        link.open = Some(open);
        Ok((link, false))
    }

    /// Closes the oldest idle connection (to any endpoint); false if there is none.
    pub(super) fn close_one_idle(&self) -> bool {
        let mut state = self.lock();
        let oldest = state
            .idle
            .iter_mut()
            .filter(|(_, list)| !list.is_empty())
            .min_by_key(|(_, list)| list[0].since)
            .map(|(_, list)| list.remove(0));
        drop(state);
        oldest.is_some()
    }

    /// The most recently used idle connection to `endpoint` that is still open.
    fn checkout(&self, endpoint: SocketAddr) -> Option<Link> {
        loop {
            let idle = {
                let mut state = self.lock();
                let list = state
                    .idle
                    .iter_mut()
                    .find_map(|(e, list)| (*e == endpoint).then_some(list))?;
                let idle = list.pop()?;
                if idle.since.elapsed() >= self.idle_timeout {
                    // The rest are older still.
                    let expired = std::mem::take(list);
                    drop(state);
                    drop(expired);
                    return None;
                }
                idle
            };
            if idle.link.is_idle() {
                return Some(idle.link);
            }
        }
    }

    async fn connect(&self, endpoint: SocketAddr) -> Result<Link, UpstreamError> {
        let stream =
            self.connector
                .connect(endpoint)
                .await
                .map_err(|error| UpstreamError::Connect {
                    endpoint,
                    source: error.into(),
                })?;
        // An HTTP/1 handshake does no I/O: it only builds the pair.
        let (sender, conn) = Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|error| UpstreamError::Connect {
                endpoint,
                source: error.into(),
            })?;
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(error = %crate::error::chain(&error), "upstream connection ended");
            }
        });
        Ok(Link { sender, open: None })
    }

    /// Puts a connection whose exchange has ended back for reuse, if it is idle and there is
    /// room; otherwise it is dropped, which closes it.
    fn release(self: &Arc<Self>, endpoint: SocketAddr, link: Link) {
        if self.max_idle == 0 || !link.is_idle() {
            return;
        }
        let mut state = self.lock();
        let list = match state.idle.iter().position(|(e, _)| *e == endpoint) {
            Some(i) => &mut state.idle[i].1,
            None => {
                state.idle.push((endpoint, Vec::new()));
                &mut state.idle.last_mut().expect("just pushed").1
            }
        };
        if list.len() >= self.max_idle {
            drop(state);
            return;
        }
        list.push(Idle {
            link,
            since: Instant::now(),
        });
        self.limits.released();
        if !state.reaping
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            state.reaping = true;
            runtime.spawn(reap(Arc::downgrade(self), self.reap_interval()));
        }
    }

    fn reap_interval(&self) -> Duration {
        (self.idle_timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(5))
    }

    /// Drops idle connections that expired or were closed; says whether any remain (when
    /// none do, the reaper stops, and the next release starts another).
    fn reap_once(&self) -> bool {
        let mut dropped = Vec::new();
        let mut state = self.lock();
        for (_, list) in &mut state.idle {
            let mut i = 0;
            while i < list.len() {
                let idle = &mut list[i];
                if idle.since.elapsed() >= self.idle_timeout || !idle.link.is_idle() {
                    dropped.push(list.remove(i));
                } else {
                    i += 1;
                }
            }
        }
        state.idle.retain(|(_, list)| !list.is_empty());
        let remain = !state.idle.is_empty();
        state.reaping = remain;
        drop(state);
        drop(dropped);
        remain
    }
}

/// Closes the idle connections of `pool` past their idle timeout, while it has any.
async fn reap(pool: Weak<Http1Pool>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match pool.upgrade() {
            Some(pool) if pool.reap_once() => {}
            _ => return,
        }
    }
}

/// hyper sends the URI as given; an origin server wants the path and query only.
fn origin_form(uri: &mut Uri) {
    if uri.scheme().is_some() || uri.authority().is_some() {
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        *uri = Uri::from(path);
    }
}

// === impl Link ===

/// One upstream connection: where its requests go in. Its connection future runs in a task
/// of its own, which ends when the upstream closes the connection or the link is dropped.
struct Link {
    sender: SendRequest<ProxyBody>,
    /// Counted against the cluster's `max_connections` while the link lives.
    open: Option<OpenConnection>,
}

impl Link {
    /// Whether the connection is still open.
    fn is_idle(&self) -> bool {
        !self.sender.is_closed()
    }
}

// === impl PooledBody ===

/// A response body read from a pooled HTTP/1.1 connection: at the body's end the connection
/// goes back to the pool.
pub struct PooledBody {
    incoming: Incoming,
    /// `None` once the connection went back (or was closed).
    link: Option<Link>,
    endpoint: SocketAddr,
    pool: Arc<Http1Pool>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("endpoint", &self.endpoint)
            .field("holds_connection", &self.link.is_some())
            .finish()
    }
}

impl PooledBody {
    fn release(&mut self) {
        if let Some(link) = self.link.take() {
            self.pool.release(self.endpoint, link);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.incoming).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.incoming.is_end_stream() => this.release(),
            // The exchange is broken: the connection closes with it.
            Poll::Ready(Some(Err(_))) => this.link = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.link.is_none() {
            return;
        }
        // The reader stopped early (a client that went away, a body of known length whose
        // end it did not ask for). If the connection has already received the rest of the
        // body, the exchange is complete and the connection reusable; otherwise it is
        // unfinished and the connection closes. Only what is buffered is read here.
        let mut quiet = Context::from_waker(Waker::noop());
        while !self.incoming.is_end_stream() {
            match Pin::new(&mut self.incoming).poll_frame(&mut quiet) {
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(None) => break,
                Poll::Ready(Some(Err(_))) | Poll::Pending => return,
            }
        }
        self.release();
    }
}

#[cfg(test)]
mod tests;
