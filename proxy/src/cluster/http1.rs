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
//! The connection is driven by the request's own task ([`exchange`]): the request's head
//! and body are written and the response read as that task polls, with weft's own codec
//! ([`wire`]), which puts the origin form (path and query) on the request line. An earlier
//! version gave each connection a task of its own running hyper's client codec; against
//! it, this saves 0.4 to 0.8 us of user CPU per request but spends most of that again in
//! the kernel (wake-ups of the upstream and the client), so requests/s on the load
//! benchmark moved within the noise (docs/benchmarks.md, "Session 5").
//!
//! An idle connection on which anything arrived (the upstream closed it, or sent stray
//! bytes) is dropped on checkout. A request on a reused connection that the upstream closed
//! before answering any of it, and whose body was not yet read (so it is whole), goes once
//! more on a fresh connection: the upstream closed an idle connection as the request went
//! out, and never saw it (nginx does the same with its cached upstream connections).
//! Idle connections are dropped past `idle_timeout` (on checkout, and by a small reaper
//! task per pool that runs only while the pool holds connections) and past
//! `max_idle_per_endpoint`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};

use super::client::UpstreamError;
use super::connect::Connector;
use super::limits::{ConnectionLimits, Overflow};
use crate::proxy::{BoxError, ProxyBody};

mod exchange;
mod wire;

use exchange::{Conn, Exchange};

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
    conn: Conn,
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

    /// Sends `req` to `endpoint` on an idle connection, or a new one, and waits up to
    /// `timeout` for the response head. The response body holds the connection until it
    /// ends.
    pub async fn send(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        mut req: Request<ProxyBody>,
        timeout: Duration,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || UpstreamError::Timeout { endpoint, timeout };
        let mut reuse = true;
        loop {
            // An idle connection is taken at once; connecting (a large future) is boxed, so
            // that the common case does not carry it (and copy it) in every request's state.
            let idle = if reuse { self.checkout(endpoint) } else { None };
            let (conn, reused) = match idle {
                Some(conn) => (conn, true),
                None => {
                    let obtain = tokio::time::timeout_at(deadline, self.obtain(endpoint, reuse));
                    Box::pin(obtain).await.map_err(|_| timed_out())??
                }
            };
            // Boxed: it goes on in the response body, which moves several times on its way.
            let mut exchange = Box::new(Exchange::new(conn, req));
            exchange.set_deadline(deadline);
            let head = std::future::poll_fn(|cx| match exchange.poll_head(cx) {
                Poll::Pending if exchange.passed(cx) => Poll::Ready(None),
                polled => polled.map(Some),
            })
            .await;
            match head.ok_or_else(timed_out)? {
                Ok(head) => {
                    let mut body = PooledBody {
                        exchange: Some(exchange),
                        endpoint,
                        pool: self.clone(),
                    };
                    body.release_if_done();
                    return Ok(Response::from_parts(head.parts, body));
                }
                Err(error) if reused && exchange.replayable() => {
                    tracing::debug!(%endpoint, error = %crate::error::chain(&error), "pooled connection closed; sending on a new one");
                    req = exchange
                        .into_request()
                        .expect("a replayable exchange has its request");
                    reuse = false;
                }
                Err(error) => {
                    return Err(UpstreamError::Request {
                        endpoint,
                        source: error.into(),
                    });
                }
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
    ) -> Result<(Conn, bool), UpstreamError> {
        let idle = || reuse.then(|| self.checkout(endpoint)).flatten();
        if let Some(conn) = idle() {
            return Ok((conn, true));
        }
        let open = match self.limits.try_open() {
            Some(open) => open,
            None => {
                let found = self
                    .limits
                    .wait_for(|| match idle() {
                        Some(conn) => Some(Err(conn)),
                        None => self.limits.try_open().map(Ok),
                    })
                    .await
                    .map_err(|Overflow| UpstreamError::Overflow { endpoint })?;
                match found {
                    Ok(open) => open,
                    Err(conn) => return Ok((conn, true)),
                }
            }
        };
        let mut conn = self.connect(endpoint).await?;
        conn.open = Some(open);
        Ok((conn, false))
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
    fn checkout(&self, endpoint: SocketAddr) -> Option<Conn> {
        loop {
            let mut idle = {
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
            if idle.conn.is_usable() {
                return Some(idle.conn);
            }
        }
    }

    async fn connect(&self, endpoint: SocketAddr) -> Result<Conn, UpstreamError> {
        let stream =
            self.connector
                .connect(endpoint)
                .await
                .map_err(|error| UpstreamError::Connect {
                    endpoint,
                    source: error.into(),
                })?;
        Ok(Conn::new(stream))
    }

    /// Puts a connection whose exchange has ended back for reuse, if it is idle and there is
    /// room; otherwise it is dropped, which closes it.
    fn release(self: &Arc<Self>, endpoint: SocketAddr, conn: Conn) {
        if self.max_idle == 0 {
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
            conn,
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
                if idle.since.elapsed() >= self.idle_timeout || !idle.conn.is_usable() {
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

// === impl PooledBody ===

/// A response body read from a pooled HTTP/1.1 connection: at the body's end the connection
/// goes back to the pool.
pub struct PooledBody {
    /// `None` once the connection went back (or was closed).
    exchange: Option<Box<Exchange>>,
    endpoint: SocketAddr,
    pool: Arc<Http1Pool>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("endpoint", &self.endpoint)
            .field("holds_connection", &self.exchange.is_some())
            .finish()
    }
}

impl PooledBody {
    /// Once the response has ended: the connection goes back to the pool if the exchange
    /// left it reusable, and closes otherwise.
    fn release_if_done(&mut self) {
        if self
            .exchange
            .as_deref()
            .is_some_and(Exchange::is_end_stream)
            && let Some(exchange) = self.exchange.take()
            && let Some(conn) = exchange.into_reusable()
        {
            self.pool.release(self.endpoint, conn);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(exchange) = this.exchange.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = exchange.poll_body(cx);
        match &polled {
            // The exchange is broken: the connection closes with it.
            Poll::Ready(Some(Err(_))) => this.exchange = None,
            Poll::Ready(_) => this.release_if_done(),
            Poll::Pending => {}
        }
        polled.map(|frame| frame.map(|f| f.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.exchange.as_deref().is_none_or(Exchange::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.exchange
            .as_deref()
            .map_or_else(|| SizeHint::with_exact(0), Exchange::size_hint)
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // The reader stopped early (a client that went away, a body of known length whose
        // end it did not ask for). If the connection has already received the rest of the
        // body, the exchange is complete and the connection reusable; otherwise it is
        // unfinished and the connection closes. Only what is buffered is read here.
        if let Some(exchange) = self.exchange.as_mut()
            && exchange.finish_buffered()
        {
            self.release_if_done();
        }
    }
}

#[cfg(test)]
mod tests;
