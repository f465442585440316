//! A configured filter: its module, its configuration, and one VM per worker. The VMs are
//! all started when the plugin is built (so a module that traps at start or rejects its
//! configuration fails the load, not a request). A VM that failed is dropped; the next
//! request on that worker starts a fresh one (root context run again).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;

use super::host::WasmRuntime;
use super::limits::WasmLimits;
use super::module::{self, LoadedModule, ModuleError};
use super::state::PluginInfo;
use super::state::VmPlace;
use super::vm::{Vm, VmError};
use crate::cluster::ClusterRuntime;

/// A filter entry of the config, resolved.
#[derive(Clone, Debug)]
pub struct PluginSpec {
    pub name: String,
    pub module: PathBuf,
    pub sha256: Option<String>,
    pub vm_config: Bytes,
    pub plugin_config: Bytes,
    pub root_id: String,
    pub vm_id: String,
    pub fail_open: bool,
    pub node: Arc<super::state::NodeInfo>,
}

impl PluginSpec {
    /// The same filter entry, allowing the module file to have moved when both entries pin
    /// the same sha256 (a new bundle unpacks to a new directory).
    pub fn same_filter(&self, other: &PluginSpec) -> bool {
        let pin = |s: &PluginSpec| s.sha256.as_deref().map(str::to_ascii_lowercase);
        let same_pin = pin(self) == pin(other);
        let same_module = same_pin && (self.module == other.module || self.sha256.is_some());
        same_module
            && self.name == other.name
            && self.vm_config == other.vm_config
            && self.plugin_config == other.plugin_config
            && self.root_id == other.root_id
            && self.vm_id == other.vm_id
            && self.fail_open == other.fail_open
            && self.node == other.node
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error("module {path}: {source}")]
    Start {
        path: PathBuf,
        #[source]
        source: VmError,
    },
}

/// Failure counters of one plugin, by kind (trap, deadline, oom, start).
#[derive(Clone, Debug)]
pub struct PluginCounters {
    pub trap: Counter,
    pub deadline: Counter,
    pub oom: Counter,
    pub start: Counter,
}

impl PluginCounters {
    pub fn record(&self, error: &VmError) {
        match error.kind() {
            "deadline" => self.deadline.inc(),
            "oom" => self.oom.inc(),
            "start" => self.start.inc(),
            _ => self.trap.inc(),
        };
    }
}

/// One worker's VM and how many times it was replaced.
#[derive(Debug)]
pub struct WorkerVm {
    pub vm: Option<Vm>,
    /// Bumped whenever the VM is replaced; contexts of an older generation are gone.
    pub generation: u64,
}

/// Plugin ids, unique in the process (a reload that keeps a plugin keeps its id).
static NEXT_PLUGIN_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
pub struct Plugin {
    pub id: u64,
    pub spec: PluginSpec,
    pub info: Arc<PluginInfo>,
    pub module: Arc<LoadedModule>,
    pub limits: WasmLimits,
    pub counters: PluginCounters,
    pub replaced: AtomicU64,
    runtime: Arc<WasmRuntime>,
    clusters: Arc<Vec<ClusterRuntime>>,
    workers: Vec<Mutex<WorkerVm>>,
    /// Paused requests waiting to be resumed by another callback, per worker, by context.
    waiters: Vec<Mutex<std::collections::HashMap<u32, Arc<tokio::sync::Notify>>>>,
    /// Set when a published snapshot no longer has this plugin: its root loops stop.
    /// Requests that started before keep its VMs until they end.
    retired: tokio::sync::watch::Sender<bool>,
    pub loaded_at: std::time::SystemTime,
}

impl Plugin {
    /// Loads the module and starts one VM per worker.
    pub fn build(
        runtime: &Arc<WasmRuntime>,
        spec: PluginSpec,
        limits: WasmLimits,
        workers: usize,
        counters: PluginCounters,
        clusters: &Arc<Vec<ClusterRuntime>>,
    ) -> Result<Plugin, PluginError> {
        let module = Arc::new(module::load(runtime, &spec.module, spec.sha256.as_deref())?);
        let info = Arc::new(PluginInfo {
            name: spec.name.clone(),
            root_id: spec.root_id.clone(),
            vm_id: spec.vm_id.clone(),
            vm_config: spec.vm_config.clone(),
            plugin_config: spec.plugin_config.clone(),
            node: spec.node.clone(),
        });
        let mut vms = Vec::with_capacity(workers);
        for worker in 0..workers.max(1) {
            let place = VmPlace {
                worker,
                clusters: clusters.clone(),
            };
            let vm =
                Vm::start(runtime, &module, info.clone(), &limits, place).map_err(|source| {
                    PluginError::Start {
                        path: spec.module.clone(),
                        source,
                    }
                })?;
            vms.push(Mutex::new(WorkerVm {
                vm: Some(vm),
                generation: 0,
            }));
        }
        Ok(Plugin {
            id: NEXT_PLUGIN_ID.fetch_add(1, Ordering::Relaxed),
            retired: tokio::sync::watch::Sender::new(false),
            loaded_at: std::time::SystemTime::now(),
            spec,
            info,
            module,
            limits,
            counters,
            replaced: AtomicU64::new(0),
            runtime: runtime.clone(),
            clusters: clusters.clone(),
            waiters: (0..vms.len()).map(|_| Mutex::default()).collect(),
            workers: vms,
        })
    }

    /// Whether a reload may keep this plugin for `spec`: the same filter entry, limits
    /// and module bytes (the file is read and hashed again; a built-in never changes).
    pub fn unchanged(&self, spec: &PluginSpec, limits: &WasmLimits) -> bool {
        if !self.spec.same_filter(spec) || self.limits != *limits {
            return false;
        }
        super::builtin::is_builtin(&spec.module)
            || std::fs::read(&spec.module)
                .is_ok_and(|bytes| super::cache::sha256_hex(&bytes) == self.module.sha256)
    }

    /// Marks the plugin as gone from the published config; its root loops stop.
    pub fn retire(&self) {
        self.retired.send_replace(true);
    }

    /// Changes to `true` when the plugin is retired.
    pub fn retired(&self) -> tokio::sync::watch::Receiver<bool> {
        self.retired.subscribe()
    }

    /// Registers a paused request's context on `worker` to be woken by a resume.
    pub fn wait_for_resume(&self, worker: usize, context: u32) -> Arc<tokio::sync::Notify> {
        let notify = Arc::new(tokio::sync::Notify::new());
        self.waiters[worker % self.waiters.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(context, notify.clone());
        notify
    }

    pub fn stop_waiting(&self, worker: usize, context: u32) {
        self.waiters[worker % self.waiters.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&context);
    }

    /// Runs `f` on `worker`'s VM (started afresh if the last one failed) with the VM's
    /// generation, then wakes the requests its callbacks resumed. A failure of `f` is
    /// counted here (a failed restart is counted by [`Self::worker`]).
    pub fn run<R>(
        &self,
        worker: usize,
        f: impl FnOnce(&mut Vm, u64) -> Result<R, VmError>,
    ) -> Result<R, VmError> {
        let mut slot = self.worker(worker)?;
        let generation = slot.generation;
        let vm = slot.vm.as_mut().ok_or(VmError::Gone)?;
        let result = f(vm, generation);
        self.wake(worker, vm);
        if let Err(error) = &result {
            self.counters.record(error);
        }
        result
    }

    /// Wakes the paused requests the last callback on `worker`'s VM asked to resume.
    #[inline]
    fn wake(&self, worker: usize, vm: &mut Vm) {
        if vm.has_resumes() {
            self.wake_resumed(worker, vm);
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_resumed(&self, worker: usize, vm: &mut Vm) {
        let resumes = vm.take_resumes();
        let waiters = self.waiters[worker % self.waiters.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for context in resumes {
            if let Some(notify) = waiters.get(&context) {
                notify.notify_one();
            }
        }
    }

    /// The worker's VM, started afresh if the last one failed. Only the worker itself
    /// takes this lock, so it is never contended.
    #[inline]
    pub fn worker(&self, worker: usize) -> Result<MutexGuard<'_, WorkerVm>, VmError> {
        let mut slot = self.workers[worker % self.workers.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if slot.vm.as_ref().is_none_or(|vm| vm.is_broken()) {
            self.restart(worker, &mut slot)?;
        }
        Ok(slot)
    }

    /// Replaces `worker`'s failed (or missing) VM with a fresh one.
    #[cold]
    #[inline(never)]
    fn restart(&self, worker: usize, slot: &mut WorkerVm) -> Result<(), VmError> {
        slot.vm = None;
        slot.generation += 1;
        self.replaced.fetch_add(1, Ordering::Relaxed);
        let place = VmPlace {
            worker,
            clusters: self.clusters.clone(),
        };
        match Vm::start(
            &self.runtime,
            &self.module,
            self.info.clone(),
            &self.limits,
            place,
        ) {
            Ok(vm) => {
                slot.vm = Some(vm);
                Ok(())
            }
            Err(error) => {
                self.counters.record(&error);
                tracing::error!(plugin = %self.spec.name, error = %error, "cannot restart the plugin's VM");
                Err(error)
            }
        }
    }
}
