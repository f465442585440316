//! Helpers for the criterion micro-benchmarks of weft's proxy-wasm host
//! (`benches/wasm_host.rs`): the runtime, the test filters (built by
//! `scripts/build-wasm.sh` when missing), hand-written WAT modules, a realistic request,
//! and a filter chain run the way `proxy/src/proxy/filters.rs` runs one.
//!
//! Everything here goes through weft's public API only; the places that must follow
//! changes to it (`VmPlace`, the fields of `HttpStream`) are in this file alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Version};
use wasmtime::{Instance, Store};
use weft::wasm::abi::types::Action;
use weft::wasm::host::WasmRuntime;
use weft::wasm::limits::{MemoryCap, WasmLimits};
use weft::wasm::module::{self, LoadedModule};
use weft::wasm::state::{HostState, HttpStream, PluginInfo, StreamInfo, VmPlace};
use weft::wasm::vm::Vm;

/// The wasm target whose fixture builds the benchmarks load (the one proxy-wasm filters
/// for Envoy are usually built for).
pub const FIXTURE_TARGET: &str = "wasm32-wasip1";

/// The fixtures the benchmarks use.
const FIXTURES: [&str; 3] = ["noop", "add_header", "headers"];

/// The root of the workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ is inside the workspace")
        .to_path_buf()
}

/// Where criterion keeps its results: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else the workspace's `target/criterion` (criterion's own fallback is `./target`, which
/// for `cargo bench` is benches/target when `cargo metadata` fails).
pub fn criterion_output_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
        .join("criterion")
}

fn fixture_path(name: &str) -> PathBuf {
    workspace_root()
        .join("target/wasm-fixtures")
        .join(FIXTURE_TARGET)
        .join(format!("{name}.wasm"))
}

/// The path of test filter `name` (see tests/wasm-filters/README.md). The first call runs
/// `scripts/build-wasm.sh` if any fixture the benchmarks use is missing.
pub fn fixture(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if FIXTURES.iter().all(|f| fixture_path(f).is_file()) {
            return;
        }
        let root = workspace_root();
        let status = Command::new("bash")
            .arg(root.join("scripts/build-wasm.sh"))
            .current_dir(&root)
            .status()
            .expect("run scripts/build-wasm.sh");
        assert!(status.success(), "building the wasm fixtures failed");
    });
    let path = fixture_path(name);
    assert!(path.is_file(), "no fixture at {}", path.display());
    path
}

/// A runtime without an on-disk module cache.
pub fn runtime() -> Arc<WasmRuntime> {
    Arc::new(WasmRuntime::new(None))
}

/// Loads a fixture with `module::load`, as a plugin does.
pub fn load_fixture(runtime: &WasmRuntime, name: &str) -> LoadedModule {
    module::load(runtime, &fixture(name), None)
        .unwrap_or_else(|e| panic!("cannot load fixture {name}: {e}"))
}

/// Loads a module written in WAT (wasmtime compiles the text form) with `module::load`,
/// through a temporary file.
pub fn load_wat(runtime: &WasmRuntime, name: &str, wat: &str) -> LoadedModule {
    let path = std::env::temp_dir().join(format!("weft-benches-{}-{name}.wat", std::process::id()));
    std::fs::write(&path, wat).expect("write the WAT module to the temp dir");
    let loaded = module::load(runtime, &path, None);
    let _ = std::fs::remove_file(&path);
    loaded.unwrap_or_else(|e| panic!("cannot load WAT module {name}: {e}"))
}

pub fn plugin_info(name: &str) -> Arc<PluginInfo> {
    Arc::new(PluginInfo {
        name: name.to_string(),
        root_id: String::new(),
        vm_id: String::new(),
        vm_config: Bytes::new(),
        plugin_config: Bytes::new(),
        node: Arc::default(),
    })
}

/// Worker 0, no clusters (none of the benchmarked filters makes http calls).
fn place() -> VmPlace {
    VmPlace {
        worker: 0,
        clusters: Arc::new(Vec::new()),
    }
}

/// A started VM (root context created, `on_vm_start` and `on_configure` run) with the
/// default limits, as `Plugin::build` starts one per worker.
pub fn start_vm(runtime: &WasmRuntime, module: &LoadedModule, name: &str) -> Vm {
    Vm::start(
        runtime,
        module,
        plugin_info(name),
        &WasmLimits::default(),
        place(),
    )
    .unwrap_or_else(|e| panic!("cannot start a VM of {name}: {e}"))
}

/// A bare store and instance of `module`, for calling its exports directly (no `Vm`
/// around the call). The epoch deadline is far away, so the ticker never interrupts.
pub fn bare_instance(runtime: &WasmRuntime, module: &LoadedModule) -> (Store<HostState>, Instance) {
    let cap = MemoryCap {
        max_bytes: WasmLimits::default().memory_bytes,
        refused: false,
    };
    let state = HostState::new(plugin_info("bare"), runtime.shared.clone(), cap, place());
    let mut store = Store::new(&runtime.engine, state);
    store.set_epoch_deadline(1 << 40);
    let instance = module
        .pre
        .instantiate(&mut store)
        .expect("instantiate the module");
    (store, instance)
}

/// The facts about the benchmark's connection, shared by every request.
pub fn stream_info() -> StreamInfo {
    StreamInfo {
        listener: Arc::from("bench"),
        peer: SocketAddr::from(([203, 0, 113, 7], 40_000)),
        local: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        start: SystemTime::now(),
        protocol: Version::HTTP_11,
        request_id: Some(HeaderValue::from_static(
            "7b1e6a0c-3f2d-4e8a-9c51-2d4f6b8a0e13",
        )),
        connection_id: 1,
        tls: None,
    }
}

/// A realistic browser-ish API request: `GET /api/v1/items?x=1` with 12 headers.
pub fn request_stream(info: &StreamInfo) -> Box<HttpStream> {
    let (request, ()) = Request::builder()
        .method(Method::GET)
        .uri("/api/v1/items?x=1")
        .version(Version::HTTP_11)
        .header("host", "api.example.com")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        )
        .header("accept", "application/json")
        .header("accept-encoding", "gzip, deflate, br")
        .header("accept-language", "en-US,en;q=0.9")
        .header(
            "authorization",
            "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        )
        .header("cache-control", "no-cache")
        .header("connection", "keep-alive")
        .header("cookie", "session=4f8d2c1a9b7e; theme=dark")
        .header("referer", "https://app.example.com/items")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-request-id", "7b1e6a0c-3f2d-4e8a-9c51-2d4f6b8a0e13")
        .body(())
        .expect("a valid request")
        .into_parts();
    Box::new(HttpStream::new(request, info.clone()))
}

/// The header count `on_request_headers` gets: the headers less `Host`, plus the four
/// pseudo-headers (as in `FilterRun::request_headers`).
pub fn request_header_count(stream: &Option<Box<HttpStream>>) -> u32 {
    let headers = &stream.as_ref().expect("the stream is back").request.headers;
    let host = u32::from(headers.contains_key(http::header::HOST));
    headers.len() as u32 - host + 4
}

/// A listener's filter chain on one worker: one VM per filter.
pub struct Chain {
    vms: Vec<Vm>,
    contexts: Vec<u32>,
}

impl Chain {
    /// `len` filters, each its own VM of `module`.
    pub fn new(runtime: &WasmRuntime, module: &LoadedModule, name: &str, len: usize) -> Self {
        Chain {
            vms: (0..len).map(|_| start_vm(runtime, module, name)).collect(),
            contexts: Vec::with_capacity(len),
        }
    }

    /// One request through the chain, as `FilterRun` runs it: for each filter in order an
    /// HTTP context and `on_request_headers`, then `on_log`, `on_done`, `on_delete` for
    /// every context. Panics if a filter fails or does not continue.
    pub fn run(&mut self, stream: &mut Option<Box<HttpStream>>) {
        self.contexts.clear();
        for vm in &mut self.vms {
            let context = vm.create_http_context().expect("create an HTTP context");
            self.contexts.push(context);
            let count = request_header_count(stream);
            let action = vm
                .on_request_headers(context, stream, count, true)
                .expect("on_request_headers");
            assert_eq!(action, Action::Continue, "the filter paused the request");
        }
        for (vm, &context) in self.vms.iter_mut().zip(&self.contexts) {
            vm.finish_http_context(context, stream)
                .expect("finish the HTTP context");
        }
    }
}
