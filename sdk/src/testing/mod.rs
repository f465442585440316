//! A native test harness: `cargo test` drives a filter's root and HTTP contexts on the
//! host target, with no wasm runtime and no proxy.
//!
//! Enable it in the filter's `Cargo.toml`:
//!
//! ```toml
//! [dev-dependencies]
//! weft-sdk = { path = "../../sdk", features = ["testing"] }
//! ```
//!
//! and keep the filter's registration in a plain function that `proxy_wasm::main!` calls,
//! so a test can run it too:
//!
//! ```ignore
//! proxy_wasm::main! {{ register(); }}
//!
//! pub fn register() {
//!     proxy_wasm::set_log_level(LogLevel::Info);
//!     proxy_wasm::set_root_context(|_| Box::new(MyRoot::default()));
//! }
//! ```
//!
//! A test then reads:
//!
//! ```ignore
//! use weft_sdk::testing::Host;
//!
//! #[test]
//! fn adds_the_header() {
//!     let mut host = Host::new(my_filter::register);
//!     assert!(host.configure(r#"{"header": "x-hello", "value": "hi"}"#));
//!     let mut http = host.http();
//!     assert_eq!(http.request_headers(&[(":path", "/")], true), Action::Continue);
//!     assert_eq!(http.response_headers(&[(":status", "200")], true), Action::Continue);
//!     assert_eq!(http.response_header("x-hello").as_deref(), Some("hi"));
//! }
//! ```
//!
//! How it works: the SDK's host calls are `extern "C"` imports; on a native target this
//! module defines each of them (`abi.rs`) over thread-local mock state (`state.rs`) that
//! behaves as Weft does and answers with the statuses Weft gives, and calls the SDK's
//! exported callbacks (`proxy_on_request_headers`, ...) directly. The SDK's dispatcher is
//! thread-local and cargo runs every test on its own thread, so tests are isolated:
//! shared data, metrics, logs and the clock belong to the test. One [`Host`] at a time per
//! thread. Not simulated: gRPC calls and streams (they fail with INTERNAL_FAILURE), and
//! the response phases that follow a local reply (call them yourself if you need them).

mod abi;
mod state;
#[cfg(test)]
mod tests;

use std::marker::PhantomData;
use std::sync::{Mutex, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_wasm::types::{Action, LogLevel, MetricType};

use state::header_name;

/// Not `Send`: the state a handle points at belongs to the thread that made it.
type ThreadBound = PhantomData<*const ()>;

fn action(raw: u32) -> Action {
    match raw {
        0 => Action::Continue,
        1 => Action::Pause,
        other => panic!("the filter returned an unknown action {other}"),
    }
}

/// Sets the current context (and the body buffer in view), runs a callback, and clears
/// what only lasts for one callback.
fn callback<R>(context_id: u32, body: Option<bool>, f: impl FnOnce() -> R) -> R {
    state::with(|s| {
        s.current = context_id;
        s.body_callback = body;
    });
    let result = f();
    state::with(|s| {
        s.body_callback = None;
        s.call_response = None;
    });
    result
}

fn owned_map(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| {
            let name = header_name(k).unwrap_or_else(|_| panic!("bad header name {k:?}"));
            (name, v.to_string())
        })
        .collect()
}

fn joined(map: &[(String, String)], name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    let values: Vec<&str> = map
        .iter()
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

// === impl Host ===

/// The mock host and the filter's root context. See the [module docs](self).
#[derive(Debug)]
pub struct Host {
    _thread: ThreadBound,
}

impl Host {
    /// Loads the filter: runs its registration function (what its `proxy_wasm::main!`
    /// calls: `set_root_context`, `set_log_level`, ...) on this thread. The root context
    /// is created by [`configure`](Host::configure).
    ///
    /// Panics if this thread already has a `Host`.
    pub fn new(register: fn()) -> Host {
        static LOCK: Mutex<()> = Mutex::new(());
        static LOGGER: Once = Once::new();
        // The SDK installs its logger (process-wide) the first time a filter sets its log
        // level, and a panic hook that logs through the host instead of printing. Install
        // them once here, under a lock (two tests doing it at once would make the SDK
        // panic), and give test failures the default hook back so they print as usual.
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        LOGGER.call_once(|| {
            proxy_wasm::set_log_level(LogLevel::Trace);
            drop(std::panic::take_hook());
        });
        let busy = state::with(|s| std::mem::replace(&mut s.in_use, true));
        assert!(!busy, "one weft_sdk::testing::Host at a time per thread");
        register();
        Host {
            _thread: PhantomData,
        }
    }

    /// The VM configuration handed to `on_vm_start` (default: empty).
    pub fn set_vm_config(&mut self, config: impl Into<Vec<u8>>) -> &mut Host {
        let config = config.into();
        state::with(|s| s.vm_config = config);
        self
    }

    /// A property every context sees (`plugin_name`, `node.id`, ...), by its dotted path.
    /// Integers are 8 bytes little-endian (`8080i64.to_le_bytes()`), as Weft gives them.
    pub fn set_property(&mut self, path: &str, value: impl AsRef<[u8]>) -> &mut Host {
        let value = value.as_ref().to_vec();
        state::with(|s| s.properties.insert(path.to_string(), value));
        self
    }

    /// The clusters http calls may name; a call to another is BAD_ARGUMENT, as on Weft.
    /// Until this is called, any name is taken.
    pub fn set_clusters(&mut self, names: &[&str]) -> &mut Host {
        let names = names.iter().map(|n| n.to_string()).collect();
        state::with(|s| s.clusters = Some(names));
        self
    }

    /// The level `proxy_get_log_level` answers (default: trace).
    pub fn set_log_level(&mut self, level: LogLevel) -> &mut Host {
        state::with(|s| s.log_level = level);
        self
    }

    /// Configures the filter with `config` (the plugin configuration, as Weft passes the
    /// filter entry's `config:`): the first call creates the root context and runs
    /// `on_vm_start`, then every call runs `on_configure`. Returns false when either
    /// callback does (the configuration is refused).
    pub fn configure(&mut self, config: impl Into<Vec<u8>>) -> bool {
        let config = config.into();
        let (root, fresh) = state::with(|s| {
            s.plugin_config = config;
            if s.root == 0 {
                s.root = s.next_id;
                s.next_id += 1;
                (s.root, true)
            } else {
                (s.root, false)
            }
        });
        if fresh {
            let size = state::with(|s| s.vm_config.len());
            callback(root, None, || abi::proxy_on_context_create(root, 0));
            if !callback(root, None, || abi::proxy_on_vm_start(root, size)) {
                return false;
            }
        }
        let size = state::with(|s| s.plugin_config.len());
        callback(root, None, || abi::proxy_on_configure(root, size))
    }

    fn root(&self) -> u32 {
        let root = state::with(|s| s.root);
        assert!(
            root != 0,
            "call Host::configure first: there is no root context yet"
        );
        root
    }

    /// A new HTTP context (one request), created by the root context.
    pub fn http(&mut self) -> Http {
        let root = self.root();
        let id = state::with(|s| {
            let id = s.next_id;
            s.next_id += 1;
            s.streams.insert(id, state::Stream::default());
            id
        });
        callback(id, None, || abi::proxy_on_context_create(id, root));
        Http {
            id,
            _thread: PhantomData,
        }
    }

    // --- time and ticks ---

    /// The host clock (starts at 2023-11-14T22:13:20Z, moves only when the test says).
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(state::with(|s| s.now_nanos))
    }

    /// Sets the clock (ticks do not fire).
    pub fn set_time(&mut self, time: SystemTime) {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        state::with(|s| {
            s.now_nanos = nanos;
            s.next_tick_nanos = s.next_tick_nanos.max(nanos);
        });
    }

    /// Moves the clock forward, firing `on_tick` for every tick period that ends on the
    /// way (at the time it ends). Returns the number of ticks fired.
    pub fn advance(&mut self, by: Duration) -> u32 {
        let end = state::with(|s| s.now_nanos) + by.as_nanos() as u64;
        let mut ticks = 0;
        loop {
            let due = state::with(|s| {
                let due = s.tick_period.is_some() && s.next_tick_nanos <= end;
                if due {
                    s.now_nanos = s.next_tick_nanos;
                    s.next_tick_nanos += s.tick_period.map_or(0, |p| p.as_nanos() as u64);
                }
                due
            });
            if !due {
                break;
            }
            self.tick();
            ticks += 1;
        }
        state::with(|s| s.now_nanos = end);
        ticks
    }

    /// Runs `on_tick` once, now.
    pub fn tick(&mut self) {
        let root = self.root();
        callback(root, None, || abi::proxy_on_tick(root));
    }

    /// The tick period the filter set (`None`: no ticks).
    pub fn tick_period(&self) -> Option<Duration> {
        state::with(|s| s.tick_period)
    }

    // --- http calls ---

    /// The http calls the filter dispatched that have no response yet, oldest first.
    pub fn http_calls(&self) -> Vec<HttpCall> {
        state::with(|s| s.calls.values().cloned().collect())
    }

    /// Delivers the response of the http call `token` to the context that made it
    /// (`on_http_call_response`). Panics if there is no such pending call.
    pub fn respond(&mut self, token: u32, response: CallResponse) {
        let call = state::with(|s| s.calls.remove(&token))
            .unwrap_or_else(|| panic!("no pending http call with token {token}"));
        let (headers, body, trailers) = (
            response.headers.len(),
            response.body.len(),
            response.trailers.len(),
        );
        let ctx = call.context_id;
        callback(ctx, None, || {
            state::with(|s| s.call_response = Some(response));
            abi::proxy_on_http_call_response(ctx, token, headers, body, trailers)
        });
    }

    // --- shared data, queues, metrics, logs ---

    /// A shared-data value and its CAS token.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        state::with(|s| s.shared.get(key).cloned())
    }

    /// Writes shared data as another VM would (unconditionally; the CAS token grows).
    pub fn set_shared_data(&mut self, key: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        state::with(|s| s.set_shared(key.to_string(), value, 0));
    }

    /// The items waiting in the shared queue `name` (registered by the filter).
    pub fn queue(&self, name: &str) -> Vec<Vec<u8>> {
        state::with(|s| {
            s.queues
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, q)| q.iter().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// Puts an item in the shared queue `name` and runs the root's `on_queue_ready`.
    pub fn enqueue(&mut self, name: &str, item: impl Into<Vec<u8>>) {
        let item = item.into();
        let root = self.root();
        let id = state::with(|s| {
            let id = s.queue(name);
            s.queues[id as usize - 1].1.push_back(item);
            id
        });
        callback(root, None, || abi::proxy_on_queue_ready(root, id));
    }

    /// The value of the counter or gauge `name` (`None` if not defined).
    pub fn metric(&self, name: &str) -> Option<i64> {
        state::with(|s| {
            s.metrics
                .iter()
                .find(|m| m.name == name && m.kind != MetricType::Histogram)
                .map(|m| m.value)
        })
    }

    /// The samples recorded in the histogram `name` (`None` if not defined).
    pub fn histogram(&self, name: &str) -> Option<Vec<u64>> {
        state::with(|s| {
            s.metrics
                .iter()
                .find(|m| m.name == name && m.kind == MetricType::Histogram)
                .map(|m| m.samples.clone())
        })
    }

    /// The names of the metrics the filter defined, with their types.
    pub fn metrics(&self) -> Vec<(String, MetricType)> {
        state::with(|s| s.metrics.iter().map(|m| (m.name.clone(), m.kind)).collect())
    }

    /// Every line the filter logged (also printed to stderr, which cargo test shows
    /// for a failing test).
    pub fn logs(&self) -> Vec<LogLine> {
        state::with(|s| s.logs.clone())
    }

    /// Whether some log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        state::with(|s| s.logs.iter().any(|l| l.message.contains(text)))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Delete the contexts still open (their Drop impls run) and start afresh, so the
        // thread may make another Host. Skipped while a failed test unwinds.
        if std::thread::panicking() {
            return;
        }
        let (streams, root) =
            state::with(|s| (s.streams.keys().copied().collect::<Vec<_>>(), s.root));
        for id in streams {
            abi::proxy_on_delete(id);
        }
        if root != 0 {
            abi::proxy_on_delete(root);
        }
        state::with(|s| *s = state::State::default());
    }
}

// === impl Http ===

/// One HTTP context (a request) of the filter: run its phases, then look at what the
/// filter did.
#[derive(Debug)]
pub struct Http {
    id: u32,
    _thread: ThreadBound,
}

impl Http {
    /// The context id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Puts `pairs` in the map `slot` of this context and runs the callback `run(id, n)`.
    fn map_phase(
        &mut self,
        slot: fn(&mut state::Stream) -> &mut state::Map,
        pairs: &[(&str, &str)],
        run: impl FnOnce(u32, usize) -> u32,
    ) -> Action {
        let map = owned_map(pairs);
        let n = map.len();
        let id = self.id;
        state::with(|s| *slot(s.stream(id)) = map);
        action(callback(id, None, || run(id, n)))
    }

    fn body_phase(&mut self, request: bool, chunk: &[u8], end_of_stream: bool) -> Action {
        let id = self.id;
        let size = state::with(|s| {
            let stream = s.stream(id);
            let body = if request {
                &mut stream.request_body
            } else {
                &mut stream.response_body
            };
            // Data held by an earlier Pause comes again with the new chunk, as on Weft.
            body.held.extend_from_slice(chunk);
            body.held.len()
        });
        let result = action(callback(id, Some(request), || {
            if request {
                abi::proxy_on_request_body(id, size, end_of_stream)
            } else {
                abi::proxy_on_response_body(id, size, end_of_stream)
            }
        }));
        if result == Action::Continue {
            state::with(|s| {
                let stream = s.stream(id);
                let body = if request {
                    &mut stream.request_body
                } else {
                    &mut stream.response_body
                };
                let held = std::mem::take(&mut body.held);
                body.forwarded.extend(held);
            });
        }
        result
    }

    /// Runs `on_request_headers` with these headers (pseudo-headers included: `:method`,
    /// `:path`, `:authority`, `:scheme`, as Weft gives them).
    pub fn request_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Action {
        self.map_phase(
            |s| &mut s.request_headers,
            headers,
            |id, n| abi::proxy_on_request_headers(id, n, end_of_stream),
        )
    }

    /// Runs `on_request_body` with this chunk (plus whatever an earlier Pause held).
    pub fn request_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Action {
        self.body_phase(true, chunk, end_of_stream)
    }

    /// Runs `on_request_trailers`.
    pub fn request_trailers(&mut self, trailers: &[(&str, &str)]) -> Action {
        self.map_phase(
            |s| &mut s.request_trailers,
            trailers,
            |id, n| abi::proxy_on_request_trailers(id, n),
        )
    }

    /// Runs `on_response_headers` with these headers (`:status` included).
    pub fn response_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Action {
        self.map_phase(
            |s| &mut s.response_headers,
            headers,
            |id, n| abi::proxy_on_response_headers(id, n, end_of_stream),
        )
    }

    /// Runs `on_response_body` with this chunk (plus whatever an earlier Pause held).
    pub fn response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Action {
        self.body_phase(false, chunk, end_of_stream)
    }

    /// Runs `on_response_trailers`.
    pub fn response_trailers(&mut self, trailers: &[(&str, &str)]) -> Action {
        self.map_phase(
            |s| &mut s.response_trailers,
            trailers,
            |id, n| abi::proxy_on_response_trailers(id, n),
        )
    }

    /// Ends the request as Weft does: `on_log`, `on_done`, then `on_delete`.
    pub fn finish(self) {
        let id = self.id;
        callback(id, None, || {
            abi::proxy_on_log(id);
            abi::proxy_on_done(id);
            abi::proxy_on_delete(id);
        });
        state::with(|s| s.streams.remove(&id));
    }

    fn read<R>(&self, f: impl FnOnce(&mut state::Stream) -> R) -> R {
        state::with(|s| f(s.stream(self.id)))
    }

    /// A request header as the filter left it (several values joined with `,`).
    pub fn request_header(&self, name: &str) -> Option<String> {
        self.read(|s| joined(&s.request_headers, name))
    }

    /// All request headers as the filter left them.
    pub fn request_header_map(&self) -> Vec<(String, String)> {
        self.read(|s| s.request_headers.clone())
    }

    /// A response header as the filter left it.
    pub fn response_header(&self, name: &str) -> Option<String> {
        self.read(|s| joined(&s.response_headers, name))
    }

    /// All response headers as the filter left them.
    pub fn response_header_map(&self) -> Vec<(String, String)> {
        self.read(|s| s.response_headers.clone())
    }

    /// Request trailers as the filter left them.
    pub fn request_trailer_map(&self) -> Vec<(String, String)> {
        self.read(|s| s.request_trailers.clone())
    }

    /// Response trailers as the filter left them.
    pub fn response_trailer_map(&self) -> Vec<(String, String)> {
        self.read(|s| s.response_trailers.clone())
    }

    /// The request body the filter let through so far (after its changes).
    pub fn forwarded_request_body(&self) -> Vec<u8> {
        self.read(|s| s.request_body.forwarded.clone())
    }

    /// The response body the filter let through so far (after its changes).
    pub fn forwarded_response_body(&self) -> Vec<u8> {
        self.read(|s| s.response_body.forwarded.clone())
    }

    /// The local response the filter sent, if it did.
    pub fn local_reply(&self) -> Option<LocalReply> {
        self.read(|s| s.local_reply.clone())
    }

    /// How many times the filter resumed the request (`resume_http_request`).
    pub fn request_resumes(&self) -> u32 {
        self.read(|s| s.resumed_request)
    }

    /// How many times the filter resumed the response (`resume_http_response`).
    pub fn response_resumes(&self) -> u32 {
        self.read(|s| s.resumed_response)
    }

    /// Whether the filter reset the stream (`reset_http_request`/`_response`).
    pub fn closed(&self) -> bool {
        self.read(|s| s.closed)
    }

    /// A property as this request sees it (set by the filter, by the test, or host-wide).
    pub fn property(&self, path: &str) -> Option<Vec<u8>> {
        let raw = path.replace('.', "\0");
        let id = self.id;
        state::with(|s| {
            let previous = std::mem::replace(&mut s.current, id);
            let value = s.get_property(raw.as_bytes());
            s.current = previous;
            value
        })
    }

    /// The cluster the filter chose with `weft.cluster` (the routing contract).
    pub fn cluster(&self) -> Option<String> {
        self.property(crate::property::CLUSTER)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// A property of this request (`source.address`, `request.id`, ...), as the proxy
    /// would set it. Integers are 8 bytes little-endian (`443i64.to_le_bytes()`).
    pub fn set_property(&mut self, path: &str, value: impl AsRef<[u8]>) -> &mut Http {
        let value = value.as_ref().to_vec();
        self.read(|s| s.properties.insert(path.to_string(), value));
        self
    }
}

// === What the filter produced ===

/// A line the filter logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its level.
    pub level: LogLevel,
    /// The text.
    pub message: String,
    /// The context whose callback logged it.
    pub context_id: u32,
}

/// A local response the filter sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u32,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// The status details string (empty when not given).
    pub details: String,
    /// The gRPC status, for a gRPC local reply.
    pub grpc_status: Option<u32>,
}

impl LocalReply {
    /// A header's value (several joined with `,`).
    pub fn header(&self, name: &str) -> Option<String> {
        joined(&self.headers, name)
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An http call the filter dispatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// The token to answer it with ([`Host::respond`]).
    pub token: u32,
    /// The context that made it.
    pub context_id: u32,
    /// The cluster it goes to.
    pub cluster: String,
    /// Its headers (`:method`, `:path`, `:authority` included), as the filter sent them.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
    /// Its trailers.
    pub trailers: Vec<(String, String)>,
    /// Its timeout.
    pub timeout: Duration,
}

impl HttpCall {
    /// A header's value (names compared case-insensitively; several joined with `,`).
    pub fn header(&self, name: &str) -> Option<String> {
        let lower: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        joined(&lower, name)
    }
}

/// The response the test gives an http call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallResponse {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

impl CallResponse {
    /// A response with this status (the `:status` header).
    pub fn new(status: u16) -> CallResponse {
        CallResponse {
            headers: vec![(":status".to_string(), status.to_string())],
            ..CallResponse::default()
        }
    }

    /// A failed call (connect error, timeout): no headers, as Weft and Envoy deliver it.
    pub fn failed() -> CallResponse {
        CallResponse::default()
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> CallResponse {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> CallResponse {
        self.body = body.into();
        self
    }

    /// Adds a trailer.
    pub fn trailer(mut self, name: &str, value: &str) -> CallResponse {
        self.trailers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }
}
