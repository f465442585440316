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

/// A body the request path hands back as a [`ProxyBody`]: as it is, or boxed (once).
pub trait IntoProxyBody: Body<Data = Bytes, Error = BoxError> + Send + 'static {
    fn into_proxy_body(self) -> ProxyBody;
}

impl IntoProxyBody for ProxyBody {
    fn into_proxy_body(self) -> ProxyBody {
        self
    }
}

impl IntoProxyBody for crate::cluster::UpstreamBody {
    fn into_proxy_body(self) -> ProxyBody {
        self.boxed_unsync()
    }
}

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A request body as the connection delivers it.
pub enum DownstreamBody {
    /// The head said there is none.
    Empty,
    Http1(crate::server::h1::Http1Body),
    Http2(hyper::body::Incoming),
}

impl Body for DownstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            DownstreamBody::Empty => Poll::Ready(None),
            DownstreamBody::Http1(body) => Pin::new(body).poll_frame(cx),
            DownstreamBody::Http2(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            DownstreamBody::Empty => true,
            DownstreamBody::Http1(body) => body.is_end_stream(),
            DownstreamBody::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            DownstreamBody::Empty => SizeHint::with_exact(0),
            DownstreamBody::Http1(body) => body.size_hint(),
            DownstreamBody::Http2(body) => body.size_hint(),
        }
    }
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
        exchange: Box<Exchange>,
        // Trailers to send after the data the filters let go at the end.
        pending: Option<Frame<Bytes>>,
        ended: bool,
        // The body already went through the filters' body phase (see early.rs).
        filtered: bool,
    }
}

impl<B> ResponseBody<B> {
    pub fn new(inner: B, exchange: Box<Exchange>) -> Self {
        ResponseBody {
            inner,
            exchange,
            pending: None,
            ended: false,
            filtered: false,
        }
    }

    /// A body that already went through the filters: it passes as it is.
    pub fn filtered(inner: B, exchange: Box<Exchange>) -> Self {
        ResponseBody {
            filtered: true,
            ..ResponseBody::new(inner, exchange)
        }
    }

    /// Whether frames pass without the filters' body phase.
    fn passes(&self) -> bool {
        self.filtered || self.exchange.filters.is_none()
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
            // The next piece of the body: data, and whether the body ends with it (the
            // last frame of a body of known length, its end, or its trailers).
            let (data, end, trailers) = match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.exchange.response_failed = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(None) => (Bytes::new(), true, None),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let end = this.inner.is_end_stream();
                        (data, end, None)
                    }
                    Err(trailers) => (Bytes::new(), true, Some(trailers)),
                },
            };
            if end {
                *this.ended = true;
                this.exchange.response_complete = true;
            }
            // The body phases first (at the end, what filters held goes on), then the
            // trailers phase.
            // A body that already went through the filters passes as it is.
            let out = match this
                .exchange
                .filter_response_body(data, end, *this.filtered)
            {
                Ok(out) => out,
                Err(e) => return Poll::Ready(Some(Err(e))),
            };
            let trailers =
                trailers.map(|t| this.exchange.filter_response_trailers(t, *this.filtered));
            let trailers = match trailers {
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(trailers)) => Some(trailers),
                None => None,
            };
            match (out, trailers) {
                (Some(out), trailers) => {
                    this.exchange.bytes_out += out.len() as u64;
                    *this.pending = trailers;
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                (None, Some(trailers)) => return Poll::Ready(Some(Ok(trailers))),
                (None, None) if end => return Poll::Ready(None),
                // Held by a filter: read on.
                (None, None) => continue,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && (self.ended || (self.passes() && self.inner.is_end_stream()))
    }

    fn size_hint(&self) -> SizeHint {
        // Filters may change the body's length as it streams through them.
        if self.passes() {
            self.inner.size_hint()
        } else {
            SizeHint::default()
        }
    }
}
