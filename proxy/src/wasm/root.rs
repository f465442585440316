//! The root-context loop: one task per plugin on each worker that fires `on_tick` at the
//! period the filter set, delivers `on_queue_ready` when a queue its VM registered gets an
//! item, and delivers the responses of http calls the root context made. It runs on the
//! worker's runtime, so it uses the worker's VM like requests do, and stops at shutdown or
//! when a reload retires the plugin.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};
use tokio::sync::watch;
use tokio::time::Instant;

use super::plugin::Plugin;
use super::queues::RootSignals;
use super::state::CallResult;
use super::vm::{Vm, VmError};

type CallEvents = SelectAll<BoxStream<'static, (u64, u32, CallResult)>>;

/// How often the loop looks again for a tick period set outside `on_configure`.
const RECHECK: Duration = Duration::from_millis(100);

pub async fn run(plugin: Arc<Plugin>, worker: usize, mut shutdown: watch::Receiver<bool>) {
    let mut calls: CallEvents = SelectAll::new();
    let mut generation = None;
    let mut signals = Arc::new(RootSignals::default());
    let mut period = None;
    let mut next_tick: Option<Instant> = None;
    let mut retired = plugin.retired();
    loop {
        if *retired.borrow_and_update() {
            return;
        }
        // Follow the worker's VM: a replaced VM has new signals and may set a new period.
        let facts = with_vm(&plugin, worker, |vm, generation| {
            let new_calls = vm.take_root_calls();
            Ok((vm.tick_period(), vm.signals(), generation, new_calls))
        });
        if let Some((vm_period, vm_signals, vm_generation, new_calls)) = facts {
            for call in new_calls {
                calls.push(crate::proxy::call_events(call, move |token, event| {
                    (vm_generation, token, event)
                }));
            }
            if generation != Some(vm_generation) || vm_period != period {
                generation = Some(vm_generation);
                signals = vm_signals;
                period = vm_period;
                next_tick = period.map(|p| Instant::now() + p);
            }
        }
        let tick_at = next_tick.unwrap_or_else(|| Instant::now() + RECHECK);
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = retired.changed() => continue,
            _ = tokio::time::sleep_until(tick_at) => {
                if let Some(p) = period {
                    next_tick = Some(Instant::now() + p);
                    with_vm(&plugin, worker, |vm, _| vm.on_tick());
                }
            }
            _ = signals.notify.notified() => {
                for queue in signals.take_ready() {
                    with_vm(&plugin, worker, |vm, _| vm.on_queue_ready(queue));
                }
            }
            Some((call_generation, token, response)) = calls.next(), if !calls.is_empty() => {
                with_vm(&plugin, worker, |vm, generation| {
                    // A call made by a VM that has since been replaced has no one to go to.
                    if generation == call_generation { vm.deliver_to_root(token, response) } else { Ok(()) }
                });
            }
        }
    }
}

/// Runs `f` on the worker's VM (started afresh if the last one failed); a failure is
/// counted and logged, and the VM is replaced next time.
fn with_vm<R>(
    plugin: &Plugin,
    worker: usize,
    f: impl FnOnce(&mut Vm, u64) -> Result<R, VmError>,
) -> Option<R> {
    plugin
        .run(worker, f)
        .map_err(|error| tracing::error!(filter = %plugin.spec.name, %error, "filter failed in its root context"))
        .ok()
}
