//! The response body phase ahead of the head, for a body that is already whole.
//!
//! Filters may change a body's length, so a response streamed through their body phase
//! cannot promise one: it goes out chunked (HTTP/1.1) or without `content-length`. Most
//! responses are small and arrive with their head, though; such a body (and a local reply)
//! runs through the body phase before the head is written. The client then gets the body
//! with its exact length, and a filter that replies or fails in that phase still decides the
//! whole response instead of cutting it short. A body that is not all there at once (or is
//! larger than [`WHOLE_LIMIT`], or has trailers) streams as before, from its first byte.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::body::{BoxError, ProxyBody};
use super::filters::{BodyStop, FilterRun};

/// The most a body may hold to go through the filters whole before its head.
pub const WHOLE_LIMIT: usize = 64 * 1024;

/// What the body phase made of a response body.
pub enum Early {
    /// The whole body, as the filters left it.
    Whole(Bytes),
    /// A filter replied or failed in the body phase.
    Stop(BodyStop),
    /// Not all there: the body to stream through the filters, from what was read so far.
    Streaming(ProxyBody),
}

/// Reads what the body has ready without waiting (it is taken out of `body`); a body that
/// ends within it goes through the response body phase of `run` now.
pub fn take_whole(
    run: &mut FilterRun,
    body: &mut Option<ProxyBody>,
    cx: &mut Context<'_>,
) -> Early {
    let Some(mut body) = body.take() else {
        return Early::Whole(Bytes::new());
    };
    // Most bodies are one frame: more go to `read`, which then holds all.
    let mut first: Option<Bytes> = None;
    let mut read: VecDeque<Result<Frame<Bytes>, BoxError>> = VecDeque::new();
    let mut size = 0;
    let unread = |first: Option<Bytes>, mut read: VecDeque<_>, other: Option<_>| {
        if let Some(data) = first {
            read.push_front(Ok(Frame::data(data)));
        }
        read.extend(other);
        read
    };
    loop {
        match Pin::new(&mut body).poll_frame(cx) {
            Poll::Ready(None) => break,
            Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                let Ok(data) = frame.into_data() else {
                    unreachable!("a data frame")
                };
                size += data.len();
                match first {
                    None if read.is_empty() => first = Some(data),
                    _ => read.push_back(Ok(Frame::data(data))),
                }
                if size > WHOLE_LIMIT {
                    return Early::Streaming(Replay::around(unread(first, read, None), body));
                }
            }
            // Trailers or an error: streamed, where they are handled.
            Poll::Ready(Some(other)) => {
                return Early::Streaming(Replay::around(unread(first, read, Some(other)), body));
            }
            Poll::Pending => {
                return Early::Streaming(Replay::around(unread(first, read, None), body));
            }
        }
    }
    let data = match first {
        Some(data) if read.is_empty() => data,
        first => {
            let mut whole = BytesMut::with_capacity(size);
            for frame in unread(first, read, None).into_iter().flatten() {
                if let Some(data) = frame.data_ref() {
                    whole.extend_from_slice(data);
                }
            }
            whole.freeze()
        }
    };
    match run.body(false, data, true) {
        Ok(out) => Early::Whole(out.unwrap_or_default()),
        Err(stop) => Early::Stop(stop),
    }
}

/// A body whose first frames were already read: they come again first.
struct Replay {
    read: VecDeque<Result<Frame<Bytes>, BoxError>>,
    rest: ProxyBody,
}

impl Replay {
    fn around(read: VecDeque<Result<Frame<Bytes>, BoxError>>, rest: ProxyBody) -> ProxyBody {
        if read.is_empty() {
            rest
        } else {
            Replay { read, rest }.boxed_unsync()
        }
    }
}

impl Body for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.read.pop_front() {
            Some(frame) => Poll::Ready(Some(frame)),
            None => Pin::new(&mut self.rest).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // Only the filters' side reads it, and they drop the length anyway.
        SizeHint::default()
    }
}
