//! The wasm runtime of the process: one engine, one linker holding every host function,
//! the compiled-module cache, and the state that filters share across all workers
//! (shared data and metrics).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::{Engine, IntoFunc, Linker};

use super::abi;
use super::cache::ModuleCache;
use super::engine::{EpochTicker, build_engine};
use super::metrics::WasmMetrics;
use super::queues::SharedQueues;
use super::shared_data::SharedData;
use super::state::HostState;

/// State every VM of the process shares.
#[derive(Debug, Default)]
pub struct HostShared {
    pub shared_data: SharedData,
    pub metrics: WasmMetrics,
    pub queues: SharedQueues,
}

pub struct WasmRuntime {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    /// Every (module, name) the linker provides, to name a missing import at load time.
    pub provided: BTreeSet<(&'static str, &'static str)>,
    pub cache: ModuleCache,
    pub shared: Arc<HostShared>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime")
            .field("cache", &self.cache)
            .finish()
    }
}

/// Adds host functions to a linker and remembers their names.
pub struct HostFunctions<'a> {
    linker: &'a mut Linker<HostState>,
    provided: &'a mut BTreeSet<(&'static str, &'static str)>,
}

impl HostFunctions<'_> {
    pub fn func<Params, Args>(
        &mut self,
        module: &'static str,
        name: &'static str,
        func: impl IntoFunc<HostState, Params, Args>,
    ) {
        self.provided.insert((module, name));
        self.linker
            .func_wrap(module, name, func)
            .expect("each host function is defined once");
    }
}

impl WasmRuntime {
    /// A runtime whose compiled modules are cached in `cache_dir`.
    pub fn new(cache_dir: Option<PathBuf>) -> Self {
        let engine = build_engine();
        let mut linker = Linker::new(&engine);
        let mut provided = BTreeSet::new();
        abi::add_to_linker(&mut HostFunctions {
            linker: &mut linker,
            provided: &mut provided,
        });
        WasmRuntime {
            _ticker: EpochTicker::start(engine.clone()),
            engine,
            linker,
            provided,
            cache: ModuleCache::new(cache_dir),
            shared: Arc::new(HostShared::default()),
        }
    }
}
