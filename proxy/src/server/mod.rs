//! Starting and stopping the proxy: bind every listener once per worker, start the worker
//! threads, the admin endpoint and the demo upstream, then drain on a shutdown signal.

mod conn;
pub(crate) mod h1;
mod io;
mod socket;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::reload::{ConfigSource, Reloader};
use crate::snapshot::Snapshot;
use crate::state::Shared;
use crate::wasm::host::WasmRuntime;
use worker::WorkerPlan;

#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Worker threads; each accepts on every listener.
    pub workers: usize,
    /// Reload when the config file or a module changes.
    pub watch: bool,
    /// Follow a control plane: apply each version it offers through the reload path.
    pub control: Option<Arc<crate::control::client::Subscriber>>,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub drain_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(crate::config::ConfigErrors),
    #[error("listeners[{index}] ({name}): cannot listen on {address}")]
    Listener {
        index: usize,
        name: String,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("admin.address: cannot listen on {address}")]
    Admin {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("demo_upstream.address: cannot listen on {address}")]
    Demo {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a worker thread")]
    Worker(#[source] std::io::Error),
}

/// Runs the proxy until `shutdown_signal` completes, then drains and returns.
pub async fn run(
    config: Config,
    source: ConfigSource,
    options: ServerOptions,
    shutdown_signal: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let workers = options.workers.max(1);
    let metrics = Arc::new(Metrics::new());
    let wasm = Snapshot::needs_wasm(&config)
        .then(|| Arc::new(WasmRuntime::new(config.wasm.cache_dir.clone())));
    let snapshot = Snapshot::build(1, config, &metrics, workers, wasm.as_ref(), None)
        .map_err(StartError::Config)?;

    // Bind everything before serving anything, so a bad address fails the start cleanly.
    let mut plans: Vec<WorkerPlan> = (0..workers)
        .map(|id| WorkerPlan {
            id,
            sockets: Vec::new(),
        })
        .collect();
    for (index, listener) in snapshot.config.listeners.iter().enumerate() {
        let sockets = socket::bind_group(listener.address, workers).map_err(|source| {
            StartError::Listener {
                index,
                name: listener.name.clone(),
                address: listener.address,
                source,
            }
        })?;
        let bound = sockets[0].local_addr().unwrap_or(listener.address);
        tracing::info!(listener = %listener.name, address = %bound, workers, "listening");
        for (plan, socket) in plans.iter_mut().zip(sockets) {
            plan.sockets.push((index, socket));
        }
    }
    let admin = match snapshot.config.admin {
        Some(address) => Some((
            TcpListener::bind(address)
                .await
                .map_err(|source| StartError::Admin { address, source })?,
            address,
        )),
        None => None,
    };
    let demo = match snapshot.config.demo_upstream {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .map_err(|source| StartError::Demo { address, source })?,
        ),
        None => None,
    };

    let shared = Arc::new(Shared::new(snapshot, metrics, workers, wasm));
    crate::cluster::spawn_tasks(&shared.snapshot().clusters);
    let reloader = Arc::new(Reloader::new(shared.clone(), source));
    if let Some((listener, _)) = admin {
        let bound = listener.local_addr().ok();
        tracing::info!(address = ?bound.map(|a| a.to_string()).unwrap_or_default(), "admin listening");
        tokio::spawn(crate::admin::serve(
            listener,
            shared.clone(),
            reloader.clone(),
        ));
    }
    if options.watch && !reloader.files().is_empty() {
        if let Err(error) = crate::reload::watch::spawn(reloader.clone()) {
            tracing::warn!(%error, "cannot watch files for changes; reload with SIGHUP or POST /reload");
        }
    }
    tokio::spawn(reload_on_sighup(reloader.clone()));
    crate::reload::dns::spawn(reloader.clone());
    if let Some(subscriber) = options.control.clone() {
        tokio::spawn(subscriber.run(reloader.clone()));
    }
    if let Some(listener) = demo {
        let bound = listener.local_addr().ok();
        tracing::info!(address = ?bound.map(|a| a.to_string()).unwrap_or_default(), "demo upstream listening");
        tokio::spawn(crate::demo::serve(listener));
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut threads = Vec::with_capacity(workers);
    for plan in plans {
        threads.push(
            worker::spawn(
                plan,
                shared.clone(),
                shutdown_rx.clone(),
                options.drain_timeout,
            )
            .map_err(StartError::Worker)?,
        );
    }

    shutdown_signal.await;
    tracing::info!(drain_timeout = ?options.drain_timeout, "shutting down: no new connections, draining in-flight requests");
    shared.start_draining();
    let _ = shutdown_tx.send(true);
    let joined = tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    });
    let _ = joined.await;
    tracing::info!("drained; exiting");
    Ok(())
}

/// Reloads on every SIGHUP.
async fn reload_on_sighup(reloader: Arc<Reloader>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot handle SIGHUP; reload with POST /reload");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received; reloading");
        let _ = reloader.reload("SIGHUP").await;
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
