//! Serving one downstream connection: HTTP/1.x (weft's own server, `h1`) or HTTP/2 with
//! prior knowledge (hyper), told apart by the first bytes; closed when idle or when the
//! worker drains.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::watch;

use super::h1;
use super::io::{ActivityIo, Rewind, SplitIo};
use crate::config::Limits;
use crate::proxy::{self, ConnContext, DownstreamBody};

pub type H2Builder = http2::Builder<TokioExecutor>;

/// The HTTP/2 connection builder for a listener's limits.
pub fn h2_builder(limits: &Limits) -> H2Builder {
    // HTTP/2 counts 32 bytes of overhead per header. Allow four times the limit so that
    // weft's own check (which answers 431 and counts it) decides; only a header list past
    // that allowance is refused by the h2 layer itself, uncounted.
    let h2_header_list =
        4 * limits.max_request_header_bytes + 32 * limits.max_request_headers + 1024;
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .initial_stream_window_size(limits.http2_initial_stream_window)
        .initial_connection_window_size(limits.http2_initial_connection_window)
        .max_header_list_size(u32::try_from(h2_header_list).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

/// Serves the connection until it ends, it is idle, or `shutdown` fires (in-flight
/// requests finish first).
pub async fn serve<S: SplitIo>(
    mut stream: S,
    ctx: Arc<ConnContext>,
    h2: Arc<H2Builder>,
    limits: Arc<Limits>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Enough of the first bytes to tell the HTTP/2 preface from an HTTP/1 request line.
    let mut first = BytesMut::with_capacity(8192);
    let wait = limits.head_wait();
    let detected = tokio::time::timeout(wait, async {
        loop {
            if let Some(h2) = h1::head::may_be_h2_preface(&first) {
                return Some(h2);
            }
            tokio::select! {
                read = stream.read_buf(&mut first) => match read {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                },
                _ = shutdown.changed() => return None,
            }
        }
    })
    .await;
    match detected {
        Ok(Some(false)) => {
            let (read, write) = stream.split_io();
            h1::serve(read, write, first, ctx, &limits, shutdown).await;
        }
        Ok(Some(true)) => {
            let stream = Rewind::new(first.freeze(), stream);
            serve_h2(stream, ctx, &h2, limits.idle_timeout, shutdown).await;
        }
        Ok(None) | Err(_) => {}
    }
}

/// Serves HTTP/2 until the connection ends, it is idle for `idle_timeout` (no stream open
/// and no bytes moving), or `shutdown` fires.
async fn serve_h2<S>(
    stream: S,
    ctx: Arc<ConnContext>,
    builder: &H2Builder,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(ActivityIo::new(stream, ctx.activity.clone()));
    let request_ctx = ctx.clone();
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        proxy::handle(
            request_ctx.clone(),
            req.map(DownstreamBody::Http2),
            proxy::Present::ANY,
        )
    });
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
                    tracing::debug!(peer = %ctx.peer, error = %crate::error::chain(&error), "connection closed with an error");
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
