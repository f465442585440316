//! Running a listener's wasm filter chain for one request.
//!
//! ```text
//! request headers:  filter 1 -> filter 2 -> ... -> route -> upstream
//! response headers: filter N -> ... -> filter 1 -> client
//! end:              on_log, on_done, on_delete for every filter
//! ```
//!
//! A filter that sends a local reply stops the request phase; the reply then goes through
//! the response phase of every filter that saw the request. A filter that fails (trap,
//! deadline, out of memory) answers 500, or is skipped for the rest of the request when it
//! is `fail_open`; its VM is replaced for later requests.
//!
//! A filter that returns Pause waits: the results of the calls the filters made are
//! delivered until the paused filter continues the stream or replies, or another callback
//! (say `on_tick`) resumes it with `proxy_set_effective_context` + `proxy_continue_stream`.
//! A pause that nothing ends within `wasm.pause_timeout` answers 500 and says so.
//!
//! Bodies stream through the body phases as a pipeline: each filter sees the data that came
//! through the filters before it (in phase order). A filter that returns Pause holds its
//! data, and everything after it, until it continues or the body ends (at the end it is
//! asked again with the end-of-stream flag, and what it holds then flows on). What a filter
//! holds is bounded by `wasm.max_buffered_body_kb`.
//!
//! Trailers go through `on_request_trailers` / `on_response_trailers` after the body.
//!
//! NOT DONE YET: calls still pending once the request went upstream are
//! dropped undelivered; a pause in a body phase is only ended by more data or the end of
//! the body, not by an http call response.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};
use http::{request, response};

use crate::snapshot::Snapshot;
use crate::wasm::abi::types::Action;
use crate::wasm::plugin::Plugin;
use crate::wasm::state::{BodyBuffer, CallResult, HttpStream, LocalReply, StreamInfo};
use crate::wasm::vm::VmError;

/// One filter's HTTP context for this request.
#[derive(Clone, Copy, Default)]
struct Context {
    /// (VM generation, context id), once created.
    id: Option<(u64, u32)>,
    /// Skipped after a fail-open failure.
    skipped: bool,
    /// Saw the request phase (so it also gets the response phase).
    entered: bool,
}

/// Why a body phase stopped the stream.
#[derive(Debug)]
pub enum BodyStop {
    /// A filter held more than `wasm.max_buffered_body_kb`.
    TooLarge,
    Reply(LocalReply),
    Fail(String),
}

/// What the request phase decided.
#[derive(Debug)]
pub enum Verdict {
    Continue,
    Reply(LocalReply),
    Fail(String),
}

/// A call's events as a stream, each tagged by `tag`.
pub fn events<T: Send + 'static>(
    call: crate::wasm::state::PendingCall,
    tag: impl Fn(u32, CallResult) -> T + Send + 'static,
) -> BoxStream<'static, T> {
    let token = call.token;
    Box::pin(
        futures_util::stream::unfold(call.events, |mut rx| async move {
            rx.recv().await.map(|event| (event, rx))
        })
        .map(move |event| tag(token, event)),
    )
}

fn trailers_slot(stream: &mut HttpStream, request: bool) -> &mut Option<http::HeaderMap> {
    if request {
        &mut stream.request_trailers
    } else {
        &mut stream.response_trailers
    }
}

/// The events of the calls in flight: (filter index, token, event).
type CallEvents = SelectAll<BoxStream<'static, (usize, u32, CallResult)>>;

pub struct FilterRun {
    worker: usize,
    /// The chain: `snapshot.listeners[listener].filters`.
    snapshot: Arc<Snapshot>,
    listener: usize,
    contexts: Vec<Context>,
    /// Created with the first call.
    calls: Option<CallEvents>,
    /// What each filter holds of the request and of the response body while paused
    /// (empty until a filter holds some).
    held_request: Vec<Option<BytesMut>>,
    held_response: Vec<Option<BytesMut>>,
    max_body: usize,
    /// How long a paused request waits to be resumed.
    pause_timeout: std::time::Duration,
    /// The request as filters see it (moved into a VM for each callback).
    pub stream: Option<Box<HttpStream>>,
}

impl FilterRun {
    pub fn new(
        snapshot: Arc<Snapshot>,
        listener: usize,
        worker: usize,
        info: StreamInfo,
        request: request::Parts,
    ) -> Self {
        let filters = snapshot.listeners[listener].filters.len();
        FilterRun {
            worker,
            calls: None,
            held_request: Vec::new(),
            held_response: Vec::new(),
            max_body: snapshot.config.wasm.limits.max_buffered_body,
            pause_timeout: snapshot.config.wasm.limits.pause_timeout,
            contexts: vec![Context::default(); filters],
            snapshot,
            listener,
            stream: Some(Box::new(HttpStream::new(request, info))),
        }
    }

    /// Filter `i` of the chain.
    fn plugin(&self, i: usize) -> &Arc<Plugin> {
        &self.snapshot.listeners[self.listener].filters[i]
    }

    /// The cluster a filter chose by setting the property `weft.cluster`, if any.
    pub fn chosen_cluster(&mut self) -> Option<String> {
        self.stream()
            .filter_state
            .iter()
            .find(|(k, _)| k == b"weft\0cluster" || k == b"weft.cluster")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn stream(&mut self) -> &mut HttpStream {
        self.stream
            .as_mut()
            .expect("the stream is back after every callback")
    }

    /// Runs `on_request_headers` through the chain. Without a pause it ends here;
    /// `Err(i)`: filter `i` paused, and [`Self::resume_request_headers`] goes on.
    pub fn request_headers(&mut self, end_of_stream: bool) -> Result<Verdict, usize> {
        self.request_headers_from(0, end_of_stream)
    }

    /// Waits for the paused filter `i` to be resumed, then runs the rest of the chain's
    /// request header phase.
    pub async fn resume_request_headers(&mut self, mut i: usize, end_of_stream: bool) -> Verdict {
        loop {
            if let Some(verdict) = self.wait(i).await {
                return verdict;
            }
            match self.request_headers_from(i + 1, end_of_stream) {
                Ok(verdict) => return verdict,
                Err(paused) => i = paused,
            }
        }
    }

    fn request_headers_from(
        &mut self,
        first: usize,
        end_of_stream: bool,
    ) -> Result<Verdict, usize> {
        for i in first..self.contexts.len() {
            if self.contexts[i].skipped {
                continue;
            }
            self.contexts[i].entered = true;
            let count = self.request_header_count();
            let result = self.call(i, "request headers", |vm, ctx, stream| {
                vm.on_request_headers(ctx, stream, count, end_of_stream)
            });
            match result {
                Err(verdict) => return Ok(verdict),
                Ok(None) => continue,
                Ok(Some(action)) => {
                    if let Some(reply) = self.stream().local_reply.take() {
                        return Ok(Verdict::Reply(reply));
                    }
                    if action == Action::Pause {
                        return Err(i);
                    }
                }
            }
        }
        Ok(Verdict::Continue)
    }

    /// Runs a chunk of the request body (`request`) or response body through the body
    /// phases; returns what comes out the other side (nothing while a filter holds it).
    /// Call it once more with an empty chunk and `end_of_stream` when the body ends.
    pub fn body(
        &mut self,
        request: bool,
        chunk: Bytes,
        end_of_stream: bool,
    ) -> Result<Option<Bytes>, BodyStop> {
        let n = self.contexts.len();
        // Phase order: requests in chain order, responses in reverse.
        let order = (0..n).map(|k| if request { k } else { n - 1 - k });
        let mut data = chunk;
        for i in order {
            if self.contexts[i].skipped || !self.contexts[i].entered {
                continue;
            }
            let held = if request {
                self.held_request.get_mut(i)
            } else {
                self.held_response.get_mut(i)
            };
            if let Some(mut before) = held.and_then(Option::take) {
                before.extend_from_slice(&data);
                data = before.freeze();
            }
            if data.is_empty() && !end_of_stream {
                continue;
            }
            let size = data.len() as u32;
            self.stream().body = Some(BodyBuffer { request, data });
            let phase = if request {
                "request body"
            } else {
                "response body"
            };
            let result = self.call(i, phase, |vm, ctx, stream| {
                vm.on_body(request, ctx, stream, size, end_of_stream)
            });
            data = self
                .stream()
                .body
                .take()
                .map(|b| b.data)
                .unwrap_or_default();
            match result {
                Err(Verdict::Reply(reply)) => return Err(BodyStop::Reply(reply)),
                Err(Verdict::Fail(why)) => return Err(BodyStop::Fail(why)),
                Err(Verdict::Continue) | Ok(None) => {}
                Ok(Some(action)) => {
                    if let Some(reply) = self.stream().local_reply.take() {
                        return Err(BodyStop::Reply(reply));
                    }
                    if action == Action::Pause && !end_of_stream {
                        if data.len() > self.max_body {
                            return Err(BodyStop::TooLarge);
                        }
                        // What filters hold, allocated when one first holds some.
                        let held = if request {
                            &mut self.held_request
                        } else {
                            &mut self.held_response
                        };
                        if held.len() < n {
                            held.resize(n, None);
                        }
                        held[i] = Some(BytesMut::from(data));
                        return Ok(None);
                    }
                }
            }
        }
        Ok((!data.is_empty()).then_some(data))
    }

    /// Runs the trailers phase (request: in order; response: in reverse) on `trailers`;
    /// returns them as the filters left them. A Pause there cannot be resumed later and is
    /// taken as Continue.
    pub fn trailers(
        &mut self,
        request: bool,
        trailers: http::HeaderMap,
    ) -> Result<http::HeaderMap, BodyStop> {
        let n = self.contexts.len();
        // Phase order: requests in chain order, responses in reverse.
        let order = (0..n).map(|k| if request { k } else { n - 1 - k });
        *trailers_slot(self.stream(), request) = Some(trailers);
        for i in order {
            if self.contexts[i].skipped || !self.contexts[i].entered {
                continue;
            }
            let count = trailers_slot(self.stream(), request)
                .as_ref()
                .map_or(0, |t| t.len() as u32);
            let phase = if request {
                "request trailers"
            } else {
                "response trailers"
            };
            match self.call(i, phase, |vm, ctx, stream| {
                vm.on_trailers(request, ctx, stream, count)
            }) {
                Err(Verdict::Reply(reply)) => return Err(BodyStop::Reply(reply)),
                Err(Verdict::Fail(why)) => return Err(BodyStop::Fail(why)),
                _ => {
                    if let Some(reply) = self.stream().local_reply.take() {
                        return Err(BodyStop::Reply(reply));
                    }
                }
            }
        }
        Ok(trailers_slot(self.stream(), request)
            .take()
            .unwrap_or_default())
    }

    /// Filter `i` paused: delivers call responses until it continues (`None`), replies, or
    /// fails.
    async fn wait(&mut self, i: usize) -> Option<Verdict> {
        let plugin = self.plugin(i).clone();
        let context = self.contexts[i].id.map(|(_, id)| id).unwrap_or_default();
        let resumed = plugin.wait_for_resume(self.worker, context);
        let verdict = self.wait_for(i, &resumed).await;
        plugin.stop_waiting(self.worker, context);
        verdict
    }

    async fn wait_for(&mut self, i: usize, resumed: &tokio::sync::Notify) -> Option<Verdict> {
        let deadline = tokio::time::Instant::now() + self.pause_timeout;
        loop {
            let event = tokio::select! {
                event = async { self.calls.as_mut()?.next().await }, if self.calls.as_ref().is_some_and(|c| !c.is_empty()) => event,
                _ = resumed.notified() => return None,
                _ = tokio::time::sleep_until(deadline) => None,
            };
            let Some((filter, token, response)) = event else {
                let name = &self.plugin(i).spec.name;
                tracing::error!(filter = %name, timeout = ?self.pause_timeout, "a paused request was not resumed in time");
                return Some(Verdict::Fail(format!(
                    "filter {name:?} paused the request and nothing resumed it within {:?}",
                    self.pause_timeout
                )));
            };
            if self.contexts[filter].skipped {
                continue;
            }
            let resumed = match self.call(filter, "http call response", |vm, ctx, stream| {
                vm.deliver(ctx, stream, token, response)
            }) {
                Err(verdict) => return Some(verdict),
                Ok(resumed) => resumed.unwrap_or(filter == i),
            };
            if let Some(reply) = self.stream().local_reply.take() {
                return Some(Verdict::Reply(reply));
            }
            if resumed && filter == i {
                return None;
            }
        }
    }

    /// Runs `on_response_headers` through the chain in reverse, on `response`. A filter may
    /// replace the response with a local reply. Without a pause it ends here; `Err(i)`:
    /// filter `i` paused, and [`Self::resume_response_headers`] goes on.
    pub fn response_headers(
        &mut self,
        response: response::Parts,
        end_of_stream: bool,
    ) -> Result<(response::Parts, Verdict), usize> {
        self.stream().response = Some(response);
        self.response_headers_below(self.contexts.len(), end_of_stream)
            .map(|verdict| (self.take_response(), verdict))
    }

    /// Waits for the paused filter `i` to be resumed, then runs the rest of the chain's
    /// response header phase.
    pub async fn resume_response_headers(
        &mut self,
        mut i: usize,
        end_of_stream: bool,
    ) -> (response::Parts, Verdict) {
        let verdict = loop {
            if let Some(verdict) = self.wait(i).await {
                break verdict;
            }
            match self.response_headers_below(i, end_of_stream) {
                Ok(verdict) => break verdict,
                Err(paused) => i = paused,
            }
        };
        (self.take_response(), verdict)
    }

    fn take_response(&mut self) -> response::Parts {
        self.stream()
            .response
            .take()
            .expect("the response is back after the callbacks")
    }

    /// The response header phase of the filters before `end`, last first.
    fn response_headers_below(
        &mut self,
        end: usize,
        end_of_stream: bool,
    ) -> Result<Verdict, usize> {
        for i in (0..end).rev() {
            if self.contexts[i].skipped || !self.contexts[i].entered {
                continue;
            }
            let count = self
                .stream()
                .response
                .as_ref()
                .map_or(0, |r| r.headers.len() as u32 + 1);
            match self.call(i, "response headers", |vm, ctx, stream| {
                vm.on_response_headers(ctx, stream, count, end_of_stream)
            }) {
                Err(verdict) => return Ok(verdict),
                Ok(action) => {
                    if let Some(reply) = self.stream().local_reply.take() {
                        return Ok(Verdict::Reply(reply));
                    }
                    if action == Some(Action::Pause) {
                        return Err(i);
                    }
                }
            }
        }
        Ok(Verdict::Continue)
    }

    fn request_header_count(&mut self) -> u32 {
        let headers = &self.stream().request.headers;
        let host = u32::from(headers.contains_key(http::header::HOST));
        headers.len() as u32 - host + 4
    }

    /// Calls into filter `i`'s VM on this worker. `Ok(None)` when the filter was skipped.
    fn call<R>(
        &mut self,
        i: usize,
        phase: &str,
        f: impl FnOnce(
            &mut crate::wasm::vm::Vm,
            u32,
            &mut Option<Box<HttpStream>>,
        ) -> Result<R, VmError>,
    ) -> Result<Option<R>, Verdict> {
        let plugin = &self.snapshot.listeners[self.listener].filters[i];
        let slot = &mut self.contexts[i];
        let stream = &mut self.stream;
        let outcome = plugin.run(self.worker, |vm, generation| {
            let context = match slot.id {
                Some((g, id)) if g == generation => id,
                Some(_) => return Err(VmError::Gone),
                None => {
                    let id = vm.create_http_context()?;
                    slot.id = Some((generation, id));
                    id
                }
            };
            f(vm, context, stream)
        });
        // Http calls the callback made: their responses go back to this filter.
        for call in std::mem::take(&mut self.stream().new_calls) {
            self.calls
                .get_or_insert_with(SelectAll::new)
                .push(events(call, move |token, event| (i, token, event)));
        }
        match outcome {
            Ok(action) => Ok(Some(action)),
            Err(error) => {
                self.contexts[i].skipped = true;
                let plugin = self.plugin(i);
                if plugin.spec.fail_open {
                    tracing::warn!(filter = %plugin.spec.name, phase, %error, "filter failed; skipped (fail_open)");
                    Ok(None)
                } else {
                    tracing::error!(filter = %plugin.spec.name, phase, %error, "filter failed; answering 500");
                    Err(Verdict::Fail(format!(
                        "filter {:?} failed",
                        plugin.spec.name
                    )))
                }
            }
        }
    }

    /// `on_log`, `on_done`, `on_delete` for every context created.
    pub fn finish(&mut self) {
        for i in 0..self.contexts.len() {
            let Some((generation, id)) = self.contexts[i].id else {
                continue;
            };
            let plugin = &self.snapshot.listeners[self.listener].filters[i];
            let stream = &mut self.stream;
            // A VM replaced since the context was made no longer has it.
            let finished = plugin.run(self.worker, |vm, g| {
                if g == generation {
                    vm.finish_http_context(id, stream)
                } else {
                    Ok(())
                }
            });
            if let Err(error) = finished {
                tracing::error!(filter = %plugin.spec.name, %error, "filter failed at the end of a request");
            }
        }
    }
}
