//! One HTTP/1.1 exchange on an upstream connection, run by the task of the request that
//! makes it: the request head and body are written, and the response read, as that task
//! polls. No connection task, no channel between the request and its connection.
//!
//! The request body keeps streaming up while the response head is awaited and while the
//! response body streams down (an upstream may answer before it has read the whole
//! upload). A connection is reusable after an exchange only when both directions
//! completed, the upstream allowed it (`connection`, version) and the response was framed
//! by length or chunks.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Request};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

use super::wire::{self, Incoming, Outgoing, ResponseHead, WireError};
use crate::cluster::connect::UpstreamIo;
use crate::cluster::limits::OpenConnection;
use crate::http1::{ChunkedDecoder, Decoded, encode_chunk, encode_last_chunk};
use crate::proxy::{BoxError, ProxyBody};

/// Bytes of body buffered for writing before they are written out.
const WRITE_BATCH: usize = 16 * 1024;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;

/// An open upstream connection with what has been read from it and not yet used.
pub(super) struct Conn {
    io: UpstreamIo,
    read: BytesMut,
    /// What is to be written; empty between exchanges (kept for its room).
    write: BytesMut,
    /// The deadline of the exchange on the connection, made with the first exchange and
    /// moved for each next one: moving a timer later is an atomic store in tokio, where a
    /// timer made and dropped per request is two trips through the timer wheel. One that
    /// passes while the connection is idle only wakes the task that last waited on it,
    /// which finds nothing to do.
    timer: Option<Pin<Box<Sleep>>>,
    /// Counted against the cluster's `max_connections` while the connection lives.
    pub(super) open: Option<OpenConnection>,
}

impl Conn {
    pub(super) fn new(io: UpstreamIo) -> Self {
        Conn {
            io,
            read: BytesMut::new(),
            write: BytesMut::new(),
            timer: None,
            open: None,
        }
    }

    /// Whether an idle connection can carry a new exchange: nothing arrived on it while it
    /// was idle (no close, no stray bytes). Reads only what is ready, never waits.
    pub(super) fn is_usable(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut quiet = Context::from_waker(Waker::noop());
        self.read.reserve(64);
        // Pending: nothing to read, the connection is quiet and open.
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), &mut quiet, &mut self.read)
            .is_pending()
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.read.reserve(READ_CHUNK);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read)
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("writing the request failed")]
    Write(#[source] io::Error),
    #[error("reading the response failed")]
    Read(#[source] io::Error),
    #[error("the upstream closed the connection before the response head")]
    ClosedBeforeHead,
    #[error("the upstream closed the connection before the end of the response body")]
    ClosedInBody,
    #[error("the request body failed")]
    RequestBody(#[source] BoxError),
    #[error("the request body does not match its declared length")]
    RequestLength,
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// The state of the request's upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upload {
    /// Bytes of the body still to come, as framed.
    Body(Outgoing),
    /// The whole request is in the write buffer; it has to go out and be flushed.
    Ending,
    Sent,
    /// Abandoned (the response ended first, or the write failed): the connection closes.
    Dropped,
}

/// How much of the response body is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Download {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// One request and its response on one connection.
pub(super) struct Exchange {
    conn: Conn,
    /// The request head, kept until the response head comes so that a request never
    /// sent (a pooled connection found closed) can go again.
    head: Option<http::request::Parts>,
    body: Option<ProxyBody>,
    /// Whether any of the body was taken (a body untouched can be sent again).
    body_touched: bool,
    upload: Upload,
    /// Bytes of the response seen (an exchange that saw none may be replayed).
    answered: bool,
    download: Download,
    keep_alive: bool,
    /// Whether the exchange has let the other tasks of this turn run before writing.
    yielded: bool,
}

impl Exchange {
    /// Starts `req` on `conn`: its head (and an empty body's framing) is encoded now and
    /// written when the exchange is first polled.
    pub(super) fn new(mut conn: Conn, req: Request<ProxyBody>) -> Self {
        let (head, body) = req.into_parts();
        let ended = body.is_end_stream();
        debug_assert!(conn.write.is_empty());
        conn.write.reserve(512);
        let framing = wire::encode_request_head(&head, ended, &body.size_hint(), &mut conn.write);
        let upload = if framing == Outgoing::Empty {
            Upload::Ending
        } else {
            Upload::Body(framing)
        };
        Exchange {
            conn,
            head: Some(head),
            body: Some(body),
            body_touched: false,
            upload,
            answered: false,
            download: Download::Done,
            keep_alive: false,
            yielded: false,
        }
    }

    /// Sets the deadline for the response head, checked by [`Self::passed`].
    pub(super) fn set_deadline(&mut self, deadline: Instant) {
        match self.conn.timer.as_mut() {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.conn.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    /// Whether the deadline has passed; if not, `cx` is woken when it does.
    pub(super) fn passed(&mut self, cx: &mut Context<'_>) -> bool {
        self.conn
            .timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
    }

    /// Whether the request can go again on another connection: no byte of a response came
    /// and its body was not read (so it is whole).
    pub(super) fn replayable(&self) -> bool {
        !self.answered && !self.body_touched && self.head.is_some()
    }

    /// The request back, for sending again ([`Self::replayable`]).
    pub(super) fn into_request(mut self) -> Option<Request<ProxyBody>> {
        let head = self.head.take()?;
        Some(Request::from_parts(head, self.body.take()?))
    }

    /// Moves the upload along: writes what is buffered, takes more of the body. `Ready`
    /// once it is all sent (or was dropped).
    fn poll_upload(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        loop {
            if let Upload::Body(framing) = self.upload
                && self.conn.write.len() < WRITE_BATCH
            {
                let body = self.body.as_mut().expect("a body while uploading");
                match Pin::new(body).poll_frame(cx) {
                    Poll::Ready(frame) => {
                        self.body_touched = true;
                        self.take_frame(framing, frame)?;
                        continue;
                    }
                    Poll::Pending if self.conn.write.is_empty() => {
                        ready!(Pin::new(&mut self.conn.io).poll_flush(cx))
                            .map_err(ExchangeError::Write)?;
                        return Poll::Pending;
                    }
                    Poll::Pending => {}
                }
            }
            match self.upload {
                Upload::Sent | Upload::Dropped => return Poll::Ready(Ok(())),
                _ if !self.conn.write.is_empty() => {
                    let n = ready!(Pin::new(&mut self.conn.io).poll_write(cx, &self.conn.write))
                        .map_err(ExchangeError::Write)?;
                    if n == 0 {
                        return Poll::Ready(Err(ExchangeError::Write(
                            io::ErrorKind::WriteZero.into(),
                        )));
                    }
                    self.conn.write.advance(n);
                }
                Upload::Ending => {
                    ready!(Pin::new(&mut self.conn.io).poll_flush(cx))
                        .map_err(ExchangeError::Write)?;
                    self.upload = Upload::Sent;
                }
                Upload::Body(_) => {}
            }
        }
    }

    /// Encodes one frame (or the end) of the request body.
    fn take_frame(
        &mut self,
        framing: Outgoing,
        frame: Option<Result<Frame<Bytes>, BoxError>>,
    ) -> Result<(), ExchangeError> {
        let frame = match frame {
            None => {
                match framing {
                    Outgoing::Length(left) if left > 0 => return Err(ExchangeError::RequestLength),
                    Outgoing::Chunked => encode_last_chunk(None, &mut self.conn.write),
                    _ => {}
                }
                self.upload = Upload::Ending;
                return Ok(());
            }
            Some(frame) => frame.map_err(ExchangeError::RequestBody)?,
        };
        match frame.into_data() {
            Ok(data) if data.is_empty() => {}
            Ok(data) => match framing {
                Outgoing::Length(left) => {
                    let left = left
                        .checked_sub(data.len() as u64)
                        .ok_or(ExchangeError::RequestLength)?;
                    self.conn.write.extend_from_slice(&data);
                    self.upload = Upload::Body(Outgoing::Length(left));
                }
                Outgoing::Chunked => encode_chunk(&data, &mut self.conn.write),
                Outgoing::Empty => return Err(ExchangeError::RequestLength),
            },
            Err(frame) => {
                // Trailers end the body; HTTP/1.1 carries them only after chunks.
                if framing == Outgoing::Chunked {
                    let trailers: Option<HeaderMap> = frame.into_trailers().ok();
                    encode_last_chunk(trailers.as_ref(), &mut self.conn.write);
                    self.upload = Upload::Ending;
                } else if framing == Outgoing::Length(0) {
                    self.upload = Upload::Ending;
                }
            }
        }
        Ok(())
    }

    /// Sends the request (as far as the upstream takes it) and reads the response head.
    pub(super) fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<ResponseHead, ExchangeError>> {
        if !self.yielded {
            // Requests parsed in the same turn of the event loop then go upstream together,
            // at its end, so the upstream takes them in one wake-up rather than one each.
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut write_failed = None;
        if let Poll::Ready(Err(error)) = self.poll_upload(cx) {
            match error {
                // The upstream may have answered and closed (a request it refused): what
                // it said is still read.
                ExchangeError::Write(error) => {
                    self.upload = Upload::Dropped;
                    write_failed = Some(error);
                }
                other => return Poll::Ready(Err(other)),
            }
        }
        loop {
            let method = &self
                .head
                .as_ref()
                .expect("the request head until the response's")
                .method;
            if self.conn.read.is_empty() {
                // Nothing to parse yet.
            } else if let Some(head) = wire::parse_response_head(&mut self.conn.read, method)? {
                self.download = match head.body {
                    Incoming::Empty => Download::Done,
                    Incoming::Length(n) => Download::Length(n),
                    Incoming::Chunked => Download::Chunked(ChunkedDecoder::Size),
                    Incoming::UntilClose => Download::UntilClose,
                };
                self.keep_alive = head.keep_alive;
                self.head = None;
                return Poll::Ready(Ok(head));
            }
            match self.conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(match write_failed {
                        Some(error) if !self.answered => ExchangeError::Write(error),
                        _ => ExchangeError::ClosedBeforeHead,
                    }));
                }
                Poll::Ready(Ok(_)) => self.answered = true,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(ExchangeError::Read(error))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The next frame of the response body; the upload goes on alongside.
    pub(super) fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        if !matches!(self.upload, Upload::Sent | Upload::Dropped) {
            match self.poll_upload(cx) {
                Poll::Ready(Err(ExchangeError::Write(_))) => self.upload = Upload::Dropped,
                Poll::Ready(Err(error)) => {
                    self.upload = Upload::Dropped;
                    self.download = Download::Done;
                    return Poll::Ready(Some(Err(error)));
                }
                _ => {}
            }
        }
        loop {
            match self.next_buffered() {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) if self.download == Download::Done => return Poll::Ready(None),
                Ok(None) => {}
                Err(error) => {
                    self.download = Download::Done;
                    self.keep_alive = false;
                    return Poll::Ready(Some(Err(error)));
                }
            }
            match ready!(self.conn.poll_fill(cx)) {
                Ok(0) if self.download == Download::UntilClose => {
                    self.download = Download::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.download = Download::Done;
                    self.keep_alive = false;
                    return Poll::Ready(Some(Err(ExchangeError::ClosedInBody)));
                }
                Ok(_) => {}
                Err(error) => {
                    self.download = Download::Done;
                    self.keep_alive = false;
                    return Poll::Ready(Some(Err(ExchangeError::Read(error))));
                }
            }
        }
    }

    /// The next frame that can be made from what has been read already.
    fn next_buffered(&mut self) -> Result<Option<Frame<Bytes>>, ExchangeError> {
        let read = &mut self.conn.read;
        match &mut self.download {
            Download::Done => Ok(None),
            Download::Length(left) => {
                if read.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(*left).unwrap_or(usize::MAX).min(read.len());
                let data = read.split_to(take).freeze();
                *left -= take as u64;
                if *left == 0 {
                    self.download = Download::Done;
                }
                Ok(Some(Frame::data(data)))
            }
            Download::Chunked(decoder) => match decoder.decode(read).map_err(WireError::from)? {
                Decoded::Data(data) => Ok(Some(Frame::data(data))),
                Decoded::Trailers(trailers) => Ok(Some(Frame::trailers(trailers))),
                Decoded::End => {
                    self.download = Download::Done;
                    Ok(None)
                }
                Decoded::More => Ok(None),
            },
            Download::UntilClose => {
                if read.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Frame::data(read.split().freeze())))
            }
        }
    }

    /// Whether the response body has been read to its end.
    pub(super) fn is_end_stream(&self) -> bool {
        self.download == Download::Done
    }

    pub(super) fn size_hint(&self) -> SizeHint {
        match self.download {
            Download::Done => SizeHint::with_exact(0),
            Download::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }

    /// Reads what has already arrived of the response body, without waiting; says
    /// whether that completed it.
    pub(super) fn finish_buffered(&mut self) -> bool {
        while self.download != Download::Done {
            match self.next_buffered() {
                Ok(Some(_)) => {}
                Ok(None) if self.download == Download::Done => break,
                Ok(None) | Err(_) => return false,
            }
        }
        true
    }

    /// The connection, if the exchange left it fit for another: both directions complete
    /// and the upstream allowing it.
    pub(super) fn into_reusable(self) -> Option<Conn> {
        (self.keep_alive
            && self.upload == Upload::Sent
            && self.download == Download::Done
            && self.conn.read.is_empty())
        .then_some(self.conn)
    }
}
