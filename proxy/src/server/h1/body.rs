//! The reading side of one downstream HTTP/1 connection, and the request body read from it.
//!
//! The connection and the body of its current request share one `Reader` (the read half,
//! its buffer, and where the body's framing stands). Both are polled by the connection's
//! own task, so the lock is never contended; it is there because a body is `Send` and may
//! outlive its turn. A body that is dropped early leaves its framing state behind, and the
//! connection closes instead of reading the next head out of the middle of a body.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncRead;

use super::head::BodyFraming;
use crate::http1::{ChunkError, ChunkedDecoder, Decoded};
use crate::proxy::BoxError;

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;

/// How much the buffer grows by when it has less than `MIN_READ` bytes of room. Request heads
/// keep the bytes they were read into (their values are slices of them), so a buffer is
/// shared by many small requests before it is replaced.
const READ_CHUNK: usize = 16 * 1024;
const MIN_READ: usize = 2048;

/// The most of an unread request body that is read and dropped after the response to keep
/// the connection open; past it (or for a chunked body) the connection closes instead.
pub const DRAIN_LIMIT: u64 = 64 * 1024;

/// Where the current request body stands.
#[derive(Debug)]
enum BodyState {
    /// No body, or all of it was read.
    Done,
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Malformed, or the client closed in the middle: the connection cannot go on.
    Failed,
}

pub struct Reader {
    io: BoxRead,
    pub buf: BytesMut,
    body: BodyState,
    /// The client closed its side (a read returned 0).
    pub eof: bool,
}

pub type SharedReader = Arc<Mutex<Reader>>;

impl Reader {
    pub fn new(io: BoxRead, buf: BytesMut) -> SharedReader {
        Arc::new(Mutex::new(Reader {
            io,
            buf,
            body: BodyState::Done,
            eof: false,
        }))
    }

    /// Reads more into the buffer. `Ready(Ok(0))` at the end of the stream.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.eof {
            return Poll::Ready(Ok(0));
        }
        if self.buf.capacity() - self.buf.len() < MIN_READ {
            self.buf.reserve(READ_CHUNK);
        }
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf);
        if let Poll::Ready(Ok(0)) = read {
            self.eof = true;
        }
        read
    }

    /// Whether the current request's body was read to its end (so the next head follows).
    pub fn body_done(&self) -> bool {
        matches!(self.body, BodyState::Done)
    }

    /// Whether what is left of the current body is small enough to be read and dropped
    /// after the response, to keep the connection (a chunked body is never).
    pub fn drainable(&self) -> bool {
        match self.body {
            BodyState::Done => true,
            BodyState::Length(left) => left <= DRAIN_LIMIT,
            _ => false,
        }
    }

    /// Reads and drops the rest of a `drainable` body. `Ready(false)` if it cannot end well.
    pub fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            let left = match self.body {
                BodyState::Done => return Poll::Ready(true),
                BodyState::Length(left) if left <= DRAIN_LIMIT => left,
                _ => return Poll::Ready(false),
            };
            let take = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            self.buf.advance(take);
            let left = left - take as u64;
            if left == 0 {
                self.body = BodyState::Done;
                continue;
            }
            self.body = BodyState::Length(left);
            match self.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(n)) if n > 0 => {}
                Poll::Ready(_) => {
                    self.body = BodyState::Failed;
                    return Poll::Ready(false);
                }
            }
        }
    }

    fn start_body(&mut self, framing: BodyFraming) {
        self.body = match framing {
            BodyFraming::Empty => BodyState::Done,
            BodyFraming::Length(n) => BodyState::Length(n),
            BodyFraming::Chunked => BodyState::Chunked(ChunkedDecoder::Size),
        };
    }
}

pub fn lock(reader: &SharedReader) -> MutexGuard<'_, Reader> {
    // A panic while holding it cannot leave the reader half-updated in a way that matters:
    // the connection is gone with the panicking task.
    reader
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the client closed the connection before the request body ended")]
    Closed,
    #[error("reading the request body failed")]
    Read(#[source] io::Error),
    #[error("malformed chunked request body: {0}")]
    Chunked(ChunkError),
}

/// A request body on an HTTP/1 connection, read as it is polled.
pub struct Http1Body {
    reader: SharedReader,
    /// Bytes still to come when the length is known. (The reader's state says the same;
    /// this copy lets `size_hint` and `is_end_stream` answer without taking its lock.)
    left: Option<u64>,
    ended: bool,
}

impl Http1Body {
    /// The body of the request whose head was just read (framing not `Empty`).
    pub fn new(reader: SharedReader, framing: BodyFraming) -> Self {
        lock(&reader).start_body(framing);
        let left = match framing {
            BodyFraming::Empty => Some(0),
            BodyFraming::Length(n) => Some(n),
            BodyFraming::Chunked => None,
        };
        Http1Body {
            reader,
            left,
            ended: left == Some(0),
        }
    }
}

impl Body for Http1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let mut reader = lock(&this.reader);
        let reader = &mut *reader;
        loop {
            let step = match &mut reader.body {
                BodyState::Done => None,
                BodyState::Failed => return Poll::Ready(None),
                BodyState::Length(left) => {
                    if reader.buf.is_empty() {
                        Some(Ok(None))
                    } else {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(reader.buf.len());
                        *left -= take as u64;
                        if *left == 0 {
                            reader.body = BodyState::Done;
                        }
                        Some(Ok(Some(Frame::data(reader.buf.split_to(take).freeze()))))
                    }
                }
                BodyState::Chunked(decoder) => match decoder.decode(&mut reader.buf) {
                    Ok(Decoded::Data(data)) => Some(Ok(Some(Frame::data(data)))),
                    Ok(Decoded::Trailers(map)) => Some(Ok(Some(Frame::trailers(map)))),
                    Ok(Decoded::End) => None,
                    Ok(Decoded::More) => Some(Ok(None)),
                    Err(error) => Some(Err(BodyError::Chunked(error))),
                },
            };
            match step {
                None => {
                    reader.body = BodyState::Done;
                    this.ended = true;
                    this.left = Some(0);
                    return Poll::Ready(None);
                }
                Some(Ok(Some(frame))) => {
                    if let (Some(left), Some(data)) = (this.left.as_mut(), frame.data_ref()) {
                        *left -= data.len() as u64;
                    }
                    if matches!(reader.body, BodyState::Done) && this.left.is_some() {
                        this.ended = true;
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Some(Ok(None)) => match reader.poll_fill(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0)) => {
                        reader.body = BodyState::Failed;
                        return Poll::Ready(Some(Err(BodyError::Closed.into())));
                    }
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(error)) => {
                        reader.body = BodyState::Failed;
                        return Poll::Ready(Some(Err(BodyError::Read(error).into())));
                    }
                },
                Some(Err(error)) => {
                    reader.body = BodyState::Failed;
                    return Poll::Ready(Some(Err(error.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;

    async fn body_of(framing: BodyFraming, wire: &'static [u8]) -> (Result<Vec<u8>, String>, bool) {
        let (client, server) = tokio::io::duplex(64);
        let reader = Reader::new(Box::new(server), BytesMut::new());
        tokio::spawn(async move {
            let mut client = client;
            for piece in wire.chunks(3) {
                let _ = client.write_all(piece).await;
            }
        });
        let body = Http1Body::new(reader.clone(), framing);
        let collected = body.collect().await;
        let done = lock(&reader).body_done();
        (
            collected
                .map(|c| c.to_bytes().to_vec())
                .map_err(|e| e.to_string()),
            done,
        )
    }

    #[tokio::test]
    async fn a_sized_body_ends_at_its_length_and_leaves_the_rest() {
        let (client, server) = tokio::io::duplex(64);
        let reader = Reader::new(Box::new(server), BytesMut::from(&b"hel"[..]));
        let mut client = client;
        client.write_all(b"lo, world").await.unwrap();
        let body = Http1Body::new(reader.clone(), BodyFraming::Length(5));
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        let reader = lock(&reader);
        assert!(reader.body_done());
        assert_eq!(&reader.buf[..], b", world");
    }

    #[tokio::test]
    async fn chunked_bodies_decode_and_bad_ones_fail_the_connection() {
        let (body, done) = body_of(
            BodyFraming::Chunked,
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n",
        )
        .await;
        assert_eq!(body.unwrap(), b"hello world");
        assert!(done);
        let (body, done) = body_of(BodyFraming::Chunked, b"5\nhello\n0\n\n").await;
        assert_eq!(
            body.unwrap_err(),
            "malformed chunked request body: chunk-size line not ended by CRLF"
        );
        assert!(!done, "a malformed body leaves the connection unusable");
    }

    #[tokio::test]
    async fn a_client_closing_mid_body_is_an_error() {
        let (body, done) = body_of(BodyFraming::Length(10), b"short").await;
        assert!(body.unwrap_err().contains("closed"));
        assert!(!done);
    }
}
