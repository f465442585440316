//! A worker: one OS thread with its own single-threaded tokio runtime, accepting on its own
//! socket of every listener. Requests never leave the worker that accepted them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::conn;
use crate::proxy::{Activity, ConnContext};
use crate::state::Shared;

/// Connection ids, unique in the process.
static NEXT_CONNECTION_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The sockets one worker accepts on: (listener index, socket).
#[derive(Debug)]
pub struct WorkerPlan {
    pub id: usize,
    pub sockets: Vec<(usize, std::net::TcpListener)>,
}

pub fn spawn(
    plan: WorkerPlan,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name(format!("weft-worker-{}", plan.id))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a worker runtime can be built");
            runtime.block_on(run(plan, shared, shutdown, drain_timeout));
        })
}

async fn run(
    plan: WorkerPlan,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let mut loops = JoinSet::new();
    for (listener, socket) in plan.sockets {
        match TcpListener::from_std(socket) {
            Ok(socket) => {
                loops.spawn(accept_loop(
                    plan.id,
                    listener,
                    socket,
                    shared.clone(),
                    shutdown.clone(),
                    drain_timeout,
                ));
            }
            Err(error) => {
                tracing::error!(worker = plan.id, %error, "cannot register listening socket")
            }
        }
    }
    // Each filter's root context on this worker: ticks, queue arrivals, root http calls;
    // started for the filters of every snapshot published from now on.
    tokio::spawn(root_loops(shared.clone(), plan.id, shutdown.clone()));
    shared.worker_ready();
    while loops.join_next().await.is_some() {}
}

/// Starts a root loop on this worker for each filter of the published snapshot, and again
/// for the new filters of each later one. A loop ends when its filter is retired by a
/// reload, or at shutdown.
async fn root_loops(shared: Arc<Shared>, worker: usize, mut shutdown: watch::Receiver<bool>) {
    let mut published = shared.published();
    let mut started = std::collections::HashSet::new();
    loop {
        published.borrow_and_update();
        let snapshot = shared.snapshot();
        let live: std::collections::HashSet<u64> = snapshot.plugins().map(|p| p.id).collect();
        started.retain(|id| live.contains(id));
        for plugin in snapshot.plugins() {
            if started.insert(plugin.id) {
                tokio::spawn(crate::wasm::root::run(
                    plugin.clone(),
                    worker,
                    shutdown.clone(),
                ));
            }
        }
        drop(snapshot);
        tokio::select! {
            _ = shutdown.changed() => return,
            changed = published.changed() => if changed.is_err() { return },
        }
    }
}

/// What a connection's context is made of, before its TLS handshake (if any) is done.
struct NewConn {
    shared: Arc<Shared>,
    listener: usize,
    worker: usize,
    peer: std::net::SocketAddr,
    local: Option<std::net::SocketAddr>,
}

impl NewConn {
    fn context(&self, tls: Option<crate::tls::TlsInfo>) -> Arc<ConnContext> {
        Arc::new(ConnContext {
            shared: self.shared.clone(),
            listener: self.listener,
            worker: self.worker,
            peer: self.peer,
            local: self.local,
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            peer_value: crate::proxy::client_address_value(self.peer.ip()),
            activity: Arc::new(Activity::default()),
            tls,
        })
    }
}

/// Open-connection accounting for one connection, undone on drop.
struct ConnSlot {
    shared: Arc<Shared>,
    listener: usize,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.shared.connections[self.listener].fetch_sub(1, Ordering::Relaxed);
        self.shared.snapshot().listeners[self.listener]
            .metrics
            .cx_active
            .dec();
    }
}

async fn accept_loop(
    worker: usize,
    listener: usize,
    socket: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let limits = Arc::new(shared.snapshot().config.listeners[listener].limits.clone());
    let h2 = Arc::new(conn::h2_builder(&limits));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = socket.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(worker, %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let snapshot = shared.snapshot();
                let metrics = &snapshot.listeners[listener].metrics;
                let open = shared.connections[listener].fetch_add(1, Ordering::Relaxed);
                if open >= limits.max_connections {
                    shared.connections[listener].fetch_sub(1, Ordering::Relaxed);
                    metrics.cx_overflow.inc();
                    tracing::debug!(worker, %peer, "max_connections reached; connection refused");
                    drop(stream);
                    continue;
                }
                metrics.cx_total.inc();
                metrics.cx_active.inc();
                let slot = ConnSlot { shared: shared.clone(), listener };
                let _ = stream.set_nodelay(true);
                let tls = snapshot.config.listeners[listener].tls.clone();
                let handshake_errors = metrics.tls_handshake_errors.clone();
                drop(snapshot);
                let conn = NewConn {
                    shared: shared.clone(),
                    listener,
                    worker,
                    peer,
                    local: stream.local_addr().ok(),
                };
                let h2 = h2.clone();
                let limits = limits.clone();
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    let Some(settings) = tls else {
                        let ctx = conn.context(None);
                        conn::serve(stream, ctx, h2, limits, shutdown).await;
                        return;
                    };
                    let acceptor = tokio_rustls::TlsAcceptor::from(settings.server_config.clone());
                    // The connection is closed only once the failure is counted, so a
                    // client that sees the close also sees it in the metrics.
                    let accept = acceptor.accept(stream).into_fallible();
                    let handshake = tokio::time::timeout(settings.handshake_timeout, accept);
                    tokio::pin!(handshake);
                    match handshake.as_mut().await {
                        Ok(Ok(stream)) => {
                            let info = crate::tls::TlsInfo::of(stream.get_ref().1);
                            let ctx = conn.context(Some(info));
                            conn::serve(stream, ctx, h2, limits, shutdown).await;
                        }
                        Ok(Err((error, _stream))) => {
                            handshake_errors.inc();
                            tracing::debug!(peer = %conn.peer, %error, "TLS handshake failed");
                        }
                        Err(_) => {
                            handshake_errors.inc();
                            tracing::debug!(peer = %conn.peer, "TLS handshake timed out");
                        }
                    }
                });
            }
        }
    }
    drop(socket);
    let open = connections.len();
    if open == 0 {
        return;
    }
    tracing::debug!(worker, listener, open, "draining connections");
    let drained = tokio::time::timeout(drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            worker,
            listener,
            open = connections.len(),
            "drain timeout reached; closing connections"
        );
        connections.shutdown().await;
    }
}
