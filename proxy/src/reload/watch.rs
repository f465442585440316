//! Reload on file changes: watch the config file and every module it names, and reload
//! when one of them has new content.
//!
//! The watcher watches directories, not files, because files are rarely changed in place:
//! editors and build scripts write a temporary file and rename it over the old one, and a
//! Kubernetes ConfigMap volume swaps a `..data` symlink in the directory (the file itself
//! is a symlink through it, and often all the watcher sees is the old target going away).
//! So any event in a watched directory makes the watcher look again: it waits until the
//! directory has been quiet for a moment (a burst of writes is one change), then hashes the
//! files it depends on, following symlinks, and reloads only when a hash differs from what
//! it saw last. Reading the files ourselves causes no events (only writes, creations,
//! removals and renames count), so there is no loop.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Reloader, parent_dir};

/// A change is acted on once its directory has been quiet this long...
const QUIET: Duration = Duration::from_millis(30);
/// ...or this long after it began, whichever comes first.
const MAX_WAIT: Duration = Duration::from_millis(500);

/// Starts watching the reloader's files on the current runtime. Returns an error when the
/// platform's watcher cannot be created.
pub fn spawn(reloader: Arc<Reloader>) -> notify::Result<()> {
    let (tx, events) = mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(event) if is_change(&event.kind) => {
                let _ = tx.send(());
            }
            Ok(_) => {}
            // The kernel dropped events (queue overflow): look again to be safe.
            Err(_) => {
                let _ = tx.send(());
            }
        }
    })?;
    tokio::spawn(run(reloader, watcher, events));
    Ok(())
}

/// Whether an event can mean new content. Opening or reading a file does not.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

async fn run(
    reloader: Arc<Reloader>,
    mut watcher: RecommendedWatcher,
    mut events: mpsc::UnboundedReceiver<()>,
) {
    let mut watched = BTreeSet::new();
    let mut files = reloader.files();
    watch_dirs(&mut watcher, &mut watched, &files);
    let mut seen = fingerprint(&files);
    loop {
        if events.recv().await.is_none() {
            return;
        }
        let first = Instant::now();
        loop {
            let deadline = (Instant::now() + QUIET).min(first + MAX_WAIT);
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let now = fingerprint(&files);
        if now == seen {
            continue;
        }
        seen = now;
        tracing::info!("a watched file changed; reloading");
        // A failed reload is logged and recorded by the reloader; the watcher waits for
        // the next change.
        let _ = reloader.reload("file change").await;
        let new_files = reloader.files();
        if new_files != files {
            files = new_files;
            watch_dirs(&mut watcher, &mut watched, &files);
            seen = fingerprint(&files);
        }
    }
}

/// Watches the directories `files` live in (and, for a symlink, the directory of its
/// target), dropping the directories no longer needed.
fn watch_dirs(
    watcher: &mut RecommendedWatcher,
    watched: &mut BTreeSet<PathBuf>,
    files: &[PathBuf],
) {
    let mut wanted = BTreeSet::new();
    for file in files {
        wanted.insert(parent_dir(file));
        if let Ok(real) = std::fs::canonicalize(file) {
            wanted.insert(parent_dir(&real));
        }
    }
    for dir in watched.difference(&wanted) {
        let _ = watcher.unwatch(dir);
    }
    let mut now_watched: BTreeSet<PathBuf> = watched.intersection(&wanted).cloned().collect();
    for dir in wanted.difference(watched) {
        match watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                tracing::debug!(dir = %dir.display(), "watching for changes");
                now_watched.insert(dir.clone());
            }
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "cannot watch this directory; changes in it will not reload")
            }
        }
    }
    *watched = now_watched;
}

/// The content hash of each file (None when it cannot be read).
fn fingerprint(files: &[PathBuf]) -> Vec<Option<[u8; 32]>> {
    files.iter().map(|f| hash_file(f)).collect()
}

fn hash_file(path: &Path) -> Option<[u8; 32]> {
    let bytes = std::fs::read(path).ok()?;
    Some(Sha256::digest(&bytes).into())
}
