//! Moving a request body through the filters' body phases to the upstream request.
//!
//! The pump reads the client's body, runs each chunk through the filter chain, and hands
//! what comes out to the upstream request's body ([`ChannelBody`]) through a small bounded
//! channel, so the upload keeps its backpressure. It is a poll-based state machine: the
//! request task drives it while waiting for the upstream's response head, and the
//! response body keeps driving it afterwards, so requests and responses stream both ways
//! at once. The channel carries an explicit end: a pump that stops for any other reason
//! makes the upstream request fail instead of ending it as if complete.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::body::{BoxError, DownstreamBody, RequestBody};
use super::filters::{BodyStop, FilterRun};

/// What crosses the channel.
pub enum Item {
    Frame(Frame<Bytes>),
    End,
    Error(BoxError),
}

/// Creates a pump over `body` and the upstream body it feeds.
pub fn channel(body: RequestBody<DownstreamBody>) -> (RequestPump, ChannelBody) {
    let (tx, rx) = mpsc::channel(2);
    (
        RequestPump {
            body,
            tx: PollSender::new(tx),
            queue: std::collections::VecDeque::new(),
            read_done: false,
            done: false,
        },
        ChannelBody { rx, ended: false },
    )
}

pub struct RequestPump {
    body: RequestBody<DownstreamBody>,
    tx: PollSender<Item>,
    /// Items ready to send, in order.
    queue: std::collections::VecDeque<Item>,
    read_done: bool,
    done: bool,
}

impl RequestPump {
    /// Moves the body along as far as it can. `Ready(Ok)` once all of it (or all the
    /// upstream still wants) has been handed over; `Ready(Err)` when a filter stopped it.
    pub fn poll(
        &mut self,
        run: &mut FilterRun,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), BodyStop>> {
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            if let Some(item) = self.queue.pop_front() {
                match self.tx.poll_reserve(cx) {
                    Poll::Pending => {
                        self.queue.push_front(item);
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(_)) => {
                        // The upstream request is over (answered or failed): stop reading.
                        self.done = true;
                        continue;
                    }
                    Poll::Ready(Ok(())) => {
                        let end = matches!(item, Item::End | Item::Error(_));
                        let _ = self.tx.send_item(item);
                        self.done = end;
                        continue;
                    }
                }
            }
            if self.read_done {
                self.done = true;
                continue;
            }
            let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
            match frame {
                None => {
                    self.read_done = true;
                    if let Err(stop) = self.flush(run) {
                        return Poll::Ready(Err(stop));
                    }
                    self.queue.push_back(Item::End);
                }
                Some(Err(error)) => {
                    self.read_done = true;
                    self.queue.push_back(Item::Error(error));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => match run.body(true, data, false) {
                        Ok(Some(out)) => self.queue.push_back(Item::Frame(Frame::data(out))),
                        Ok(None) => {}
                        Err(stop) => return Poll::Ready(Err(self.stop(stop))),
                    },
                    // Trailers end the body: what filters hold goes first.
                    Err(trailers) => {
                        self.read_done = true;
                        if let Err(stop) = self.flush(run) {
                            return Poll::Ready(Err(stop));
                        }
                        let trailers = trailers.into_trailers().unwrap_or_default();
                        match run.trailers(true, trailers) {
                            Ok(trailers) => {
                                self.queue.push_back(Item::Frame(Frame::trailers(trailers)))
                            }
                            Err(stop) => return Poll::Ready(Err(self.stop(stop))),
                        }
                        self.queue.push_back(Item::End);
                    }
                },
            }
        }
    }

    /// The end of the body for the filters: what they held flows on.
    fn flush(&mut self, run: &mut FilterRun) -> Result<(), BodyStop> {
        match run.body(true, Bytes::new(), true) {
            Ok(Some(rest)) => {
                self.queue.push_back(Item::Frame(Frame::data(rest)));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(stop) => Err(self.stop(stop)),
        }
    }

    /// A filter stopped the body: the upstream request must fail, not end.
    fn stop(&mut self, stop: BodyStop) -> BodyStop {
        self.done = true;
        self.queue.clear();
        let _ = self
            .tx
            .get_ref()
            .map(|tx| tx.try_send(Item::Error("request body stopped by a filter".into())));
        self.tx.close();
        stop
    }
}

/// The upstream request's body, fed by a [`RequestPump`].
pub struct ChannelBody {
    rx: mpsc::Receiver<Item>,
    ended: bool,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        Poll::Ready(match ready!(self.rx.poll_recv(cx)) {
            Some(Item::Frame(frame)) => Some(Ok(frame)),
            Some(Item::End) => {
                self.ended = true;
                None
            }
            Some(Item::Error(error)) => Some(Err(error)),
            // The pump went away without an end: never pass that off as a complete body.
            None => Some(Err("request body aborted before its end".into())),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}
