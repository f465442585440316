//! Serving one downstream connection: HTTP/1.1 or HTTP/2 (prior knowledge) detected on the
//! first bytes, the listener's limits applied, closed when idle or when the worker drains.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::framing::{FramingIo, FramingTracker};
use super::io::ActivityIo;
use crate::config::Limits;
use crate::proxy::{self, ConnContext};

pub type ConnBuilder = auto::Builder<TokioExecutor>;

/// The connection builder for a listener's limits.
pub fn builder(limits: &Limits) -> ConnBuilder {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper applies this only with a timer set. It runs while hyper waits for a request
        // head, so it also closes an idle keep-alive connection.
        .header_read_timeout(limits.header_read_timeout)
        // hyper answers 431 when the head outgrows its read buffer or has too many headers.
        .max_buf_size(limits.max_request_header_bytes.max(8192))
        .max_headers(limits.max_request_headers)
        .keep_alive(true);
    // HTTP/2 counts 32 bytes of overhead per header. Allow four times the limit so that
    // weft's own check (which answers 431 and counts it) decides; only a header list past
    // that allowance is refused by the h2 layer itself, uncounted.
    let h2_header_list =
        4 * limits.max_request_header_bytes + 32 * limits.max_request_headers + 1024;
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .initial_stream_window_size(limits.http2_initial_stream_window)
        .initial_connection_window_size(limits.http2_initial_connection_window)
        .max_header_list_size(u32::try_from(h2_header_list).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

/// Counts the requests hyper refused itself, before weft's handler could see them: a head
/// too large or with too many headers (hyper answered 431) and malformed HTTP/1 (400).
fn count_refusal(ctx: &ConnContext, error: &(dyn std::error::Error + 'static)) {
    let Some(error) = error.downcast_ref::<hyper::Error>() else {
        return;
    };
    let snapshot = ctx.shared.snapshot();
    let metrics = &snapshot.listeners[ctx.listener].metrics;
    if error.is_parse_too_large() {
        metrics.rejected_header_limits.inc();
    } else if error.is_parse() && !error.is_parse_version_h2() {
        metrics.rejected_bad_request.inc();
    }
}

/// Serves the connection until it ends, it is idle for `idle_timeout` (no request in flight
/// and no bytes moving), or `shutdown` fires; then in-flight requests finish first.
pub async fn serve<S>(
    stream: S,
    ctx: Arc<ConnContext>,
    builder: Arc<ConnBuilder>,
    idle_timeout: Duration,
    max_headers: usize,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tracker = FramingTracker::new(ctx.framing.clone(), max_headers);
    let io = TokioIo::new(FramingIo::new(
        ActivityIo::new(stream, ctx.activity.clone()),
        tracker,
    ));
    let request_ctx = ctx.clone();
    let service = service_fn(move |req| proxy::handle(request_ctx.clone(), req));
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut ticker = tokio::time::interval(
        (idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)),
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = *shutdown.borrow();
    let mut last_moved = ctx.activity.moved();
    let mut quiet_since = tokio::time::Instant::now();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    count_refusal(&ctx, &*error);
                    tracing::debug!(peer = %ctx.peer, error = %crate::error::chain(&*error), "connection closed with an error");
                }
                break;
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            now = ticker.tick(), if !closing => {
                let moved = ctx.activity.moved();
                if moved != last_moved || ctx.activity.in_flight() > 0 {
                    last_moved = moved;
                    quiet_since = now;
                } else if now.duration_since(quiet_since) >= idle_timeout {
                    tracing::debug!(peer = %ctx.peer, "closing idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
