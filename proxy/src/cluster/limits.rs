//! The connection circuit breakers of one cluster: `max_connections` open HTTP/1.1
//! connections across every worker's pool, and `max_pending_requests` requests waiting for
//! one while that many are open. Past both, a request fails at once (503, counted).
//!
//! A waiting request wakes whenever a connection of the cluster closes or goes back to a
//! pool. As each worker has its own pool, the connection the request needs may sit idle in
//! another worker's pool, or be open to another endpoint: a waiting request therefore
//! closes one idle connection of the cluster (any worker, any endpoint) to make room, which
//! Envoy does not do but which keeps a limit of a few connections from starving a worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

use super::http1::Http1Pool;

#[derive(Debug)]
pub struct ConnectionLimits {
    max_connections: usize,
    max_pending: usize,
    open: AtomicUsize,
    pending: AtomicUsize,
    /// Woken when a connection closes or goes back to a pool.
    freed: Notify,
    /// Open connections (the cluster's `weft_upstream_cx_active`).
    gauge: Gauge,
    /// Requests refused because the pending queue was full.
    overflow: Counter,
    /// The pools of every worker, where idle connections can be closed to make room.
    pools: Mutex<Vec<Weak<Http1Pool>>>,
}

/// An open connection, counted until dropped.
#[derive(Debug)]
pub struct OpenConnection(Arc<ConnectionLimits>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.gauge.dec();
        self.0.freed.notify_waiters();
    }
}

/// A request waiting for a connection, counted until dropped.
struct Pending<'a>(&'a ConnectionLimits);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The pending queue was full: the request is refused.
#[derive(Debug)]
pub struct Overflow;

impl ConnectionLimits {
    pub fn new(
        max_connections: usize,
        max_pending: usize,
        gauge: Gauge,
        overflow: Counter,
    ) -> Self {
        ConnectionLimits {
            max_connections,
            max_pending,
            open: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            freed: Notify::new(),
            gauge,
            overflow,
            pools: Mutex::default(),
        }
    }

    /// Adds a worker's pool to those a waiting request may take an idle connection from.
    pub fn register(&self, pool: &Arc<Http1Pool>) {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(pool));
    }

    /// Counts a new connection, unless `max_connections` are open.
    pub fn try_open(self: &Arc<Self>) -> Option<OpenConnection> {
        self.open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                (open < self.max_connections).then_some(open + 1)
            })
            .ok()?;
        self.gauge.inc();
        Some(OpenConnection(self.clone()))
    }

    /// A connection went back to a pool: a waiting request may take it.
    pub fn released(&self) {
        self.freed.notify_waiters();
    }

    /// Waits until `ready` finds a connection, with room for a new one, or an idle one in
    /// the caller's pool (`ready` is called again each time a connection is freed). Fails at
    /// once when `max_pending_requests` are already waiting.
    pub async fn wait_for<T>(
        self: &Arc<Self>,
        mut ready: impl FnMut() -> Option<T>,
    ) -> Result<T, Overflow> {
        if self.pending.fetch_add(1, Ordering::Relaxed) >= self.max_pending {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.overflow.inc();
            return Err(Overflow);
        }
        let _pending = Pending(self);
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(found) = ready() {
                return Ok(found);
            }
            self.close_one_idle();
            freed.await;
        }
    }

    /// Closes one idle connection of the cluster, if any: its close frees a slot.
    fn close_one_idle(&self) {
        let pools: Vec<_> = self
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for pool in pools {
            if pool.close_one_idle() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_past_the_limit_wait_and_past_the_queue_overflow() {
        let limits = Arc::new(ConnectionLimits::new(
            2,
            1,
            Gauge::default(),
            Counter::default(),
        ));
        let first = limits.try_open().unwrap();
        let _second = limits.try_open().unwrap();
        assert!(limits.try_open().is_none());
        assert_eq!(limits.gauge.get(), 2);

        // One may wait; it gets a connection when one closes.
        let waiter = tokio::spawn({
            let limits = limits.clone();
            async move { limits.wait_for(|| limits.try_open()).await.is_ok() }
        });
        while limits.pending.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        // The queue is full: the next is refused at once.
        assert!(limits.wait_for(|| limits.try_open()).await.is_err());
        assert_eq!(limits.overflow.get(), 1);
        drop(first);
        assert!(waiter.await.unwrap());
        assert_eq!(limits.pending.load(Ordering::Relaxed), 0);
    }
}
