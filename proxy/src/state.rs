//! Process-wide state shared by the workers and the admin endpoint. Everything on the
//! request path here is an atomic: the published snapshot (an `ArcSwap`), and counters.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::wasm::host::WasmRuntime;

#[derive(Debug)]
pub struct Shared {
    snapshot: ArcSwap<Snapshot>,
    /// The version of the published snapshot; workers watch it to start the root loops of
    /// new filters.
    published: watch::Sender<u64>,
    pub metrics: Arc<Metrics>,
    /// The wasm runtime, made when the first config with filters is loaded.
    wasm: OnceLock<Arc<WasmRuntime>>,
    /// How the last reload went.
    last_reload: Mutex<Option<ReloadOutcome>>,
    pub workers: usize,
    /// Open connections per listener (index as in the config), across workers.
    pub connections: Vec<AtomicUsize>,
    ready_workers: AtomicUsize,
    draining: AtomicBool,
}

impl Shared {
    pub fn new(
        snapshot: Snapshot,
        metrics: Arc<Metrics>,
        workers: usize,
        wasm: Option<Arc<WasmRuntime>>,
    ) -> Self {
        let listeners = snapshot.listeners.len();
        let runtime = OnceLock::new();
        if let Some(wasm) = wasm {
            let _ = runtime.set(wasm);
        }
        Shared {
            published: watch::Sender::new(snapshot.version),
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            wasm: runtime,
            last_reload: Mutex::new(None),
            workers,
            connections: (0..listeners).map(|_| AtomicUsize::new(0)).collect(),
            ready_workers: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        }
    }

    /// The snapshot new requests use.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Makes `snapshot` the one new requests use, retires the filters it no longer has
    /// (their root loops stop; requests holding the old snapshot keep their VMs until they
    /// end), and tells the workers so they start the new filters' root loops.
    pub fn publish(&self, snapshot: Snapshot) {
        let version = snapshot.version;
        let old = self.snapshot.swap(Arc::new(snapshot));
        let new = self.snapshot();
        for plugin in old.plugins() {
            if !new.plugins().any(|p| p.id == plugin.id) {
                plugin.retire();
            }
        }
        self.published.send_replace(version);
    }

    /// Changes whenever a snapshot is published.
    pub fn published(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// The wasm runtime, if a config with filters was ever loaded.
    pub fn wasm(&self) -> Option<&Arc<WasmRuntime>> {
        self.wasm.get()
    }

    /// The wasm runtime, made now if this is the first config with filters.
    pub fn wasm_or_init(&self, cache_dir: Option<std::path::PathBuf>) -> Arc<WasmRuntime> {
        self.wasm
            .get_or_init(|| Arc::new(WasmRuntime::new(cache_dir)))
            .clone()
    }

    pub fn record_reload(&self, outcome: ReloadOutcome) {
        self.metrics.reload_done(outcome.error.is_none());
        *self.last_reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }

    pub fn last_reload(&self) -> Option<ReloadOutcome> {
        self.last_reload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn worker_ready(&self) {
        self.ready_workers.fetch_add(1, Ordering::SeqCst);
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Prometheus text of weft's metrics and those filters defined.
    pub fn encode_metrics(&self) -> String {
        let main = self.metrics.encode();
        match self.wasm() {
            Some(wasm) => {
                let body = main.strip_suffix("# EOF\n").unwrap_or(&main);
                format!("{body}{}# EOF\n", wasm.shared.metrics.encode())
            }
            None => main,
        }
    }

    /// Every worker is accepting and no drain has begun.
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.ready_workers.load(Ordering::SeqCst) >= self.workers
    }
}

/// The result of one reload attempt, for the admin endpoint.
#[derive(Clone, Debug)]
pub struct ReloadOutcome {
    pub at: SystemTime,
    /// What asked for it: "file change", "SIGHUP", "admin".
    pub trigger: String,
    /// The version published, when it succeeded.
    pub version: Option<u64>,
    /// Every error, one per line, when it failed.
    pub error: Option<String>,
    /// Wall time from the trigger to the publish (or the failure).
    pub took: std::time::Duration,
}
