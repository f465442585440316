//! What a VM's host functions can reach: the plugin's identity and configuration, the
//! process-wide host state (shared data, metrics), and, while an HTTP callback runs, the
//! request it belongs to.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::host::HostShared;
use super::limits::MemoryCap;
use super::queues::RootSignals;
use crate::cluster::ClusterRuntime;

/// Who a plugin is and what it was configured with.
#[derive(Debug)]
pub struct PluginInfo {
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub vm_config: Bytes,
    pub plugin_config: Bytes,
    pub node: Arc<NodeInfo>,
}

/// The proxy's identity from the config's `node` block (the `node.*` properties).
#[derive(Debug, Default, PartialEq)]
pub struct NodeInfo {
    pub id: String,
    pub cluster: String,
    /// Metadata values as bytes: strings as they are, other JSON values as JSON text.
    pub metadata: Vec<(String, Vec<u8>)>,
    /// The whole metadata as a JSON object.
    pub metadata_json: String,
}

/// Facts about a request that filters read as properties.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub listener: Arc<str>,
    pub peer: SocketAddr,
    pub local: Option<SocketAddr>,
    pub start: SystemTime,
    pub protocol: http::Version,
    pub request_id: Option<http::HeaderValue>,
    pub connection_id: u64,
    /// The connection's TLS, on a TLS listener.
    pub tls: Option<crate::tls::TlsInfo>,
}

/// Which worker a VM serves, and the clusters its http calls can reach.
#[derive(Clone, Debug)]
pub struct VmPlace {
    pub worker: usize,
    pub clusters: Arc<Vec<ClusterRuntime>>,
}

/// The response to an http call, readable by the guest in `on_http_call_response`.
#[derive(Debug, Default)]
pub struct CallResponse {
    /// `:status` first, then the headers.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Bytes,
    pub trailers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The end of a unary gRPC call.
#[derive(Debug, Default)]
pub struct GrpcResult {
    /// gRPC status code (0: OK).
    pub status: u32,
    pub status_message: String,
    /// The reply message (status OK only).
    pub message: Option<Bytes>,
}

/// What a call delivers: an http call's response (`None`: failed or timed out), a unary
/// gRPC call's result, or the events of a gRPC stream.
#[derive(Debug)]
pub enum CallResult {
    Http(Option<CallResponse>),
    Grpc(GrpcResult),
    GrpcInitialMetadata(Vec<(Vec<u8>, Vec<u8>)>),
    GrpcMessage(Bytes),
    GrpcTrailingMetadata(Vec<(Vec<u8>, Vec<u8>)>),
    GrpcClose(GrpcResult),
}

/// A call in flight: its token, the context that made it, and where its events arrive
/// (a call that was cancelled ends without any).
#[derive(Debug)]
pub struct PendingCall {
    pub token: u32,
    pub context: u32,
    pub events: tokio::sync::mpsc::UnboundedReceiver<CallResult>,
}

/// A gRPC call or stream the guest can still act on (send, close, cancel).
#[derive(Debug)]
pub struct GrpcHandle {
    /// Messages to send on a stream (`None` for a unary call, or once closed).
    pub messages: Option<tokio::sync::mpsc::UnboundedSender<(Bytes, bool)>>,
    pub task: tokio::task::AbortHandle,
}

/// A reply a filter asked for with `proxy_send_local_response`.
#[derive(Debug)]
pub struct LocalReply {
    pub status: u16,
    pub body: Bytes,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub details: String,
}

/// One request as the filters see it; moved into a VM's store for each callback.
#[derive(Debug)]
pub struct HttpStream {
    pub request: http::request::Parts,
    pub response: Option<http::response::Parts>,
    pub info: StreamInfo,
    /// Set by `send_local_response`: the remaining request filters are skipped.
    pub local_reply: Option<LocalReply>,
    /// Route and cluster once known (for the `route_name` / `cluster_name` properties).
    pub route: Option<Arc<str>>,
    pub cluster: Option<Arc<str>>,
    pub upstream: Option<SocketAddr>,
    /// Properties filters set with `proxy_set_property`.
    pub filter_state: Vec<(Vec<u8>, Vec<u8>)>,
    /// Http calls made by the callback that just ran (taken by the filter run after it).
    pub new_calls: Vec<PendingCall>,
    /// The body data a body callback sees (request or response), which it may rewrite.
    pub body: Option<BodyBuffer>,
    /// The trailers a trailers callback sees, which it may change.
    pub request_trailers: Option<http::HeaderMap>,
    pub response_trailers: Option<http::HeaderMap>,
}

impl HttpStream {
    /// A request as filters first see it.
    pub fn new(request: http::request::Parts, info: StreamInfo) -> Self {
        HttpStream {
            request,
            response: None,
            info,
            local_reply: None,
            route: None,
            cluster: None,
            upstream: None,
            filter_state: Vec::new(),
            new_calls: Vec::new(),
            body: None,
            request_trailers: None,
            response_trailers: None,
        }
    }
}

/// The body data presented to one body callback. Shared, not copied: a filter that only
/// reads it (or ignores it) costs no copy; `proxy_set_buffer_bytes` makes a new one.
#[derive(Debug)]
pub struct BodyBuffer {
    pub request: bool,
    pub data: Bytes,
}

/// The store data of one VM.
pub struct HostState {
    pub plugin: Arc<PluginInfo>,
    pub host: Arc<HostShared>,
    pub limits: MemoryCap,
    /// The context the guest is running in (set before each callback, changed by
    /// `proxy_set_effective_context`).
    pub effective_context: u32,
    pub root_context: u32,
    /// The request of the HTTP context whose callback is running.
    pub stream: Option<Box<HttpStream>>,
    /// `proxy_done` was called by the root context.
    pub done_called: bool,
    /// Set by `proxy_set_tick_period_milliseconds`.
    pub tick_period_ms: u32,
    /// Set by `proxy_continue_stream` during a callback, for that callback's own context.
    pub continue_requested: bool,
    /// The context whose callback is running (the effective context may differ).
    pub running_context: u32,
    /// Other contexts `proxy_continue_stream` asked to resume during this callback.
    pub resumes: Vec<u32>,
    pub place: VmPlace,
    /// Tokens for http calls, unique within the VM.
    pub next_token: u32,
    /// The response being delivered by `on_http_call_response`.
    pub call_response: Option<CallResponse>,
    /// The gRPC result being delivered by `on_grpc_receive` / `on_grpc_close`.
    pub grpc_result: Option<GrpcResult>,
    /// gRPC metadata being delivered (maps 4 and 5).
    pub grpc_metadata: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    /// gRPC calls and streams in flight, by token.
    pub grpc: std::collections::HashMap<u32, GrpcHandle>,
    /// Http calls made outside an HTTP context, delivered by the root loop.
    pub root_calls: Vec<PendingCall>,
    /// Queue arrivals for this VM's root context.
    pub signals: Arc<RootSignals>,
    /// The instance's memory and allocator, resolved once after instantiation.
    pub memory: Option<wasmtime::Memory>,
    /// Behind an `Arc`: a host function clones it out to call it (cloning a `TypedFunc`
    /// itself clones its registered type, which costs more than the call).
    pub allocator: Option<std::sync::Arc<wasmtime::TypedFunc<u32, u32>>>,
    /// A buffer host functions reuse to build a value before copying it into the guest.
    pub scratch: Vec<u8>,
    /// The metrics this VM used, by id: a hot counter is reached without the process-wide
    /// lock of the metric list (ids are never reused, so a handle stays right).
    pub metric_handles: Vec<Option<Arc<crate::wasm::metrics::WasmMetric>>>,
}

impl HostState {
    /// The metric `id`, from this VM's handles or else the process-wide list.
    pub fn metric(&mut self, id: u32) -> Option<&crate::wasm::metrics::WasmMetric> {
        let index = id as usize;
        if self.metric_handles.get(index).is_none_or(Option::is_none) {
            let metric = self.host.metrics.get(id)?;
            if self.metric_handles.len() <= index {
                self.metric_handles.resize(index + 1, None);
            }
            self.metric_handles[index] = Some(metric);
        }
        self.metric_handles[index].as_deref()
    }

    pub fn new(
        plugin: Arc<PluginInfo>,
        host: Arc<HostShared>,
        limits: MemoryCap,
        place: VmPlace,
    ) -> Self {
        HostState {
            plugin,
            host,
            limits,
            effective_context: 0,
            root_context: 0,
            stream: None,
            done_called: false,
            tick_period_ms: 0,
            continue_requested: false,
            running_context: 0,
            resumes: Vec::new(),
            place,
            next_token: 1,
            call_response: None,
            grpc_result: None,
            grpc_metadata: None,
            grpc: std::collections::HashMap::new(),
            root_calls: Vec::new(),
            signals: Arc::default(),
            memory: None,
            allocator: None,
            scratch: Vec::new(),
            metric_handles: Vec::new(),
        }
    }
}
