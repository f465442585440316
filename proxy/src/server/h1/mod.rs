//! weft's own HTTP/1.x server connection. One task reads a request head, runs the request
//! handler (which reads the body, if any, from the same buffer as it needs it), writes the
//! response, and goes on to the next head while the client keeps the connection.
//!
//! ```text
//! wait for a head (header-read / idle deadline, drain) -> head::parse (limits, framing)
//!   -> proxy::handle, watching for the client to leave -> response::write -> next head
//! ```
//!
//! Every write goes through [`stall::StallGuard`]: a client that takes no byte of the
//! response for the listener's `idle_timeout` has its connection closed.
//!
//! It replaces hyper's HTTP/1 server: the edge rules are applied as the head is parsed
//! instead of on a second scan of the same bytes, no timer is armed while a head is already
//! buffered, and a response whose body is ready goes out in one write.

mod body;
pub mod head;
mod response;
mod stall;

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use http::{Method, Request};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

pub use body::{BoxRead, Http1Body};
use body::{Reader, SharedReader, lock};
use head::{BodyFraming, RequestHead};
pub use response::BoxWrite;
use response::{Answering, WriteError};
use stall::StallGuard;

use crate::config::Limits;
use crate::proxy::{self, ConnContext, DownstreamBody, Rejection};

/// After a response that left part of its request body unread, how long and how much of the
/// rest is read and dropped before the close (so the close does not reset the connection
/// under the response the client has not read yet, as nginx's lingering close).
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

/// What waiting for a request head ended with. (Not boxed: it lives for one move, and a
/// box would be an allocation per request.)
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(RequestHead),
    Reject(Rejection),
    /// The client closed, the wait timed out, or the worker is draining: close quietly.
    Close,
}

/// Serves HTTP/1.x on a connection whose first bytes (`first`) were already read.
pub async fn serve(
    read: BoxRead,
    write: BoxWrite,
    first: BytesMut,
    ctx: Arc<ConnContext>,
    limits: &Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let reader = Reader::new(read, first);
    let mut write = StallGuard::new(write, limits.idle_timeout);
    let mut out = BytesMut::with_capacity(4096);
    // Draining: the shared flag says so; the watch only wakes a connection that waits for a
    // head. Its future is polled once to register and then left alone (polling it on every
    // turn cost about 1% of the CPU per request), as it wakes this task when it fires.
    let mut closing = *shutdown.borrow() || ctx.shared.is_draining();
    let mut changed = pin!(shutdown.changed());
    let mut registered = false;
    // One deadline for a head to arrive: the header-read timeout, or the idle timeout when
    // that is shorter (a kept-alive connection waits for its next head under it too). It is
    // armed once and moved only when it passes: if requests were served since it was set, it
    // is set again from then. So a head that takes too long is cut at the deadline, and an
    // idle connection closes between one and two deadlines after its last request, without
    // a clock read or a timer update per request.
    let wait = limits.head_wait();
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    let mut served: u64 = 0;
    let mut served_when_armed: u64 = 0;
    loop {
        let head = {
            poll_fn(|cx| {
                {
                    let mut r = lock(&reader);
                    loop {
                        if !r.buf.is_empty() {
                            match head::parse(&mut r.buf, limits) {
                                Ok(Some(head)) => return Poll::Ready(Next::Head(head)),
                                Err(rejection) => return Poll::Ready(Next::Reject(rejection)),
                                Ok(None) => {}
                            }
                        } else if closing {
                            return Poll::Ready(Next::Close);
                        }
                        match r.poll_fill(cx) {
                            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                                return Poll::Ready(Next::Close);
                            }
                            Poll::Ready(Ok(_)) => {}
                            Poll::Pending => break,
                        }
                    }
                    if !closing {
                        if ctx.shared.is_draining() {
                            closing = true;
                        } else if !registered {
                            registered = true;
                            closing = changed.as_mut().poll(cx).is_ready();
                        }
                        if closing && r.buf.is_empty() {
                            return Poll::Ready(Next::Close);
                        }
                    }
                }
                let sleep = timer.get_or_insert_with(|| {
                    served_when_armed = served;
                    Box::pin(tokio::time::sleep_until(Instant::now() + wait))
                });
                while sleep.as_mut().poll(cx).is_ready() {
                    if served == served_when_armed {
                        tracing::debug!(peer = %ctx.peer, "closing: no request head in time");
                        return Poll::Ready(Next::Close);
                    }
                    served_when_armed = served;
                    sleep.as_mut().reset(Instant::now() + wait);
                }
                Poll::Pending
            })
            .await
        };
        let head = match head {
            Next::Head(head) => head,
            Next::Close => break,
            Next::Reject(rejection) => {
                reject(&ctx, rejection, &mut write, &mut out).await;
                linger(&reader, &mut write).await;
                return;
            }
        };

        let RequestHead {
            parts,
            body: framing,
            keep_alive,
            expect_continue,
            present,
        } = head;
        let mut answering = Answering {
            head_request: parts.method == Method::HEAD,
            version: parts.version,
            keep_alive,
        };
        let body = match framing {
            BodyFraming::Empty => DownstreamBody::Empty,
            framing => {
                if expect_continue && response::write_continue(&mut write).await.is_err() {
                    return;
                }
                DownstreamBody::Http1(Http1Body::new(reader.clone(), framing))
            }
        };
        let handling = proxy::handle(ctx.clone(), Request::from_parts(parts, body), present);
        let mut handling = pin!(handling);
        let watch_limit = limits.max_request_header_bytes;
        let response = poll_fn(|cx| {
            if let Poll::Ready(Ok(response)) = handling.as_mut().poll(cx) {
                return Poll::Ready(Some(response));
            }
            // Meanwhile, a client that leaves ends the request (the handler is dropped, so
            // the filters see it end); bytes of a next request are kept for later.
            let mut r = lock(&reader);
            while r.body_done() && r.buf.len() < watch_limit {
                match r.poll_fill(cx) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(None),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => break,
                }
            }
            Poll::Pending
        })
        .await;
        let Some(response) = response else {
            tracing::debug!(peer = %ctx.peer, "the client closed the connection mid-request");
            return;
        };
        served += 1;
        closing |= ctx.shared.is_draining();
        // Draining, or a request body still unread that is too long to drop afterwards: the
        // client is told that the connection ends with this response.
        answering.keep_alive &= !closing && lock(&reader).drainable();
        match response::write(&mut write, &mut out, response, answering).await {
            Ok(true) if !closing => {
                if !lock(&reader).body_done() {
                    let drained =
                        tokio::time::timeout(wait, poll_fn(|cx| lock(&reader).poll_drain(cx)))
                            .await;
                    if drained != Ok(true) {
                        linger(&reader, &mut write).await;
                        return;
                    }
                }
            }
            Ok(_) => {
                linger(&reader, &mut write).await;
                return;
            }
            Err(WriteError::Io(error)) => {
                tracing::debug!(peer = %ctx.peer, %error, "writing the response failed");
                return;
            }
            Err(error) => {
                tracing::debug!(peer = %ctx.peer, error = %crate::error::chain(&error), "response cut short");
                return;
            }
        }
    }
    let _ = write.shutdown().await;
}

/// Answers a head that was refused before it could be handled, counts it, and closes.
async fn reject(
    ctx: &ConnContext,
    rejection: Rejection,
    write: &mut StallGuard,
    out: &mut BytesMut,
) {
    tracing::debug!(peer = %ctx.peer, ?rejection, "request refused");
    let snapshot = ctx.shared.snapshot();
    let response = rejection.answer(&snapshot.listeners[ctx.listener].metrics);
    let answering = Answering {
        head_request: false,
        version: http::Version::HTTP_11,
        keep_alive: false,
    };
    let _ = response::write(write, out, response, answering).await;
}

/// Ends the connection: the write side first, then what the client still sends is read and
/// dropped for a while, so that the close does not destroy a response in flight.
async fn linger(reader: &SharedReader, write: &mut StallGuard) {
    let _ = write.shutdown().await;
    let mut drained = 0;
    let _ = tokio::time::timeout(
        LINGER_TIME,
        poll_fn(|cx| {
            let mut r = lock(reader);
            loop {
                r.buf.clear();
                match r.poll_fill(cx) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(n)) => {
                        drained += n;
                        if drained > LINGER_BYTES {
                            return Poll::Ready(());
                        }
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
        }),
    )
    .await;
}
