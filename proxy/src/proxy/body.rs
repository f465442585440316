//! Body types and wrappers. Bodies stream: the wrappers only count bytes and note errors as
//! frames pass, they never collect a body.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use pin_project_lite::pin_project;

use super::exchange::Exchange;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type on both sides of the proxy.
/// (Unsync: a response body carries its request's filter run, whose pending calls are
/// `Send` but not `Sync`; hyper needs only `Send`.)
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// What a request body did on its way upstream.
#[derive(Debug, Default)]
pub struct RequestStats {
    pub bytes: AtomicU64,
    /// The downstream body failed (bad chunk framing, client reset): the client's fault.
    pub failed: AtomicBool,
}

impl RequestStats {
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

pin_project! {
    /// A downstream request body on its way upstream.
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        stats: Arc<RequestStats>,
    }
}

impl<B> RequestBody<B> {
    pub fn new(inner: B, stats: Arc<RequestStats>) -> Self {
        RequestBody { inner, stats }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.stats
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.stats.failed.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(e.into())))
            }
            other => other.map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// A response body on its way downstream; its [`Exchange`] is finished (logged and
    /// counted) when the body ends or is dropped.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        exchange: Exchange,
        // Trailers to send after the data the filters let go at the end.
        pending: Option<Frame<Bytes>>,
        ended: bool,
    }
}

impl<B> ResponseBody<B> {
    pub fn new(inner: B, exchange: Exchange) -> Self {
        ResponseBody {
            inner,
            exchange,
            pending: None,
            ended: false,
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        this.exchange.drive_request_pump(cx);
        if let Some(frame) = this.pending.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if *this.ended {
            return Poll::Ready(None);
        }
        loop {
            let frame = match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.exchange.response_failed = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(None) => {
                    *this.ended = true;
                    // The end of the body: filters that held data let it go now.
                    match this.exchange.filter_response_body(Bytes::new(), true) {
                        Ok(Some(rest)) => {
                            this.exchange.bytes_out += rest.len() as u64;
                            this.exchange.response_complete = true;
                            return Poll::Ready(Some(Ok(Frame::data(rest))));
                        }
                        Ok(None) => {
                            this.exchange.response_complete = true;
                            return Poll::Ready(None);
                        }
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) => {
                    // When the body knows this is its last frame (its length is reached),
                    // the filters get end of stream with it rather than in a call of its own.
                    let last = this.inner.is_end_stream();
                    if last {
                        *this.ended = true;
                        this.exchange.response_complete = true;
                    }
                    match this.exchange.filter_response_body(data, last) {
                        Ok(Some(out)) => {
                            this.exchange.bytes_out += out.len() as u64;
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                        Ok(None) if last => return Poll::Ready(None),
                        // Held by a filter: read on.
                        Ok(None) => continue,
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                Err(trailers) => {
                    *this.ended = true;
                    this.exchange.response_complete = true;
                    let trailers = match this.exchange.filter_response_trailers(trailers) {
                        Ok(trailers) => trailers,
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    };
                    match this.exchange.filter_response_body(Bytes::new(), true) {
                        Ok(Some(rest)) => {
                            this.exchange.bytes_out += rest.len() as u64;
                            *this.pending = Some(trailers);
                            return Poll::Ready(Some(Ok(Frame::data(rest))));
                        }
                        Ok(None) => return Poll::Ready(Some(Ok(trailers))),
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none()
            && (self.ended || (self.exchange.filters.is_none() && self.inner.is_end_stream()))
    }

    fn size_hint(&self) -> SizeHint {
        // Filters may change the body's length.
        if self.exchange.filters.is_some() {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}
