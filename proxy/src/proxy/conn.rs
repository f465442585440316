//! What a request knows about the connection it arrived on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::state::Shared;

#[derive(Debug)]
pub struct ConnContext {
    pub shared: Arc<Shared>,
    /// Index of the listener in the config.
    pub listener: usize,
    pub worker: usize,
    pub peer: SocketAddr,
    pub local: Option<SocketAddr>,
    /// Unique in the process (the `connection.id` property).
    pub id: u64,
    /// The peer's IP as an `x-forwarded-for` value, made once.
    pub peer_value: http::HeaderValue,
    pub activity: Arc<Activity>,
    /// The TLS of the connection, when the listener terminates TLS.
    pub tls: Option<crate::tls::TlsInfo>,
}

impl ConnContext {
    /// `https` on a TLS listener, else `http` (for `x-forwarded-proto`).
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// Requests in flight on a connection and a count of socket reads and writes, for the
/// idle timeout. The I/O path only bumps a counter (no clock read); the connection's ticker
/// compares counts between ticks to tell how long nothing moved.
#[derive(Debug, Default)]
pub struct Activity {
    moved: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    /// Bytes moved on the socket (called from the I/O path).
    pub fn touch(&self) {
        self.moved.fetch_add(1, Ordering::Relaxed);
    }

    /// A number that changes whenever something happened on the connection.
    pub fn moved(&self) -> u64 {
        self.moved.load(Ordering::Relaxed)
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
