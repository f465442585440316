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
    // The data read so far, as one piece (most bodies are one frame: no copy then).
    let mut data: Option<Bytes> = None;
    let stop = loop {
        match Pin::new(&mut body).poll_frame(cx) {
            Poll::Ready(None) => break None,
            Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                let Ok(more) = frame.into_data() else {
                    unreachable!("a data frame")
                };
                data = Some(match data {
                    None => more,
                    Some(before) => {
                        let mut joined = BytesMut::with_capacity(before.len() + more.len());
                        joined.extend_from_slice(&before);
                        joined.extend_from_slice(&more);
                        joined.freeze()
                    }
                });
                if data.as_ref().is_some_and(|d| d.len() > WHOLE_LIMIT) {
                    break Some(None);
                }
            }
            // Trailers or an error: streamed, where they are handled.
            Poll::Ready(Some(other)) => break Some(Some(other)),
            Poll::Pending => break Some(None),
        }
    };
    if let Some(next) = stop {
        let read = data.map(|d| Ok(Frame::data(d))).into_iter().chain(next);
        return Early::Streaming(Replay::around(read.collect(), body));
    }
    match run.body(false, data.unwrap_or_default(), true) {
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
