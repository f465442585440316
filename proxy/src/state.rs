//! Process-wide state shared by the workers and the admin endpoint. Everything on the
//! request path here is an atomic: the published snapshot (an `ArcSwap`), and counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arc_swap::ArcSwap;

use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::wasm::host::WasmRuntime;

#[derive(Debug)]
pub struct Shared {
    snapshot: ArcSwap<Snapshot>,
    pub metrics: Arc<Metrics>,
    /// The wasm runtime, when any listener has filters.
    pub wasm: Option<Arc<WasmRuntime>>,
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
        Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            wasm,
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
        match &self.wasm {
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
