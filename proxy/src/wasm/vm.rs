//! One VM: a store and an instance of a plugin's module, its root context, and the typed
//! callbacks. Every call into the guest runs under a CPU deadline; a trap, a deadline or an
//! out-of-memory marks the VM broken so that its owner replaces it.

use std::sync::Arc;

use wasmtime::{Instance, Store, Trap, TypedFunc};

use super::abi::types::Action;
use super::host::WasmRuntime;
use super::limits::{MemoryCap, WasmLimits, ticks};
use super::module::LoadedModule;
use super::state::{CallResponse, CallResult, HostState, HttpStream, PluginInfo, VmPlace};

/// How a call into the guest failed.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{callback} trapped: {message}")]
    Trap {
        callback: &'static str,
        message: String,
    },
    #[error("{callback} ran past its CPU deadline of {deadline_ms} ms")]
    Deadline {
        callback: &'static str,
        deadline_ms: u128,
    },
    #[error("{callback} ran out of memory (cap {cap_mib} MiB)")]
    OutOfMemory {
        callback: &'static str,
        cap_mib: usize,
    },
    #[error("instantiation failed: {message}")]
    Instantiate { message: String },
    #[error("on_vm_start returned false")]
    VmStartRejected,
    #[error("on_configure returned false: the plugin rejected its configuration")]
    ConfigureRejected,
    #[error("the VM failed earlier and this request's context is gone")]
    Gone,
}

impl VmError {
    /// A label for metrics: trap, deadline, oom, start.
    pub fn kind(&self) -> &'static str {
        match self {
            VmError::Trap { .. } | VmError::Gone => "trap",
            VmError::Deadline { .. } => "deadline",
            VmError::OutOfMemory { .. } => "oom",
            VmError::Instantiate { .. } | VmError::VmStartRejected | VmError::ConfigureRejected => {
                "start"
            }
        }
    }
}

type F1<R> = TypedFunc<u32, R>;
type F2<R> = TypedFunc<(u32, u32), R>;
type F3<R> = TypedFunc<(u32, u32, u32), R>;
type F5<R> = TypedFunc<(u32, u32, u32, u32, u32), R>;

/// The callbacks a module exports (all optional).
struct Callbacks {
    context_create: Option<F2<()>>,
    vm_start: Option<F2<u32>>,
    configure: Option<F2<u32>>,
    request_headers: Option<F3<u32>>,
    request_body: Option<F3<u32>>,
    request_trailers: Option<F2<u32>>,
    response_trailers: Option<F2<u32>>,
    response_body: Option<F3<u32>>,
    response_headers: Option<F3<u32>>,
    http_call_response: Option<F5<()>>,
    grpc_receive: Option<F3<()>>,
    grpc_close: Option<F3<()>>,
    grpc_initial_metadata: Option<F3<()>>,
    grpc_trailing_metadata: Option<F3<()>>,
    tick: Option<F1<()>>,
    queue_ready: Option<F2<()>>,
    log: Option<F1<()>>,
    done: Option<F1<u32>>,
    delete: Option<F1<()>>,
}

impl Callbacks {
    fn lookup(instance: &Instance, store: &mut Store<HostState>) -> Self {
        macro_rules! get {
            ($name:literal) => {
                instance.get_typed_func(&mut *store, $name).ok()
            };
        }
        Callbacks {
            context_create: get!("proxy_on_context_create"),
            vm_start: get!("proxy_on_vm_start"),
            configure: get!("proxy_on_configure"),
            request_headers: get!("proxy_on_request_headers"),
            request_body: get!("proxy_on_request_body"),
            request_trailers: get!("proxy_on_request_trailers"),
            response_trailers: get!("proxy_on_response_trailers"),
            response_body: get!("proxy_on_response_body"),
            response_headers: get!("proxy_on_response_headers"),
            http_call_response: get!("proxy_on_http_call_response"),
            grpc_receive: get!("proxy_on_grpc_receive"),
            grpc_close: get!("proxy_on_grpc_close"),
            grpc_initial_metadata: get!("proxy_on_grpc_receive_initial_metadata"),
            grpc_trailing_metadata: get!("proxy_on_grpc_receive_trailing_metadata"),
            tick: get!("proxy_on_tick"),
            queue_ready: get!("proxy_on_queue_ready"),
            log: get!("proxy_on_log"),
            done: get!("proxy_on_done"),
            delete: get!("proxy_on_delete"),
        }
    }
}

pub struct Vm {
    core: Core,
    /// Kept apart from the core so that a call borrows both without cloning the function.
    callbacks: Callbacks,
}

/// The mutable part of a VM: its store and limits.
struct Core {
    store: Store<HostState>,
    next_context: u32,
    callback_ticks: u64,
    limits: WasmLimits,
    /// A callback failed: the owner must replace this VM.
    broken: bool,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("broken", &self.core.broken)
            .finish()
    }
}

const ROOT_CONTEXT: u32 = 1;

/// An HTTP callback `(context, a, b) -> action` with the stream moved into the store; a
/// callback the module does not export continues.
fn stream_callback(
    core: &mut Core,
    f: Option<&F3<u32>>,
    name: &'static str,
    context: u32,
    stream: &mut Option<Box<HttpStream>>,
    (a, b): (u32, u32),
) -> Result<Action, VmError> {
    let Some(f) = f else {
        return Ok(Action::Continue);
    };
    let raw = core.with_stream(context, stream, name, |s| f.call(s, (context, a, b)))?;
    Ok(core.action(raw))
}

impl Core {
    /// Runs one call into the guest under a deadline, classifying failures.
    fn guard<R>(
        &mut self,
        callback: &'static str,
        deadline_ticks: u64,
        call: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, VmError> {
        if self.broken {
            return Err(VmError::Gone);
        }
        self.store.data_mut().limits.refused = false;
        self.store.set_epoch_deadline(deadline_ticks);
        match call(&mut self.store) {
            Ok(value) => Ok(value),
            Err(error) => Err(self.failed(callback, deadline_ticks, error)),
        }
    }

    /// A call into the guest failed: the VM is broken from now on.
    #[cold]
    #[inline(never)]
    fn failed(
        &mut self,
        callback: &'static str,
        deadline_ticks: u64,
        error: wasmtime::Error,
    ) -> VmError {
        self.broken = true;
        self.classify(callback, deadline_ticks, &error)
    }

    /// `_initialize` then `main(0, 0)` (reactors), or else `_start` (commands).
    fn run_start(&mut self, instance: &Instance) -> Result<(), VmError> {
        let startup = ticks(self.limits.startup_deadline);
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut self.store, "_initialize") {
            self.guard("_initialize", startup, |s| init.call(s, ()))?;
            if let Ok(main) = instance.get_typed_func::<(u32, u32), u32>(&mut self.store, "main") {
                self.guard("main", startup, |s| main.call(s, (0, 0)))?;
            }
        } else if let Ok(start) = instance.get_typed_func::<(), ()>(&mut self.store, "_start") {
            self.guard("_start", startup, |s| start.call(s, ()))?;
        }
        Ok(())
    }
    fn classify(
        &self,
        callback: &'static str,
        deadline_ticks: u64,
        error: &wasmtime::Error,
    ) -> VmError {
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return VmError::Deadline {
                callback,
                deadline_ms: (super::engine::EPOCH_TICK * deadline_ticks as u32).as_millis(),
            };
        }
        if self.store.data().limits.refused {
            return VmError::OutOfMemory {
                callback,
                cap_mib: self.limits.memory_bytes >> 20,
            };
        }
        VmError::Trap {
            callback,
            message: format!("{error:#}")
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// Runs an HTTP callback with `stream` moved into the store; gives the stream back.
    fn with_stream<R: Default>(
        &mut self,
        context: u32,
        stream: &mut Option<Box<HttpStream>>,
        callback: &'static str,
        call: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, VmError> {
        let deadline = self.callback_ticks;
        let data = self.store.data_mut();
        data.stream = stream.take();
        data.effective_context = context;
        data.running_context = context;
        data.continue_requested = false;
        let result = self.guard(callback, deadline, call);
        *stream = self.store.data_mut().stream.take();
        result
    }

    /// A Pause the filter already undid with `proxy_continue_stream` is a Continue.
    fn action(&self, raw: u32) -> Action {
        match Action::from_raw(raw) {
            Action::Pause if self.store.data().continue_requested => Action::Continue,
            action => action,
        }
    }
}

impl Vm {
    /// Instantiates the module, runs its start function and its root context's
    /// `on_vm_start` and `on_configure`.
    pub fn start(
        runtime: &WasmRuntime,
        module: &LoadedModule,
        plugin: Arc<PluginInfo>,
        limits: &WasmLimits,
        place: VmPlace,
    ) -> Result<Vm, VmError> {
        let cap = MemoryCap {
            max_bytes: limits.memory_bytes,
            refused: false,
        };
        let mut store = Store::new(
            &runtime.engine,
            HostState::new(plugin, runtime.shared.clone(), cap, place),
        );
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(limits.startup_deadline));
        let instance = module
            .pre
            .instantiate(&mut store)
            .map_err(|e| VmError::Instantiate {
                message: format!("{e:#}"),
            })?;
        // Resolved once: every host function that touches guest memory uses them.
        let memory = instance.get_memory(&mut store, "memory");
        let allocator = ["proxy_on_memory_allocate", "malloc"]
            .into_iter()
            .find_map(|name| instance.get_typed_func::<u32, u32>(&mut store, name).ok());
        store.data_mut().memory = memory;
        store.data_mut().allocator = allocator.map(std::sync::Arc::new);
        let mut vm = Vm {
            callbacks: Callbacks::lookup(&instance, &mut store),
            core: Core {
                store,
                next_context: ROOT_CONTEXT + 1,
                callback_ticks: ticks(limits.callback_deadline),
                limits: limits.clone(),
                broken: false,
            },
        };
        vm.core.run_start(&instance)?;
        let data = vm.core.store.data_mut();
        data.root_context = ROOT_CONTEXT;
        data.effective_context = ROOT_CONTEXT;
        data.running_context = ROOT_CONTEXT;
        let vm_config_len = data.plugin.vm_config.len() as u32;
        let plugin_config_len = data.plugin.plugin_config.len() as u32;
        let startup = ticks(limits.startup_deadline);
        if let Some(f) = vm.callbacks.context_create.as_ref() {
            vm.core.guard("proxy_on_context_create", startup, |s| {
                f.call(s, (ROOT_CONTEXT, 0))
            })?;
        }
        if let Some(f) = vm.callbacks.vm_start.as_ref() {
            if vm.core.guard("proxy_on_vm_start", startup, |s| {
                f.call(s, (ROOT_CONTEXT, vm_config_len))
            })? == 0
            {
                return Err(VmError::VmStartRejected);
            }
        }
        if let Some(f) = vm.callbacks.configure.as_ref() {
            if vm.core.guard("proxy_on_configure", startup, |s| {
                f.call(s, (ROOT_CONTEXT, plugin_config_len))
            })? == 0
            {
                return Err(VmError::ConfigureRejected);
            }
        }
        Ok(vm)
    }
    /// Runs a gRPC callback `(context, token, arg)` with the result or metadata it may read;
    /// returns whether it asked to continue the stream.
    #[allow(clippy::too_many_arguments)]
    fn grpc_callback(
        &mut self,
        context: u32,
        stream: &mut Option<Box<HttpStream>>,
        token: u32,
        f: Option<F3<()>>,
        name: &'static str,
        arg: u32,
        result: Option<super::state::GrpcResult>,
        metadata: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    ) -> Result<bool, VmError> {
        let Some(f) = f else {
            return Ok(false);
        };
        let data = self.core.store.data_mut();
        data.grpc_result = result;
        data.grpc_metadata = metadata;
        let outcome = self
            .core
            .with_stream(context, stream, name, |s| f.call(s, (context, token, arg)));
        let data = self.core.store.data_mut();
        data.grpc_result = None;
        data.grpc_metadata = None;
        outcome.map(|()| self.core.store.data().continue_requested)
    }

    /// Whether [`Self::take_resumes`] has any.
    #[inline]
    pub fn has_resumes(&self) -> bool {
        !self.core.store.data().resumes.is_empty()
    }

    /// Contexts that other callbacks asked to resume (`proxy_continue_stream` after
    /// `proxy_set_effective_context`), since the last call.
    pub fn take_resumes(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.core.store.data_mut().resumes)
    }

    /// A callback failed: the owner must replace this VM.
    pub fn is_broken(&self) -> bool {
        self.core.broken
    }

    /// Creates an HTTP context; returns its id.
    pub fn create_http_context(&mut self) -> Result<u32, VmError> {
        let id = self.core.next_context;
        self.core.next_context = self.core.next_context.wrapping_add(1).max(ROOT_CONTEXT + 1);
        if let Some(f) = self.callbacks.context_create.as_ref() {
            let deadline = self.core.callback_ticks;
            self.core.store.data_mut().effective_context = id;
            self.core.store.data_mut().running_context = id;
            self.core.guard("proxy_on_context_create", deadline, |s| {
                f.call(s, (id, ROOT_CONTEXT))
            })?;
        }
        Ok(id)
    }
    pub fn on_request_headers(
        &mut self,
        context: u32,
        stream: &mut Option<Box<HttpStream>>,
        headers: u32,
        end_of_stream: bool,
    ) -> Result<Action, VmError> {
        let f = self.callbacks.request_headers.as_ref();
        let args = (headers, u32::from(end_of_stream));
        stream_callback(
            &mut self.core,
            f,
            "proxy_on_request_headers",
            context,
            stream,
            args,
        )
    }
    /// `on_request_trailers` / `on_response_trailers` with the stream's trailers.
    pub fn on_trailers(
        &mut self,
        request: bool,
        context: u32,
        stream: &mut Option<Box<HttpStream>>,
        count: u32,
    ) -> Result<Action, VmError> {
        let (f, name) = if request {
            (
                self.callbacks.request_trailers.as_ref(),
                "proxy_on_request_trailers",
            )
        } else {
            (
                self.callbacks.response_trailers.as_ref(),
                "proxy_on_response_trailers",
            )
        };
        let Some(f) = f else {
            return Ok(Action::Continue);
        };
        let raw = self
            .core
            .with_stream(context, stream, name, |s| f.call(s, (context, count)))?;
        Ok(self.core.action(raw))
    }

    /// `on_request_body` / `on_response_body` with the stream's body buffer of `size` bytes.
    pub fn on_body(
        &mut self,
        request: bool,
        context: u32,
        stream: &mut Option<Box<HttpStream>>,
        size: u32,
        end_of_stream: bool,
    ) -> Result<Action, VmError> {
        let (f, name) = if request {
            (
                self.callbacks.request_body.as_ref(),
                "proxy_on_request_body",
            )
        } else {
            (
                self.callbacks.response_body.as_ref(),
                "proxy_on_response_body",
            )
        };
        stream_callback(
            &mut self.core,
            f,
            name,
            context,
            stream,
            (size, u32::from(end_of_stream)),
        )
    }

    pub fn on_response_headers(
        &mut self,
        context: u32,
        stream: &mut Option<Box<HttpStream>>,
        headers: u32,
        end_of_stream: bool,
    ) -> Result<Action, VmError> {
        let f = self.callbacks.response_headers.as_ref();
        let args = (headers, u32::from(end_of_stream));
        stream_callback(
            &mut self.core,
            f,
            "proxy_on_response_headers",
            context,
            stream,
            args,
        )
    }

    /// Delivers a call's result to `context`; returns whether the callback asked to
    /// continue the stream.
    pub fn deliver(
        &mut self,
        context: u32,
        stream: &mut Option<Box<HttpStream>>,
        token: u32,
        result: CallResult,
    ) -> Result<bool, VmError> {
        match result {
            CallResult::Http(response) => {
                self.on_http_call_response(context, stream, token, response)
            }
            CallResult::Grpc(result) => {
                self.core.store.data_mut().grpc.remove(&token);
                // A unary call ends once: the reply (status OK) or its close (any other).
                let (f, name, size) = match &result.message {
                    Some(message) if result.status == 0 => (
                        self.callbacks.grpc_receive.clone(),
                        "proxy_on_grpc_receive",
                        message.len() as u32,
                    ),
                    _ => (
                        self.callbacks.grpc_close.clone(),
                        "proxy_on_grpc_close",
                        result.status,
                    ),
                };
                self.grpc_callback(context, stream, token, f, name, size, Some(result), None)
            }
            stream_event => {
                // Events of a cancelled stream are not delivered.
                if !self.core.store.data().grpc.contains_key(&token) {
                    return Ok(false);
                }
                match stream_event {
                    CallResult::GrpcInitialMetadata(metadata) => {
                        let f = self.callbacks.grpc_initial_metadata.clone();
                        let n = metadata.len() as u32;
                        let name = "proxy_on_grpc_receive_initial_metadata";
                        self.grpc_callback(context, stream, token, f, name, n, None, Some(metadata))
                    }
                    CallResult::GrpcMessage(message) => {
                        let f = self.callbacks.grpc_receive.clone();
                        let size = message.len() as u32;
                        let result = super::state::GrpcResult {
                            status: 0,
                            status_message: String::new(),
                            message: Some(message),
                        };
                        self.grpc_callback(
                            context,
                            stream,
                            token,
                            f,
                            "proxy_on_grpc_receive",
                            size,
                            Some(result),
                            None,
                        )
                    }
                    CallResult::GrpcTrailingMetadata(metadata) => {
                        let f = self.callbacks.grpc_trailing_metadata.clone();
                        let n = metadata.len() as u32;
                        let name = "proxy_on_grpc_receive_trailing_metadata";
                        self.grpc_callback(context, stream, token, f, name, n, None, Some(metadata))
                    }
                    CallResult::GrpcClose(result) => {
                        self.core.store.data_mut().grpc.remove(&token);
                        let f = self.callbacks.grpc_close.clone();
                        let status = result.status;
                        self.grpc_callback(
                            context,
                            stream,
                            token,
                            f,
                            "proxy_on_grpc_close",
                            status,
                            Some(result),
                            None,
                        )
                    }
                    CallResult::Http(_) | CallResult::Grpc(_) => Ok(false),
                }
            }
        }
    }

    /// Delivers an http call's result (`None`: failed) to `context`. Returns whether the
    /// callback asked to continue the stream.
    pub fn on_http_call_response(
        &mut self,
        context: u32,
        stream: &mut Option<Box<HttpStream>>,
        token: u32,
        response: Option<CallResponse>,
    ) -> Result<bool, VmError> {
        let Some(f) = self.callbacks.http_call_response.as_ref() else {
            return Ok(false);
        };
        let (headers, body, trailers) = response.as_ref().map_or((0, 0, 0), |r| {
            (
                r.headers.len() as u32,
                r.body.len() as u32,
                r.trailers.len() as u32,
            )
        });
        self.core.store.data_mut().call_response = response;
        let result = self
            .core
            .with_stream(context, stream, "proxy_on_http_call_response", |s| {
                f.call(s, (context, token, headers, body, trailers))
            });
        self.core.store.data_mut().call_response = None;
        result.map(|()| self.core.store.data().continue_requested)
    }

    /// The tick period the root context asked for, if any.
    pub fn tick_period(&self) -> Option<std::time::Duration> {
        let ms = self.core.store.data().tick_period_ms;
        (ms > 0).then(|| std::time::Duration::from_millis(u64::from(ms)))
    }

    /// How the root loop learns of queue arrivals for this VM.
    pub fn signals(&self) -> Arc<super::queues::RootSignals> {
        self.core.store.data().signals.clone()
    }

    /// Http calls the root context made since the last call.
    pub fn take_root_calls(&mut self) -> Vec<super::state::PendingCall> {
        std::mem::take(&mut self.core.store.data_mut().root_calls)
    }

    pub fn on_tick(&mut self) -> Result<(), VmError> {
        let Some(f) = self.callbacks.tick.as_ref() else {
            return Ok(());
        };
        let deadline = self.core.callback_ticks;
        self.core.store.data_mut().effective_context = ROOT_CONTEXT;
        self.core.store.data_mut().running_context = ROOT_CONTEXT;
        self.core
            .guard("proxy_on_tick", deadline, |s| f.call(s, ROOT_CONTEXT))
    }

    pub fn on_queue_ready(&mut self, queue: u32) -> Result<(), VmError> {
        let Some(f) = self.callbacks.queue_ready.as_ref() else {
            return Ok(());
        };
        let deadline = self.core.callback_ticks;
        self.core.store.data_mut().effective_context = ROOT_CONTEXT;
        self.core.store.data_mut().running_context = ROOT_CONTEXT;
        self.core.guard("proxy_on_queue_ready", deadline, |s| {
            f.call(s, (ROOT_CONTEXT, queue))
        })
    }

    /// Delivers the result of a call made by the root context.
    pub fn deliver_to_root(&mut self, token: u32, result: CallResult) -> Result<(), VmError> {
        self.deliver(ROOT_CONTEXT, &mut None, token, result)
            .map(|_| ())
    }

    /// `on_log`, `on_done` and `on_delete`: the end of an HTTP context.
    pub fn finish_http_context(
        &mut self,
        context: u32,
        stream: &mut Option<Box<HttpStream>>,
    ) -> Result<(), VmError> {
        // The three end callbacks share one move of the request into the store.
        let deadline = self.core.callback_ticks;
        let data = self.core.store.data_mut();
        data.stream = stream.take();
        data.effective_context = context;
        data.running_context = context;
        let callbacks = &self.callbacks;
        let core = &mut self.core;
        let result = (|| {
            if let Some(f) = callbacks.log.as_ref() {
                core.guard("proxy_on_log", deadline, |s| f.call(s, context))?;
            }
            if let Some(f) = callbacks.done.as_ref() {
                core.guard("proxy_on_done", deadline, |s| f.call(s, context))?;
            }
            if let Some(f) = callbacks.delete.as_ref() {
                core.guard("proxy_on_delete", deadline, |s| f.call(s, context))?;
            }
            Ok(())
        })();
        *stream = self.core.store.data_mut().stream.take();
        result
    }
}
