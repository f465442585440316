//! What a request knows about the connection it arrived on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::server::framing::FramingLog;
use crate::state::Shared;

#[derive(Debug)]
pub struct ConnContext {
    pub shared: Arc<Shared>,
    /// Index of the listener in the config.
    pub listener: usize,
    pub worker: usize,
    pub peer: SocketAddr,
    pub local: Option<SocketAddr>,
    pub activity: Arc<Activity>,
    /// Request heads the raw-byte framing watch flagged (HTTP/1 only).
    pub framing: Arc<FramingLog>,
    /// HTTP/1 requests handed to the handler so far, to number them as the watch does.
    pub http1_requests: AtomicU64,
}

impl ConnContext {
    /// Whether this HTTP/1 request's head had framing hyper normalised silently. Must be
    /// called once per HTTP/1 request, in order.
    pub fn take_framing_flag(&self) -> bool {
        let index = self.http1_requests.fetch_add(1, Ordering::Relaxed);
        self.framing.is_flagged(index)
    }
}

/// Requests in flight on a connection and when bytes last moved, for the idle timeout.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }
}

impl Activity {
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn request_done(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}
