//! Reloading: build a new snapshot from the config source, off the workers, and publish it
//! only when every step worked (parse, validate, sha256 pins, compile or cache, instantiate,
//! `on_vm_start`, `on_configure`). A failed reload changes nothing that serves; its error is
//! logged, counted (`weft_reload_total{result="error"}`) and shown on the admin endpoint.
//!
//! Four things trigger one: a change of the config file or of a module it names
//! ([`watch`]), `SIGHUP`, `POST /reload` on the admin endpoint, and a change in the
//! addresses of a cluster's hostnames ([`dns`]). Reloads run one at a
//! time.

pub mod dns;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::config::{self, Config, ConfigError, ConfigErrors};
use crate::quick::{self, Quick};
use crate::snapshot::Snapshot;
use crate::state::{ReloadOutcome, Shared};

/// Where the config comes from; a reload reads it again from there.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// `weft run --config FILE`.
    File(PathBuf),
    /// `weft run --listen ... --filter ...`: the flags, with the directory relative filter
    /// paths are taken from.
    Quick { quick: Quick, cwd: PathBuf },
    /// `weft run` alone.
    Embedded,
    /// `weft run --bundle PATH`: a bundle directory or archive; archives are unpacked
    /// under `unpack_dir`.
    Bundle { path: PathBuf, unpack_dir: PathBuf },
}

impl ConfigSource {
    /// Reads, parses and validates the config.
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        match self {
            ConfigSource::File(path) => config::load_file(path),
            ConfigSource::Quick { quick, cwd } => match quick.raw_config(cwd) {
                Ok(raw) => config::load_raw(quick::SOURCE, raw, cwd),
                Err(error) => Err(ConfigErrors(vec![ConfigError {
                    source: quick::SOURCE.to_string(),
                    location: None,
                    path: String::new(),
                    message: error.to_string(),
                }])),
            },
            ConfigSource::Embedded => Ok(config::embedded_default()),
            ConfigSource::Bundle { path, unpack_dir } => {
                let opened = crate::bundle::open(path, unpack_dir)?;
                crate::bundle::load_config(&opened, &path.display().to_string())
            }
        }
    }

    /// The files a change of which should reload `config`: the config file, the TLS files
    /// of the listeners and clusters (certificates, keys, CAs), and every filter module
    /// read from disk.
    pub fn files(&self, config: &Config) -> Vec<PathBuf> {
        let mut files = Vec::new();
        match self {
            ConfigSource::File(path) => files.push(path.clone()),
            // An archive is one file; its unpacked copy never changes.
            ConfigSource::Bundle { path, .. } if crate::bundle::is_archive(path) => {
                return vec![path.clone()];
            }
            ConfigSource::Bundle { path, .. } => {
                files.push(path.join(crate::bundle::CONFIG_FILE));
                files.push(path.join(crate::bundle::MANIFEST_FILE));
            }
            ConfigSource::Quick { .. } | ConfigSource::Embedded => {}
        }
        for tls in config.listeners.iter().filter_map(|l| l.tls.as_ref()) {
            files.extend(tls.files.iter().cloned());
        }
        // Clusters often share one CA file: each file once.
        let cluster_files = config.clusters.iter().filter_map(|c| c.tls.as_ref());
        for file in cluster_files.flat_map(|tls| tls.files.iter()) {
            if !files.contains(file) {
                files.push(file.clone());
            }
        }
        for spec in config.listeners.iter().flat_map(|l| l.filters.iter()) {
            if !crate::wasm::builtin::is_builtin(&spec.module) && !files.contains(&spec.module) {
                files.push(spec.module.clone());
            }
        }
        files
    }
}

/// Builds and publishes new snapshots.
#[derive(Debug)]
pub struct Reloader {
    shared: Arc<Shared>,
    source: ConfigSource,
    /// One reload at a time.
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(shared: Arc<Shared>, source: ConfigSource) -> Self {
        Reloader {
            shared,
            source,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn source(&self) -> &ConfigSource {
        &self.source
    }

    /// The files the published config depends on.
    pub fn files(&self) -> Vec<PathBuf> {
        self.source.files(&self.shared.snapshot().config)
    }

    /// Builds a snapshot from the source and publishes it; returns its version, or every
    /// error found (the serving snapshot is then untouched).
    pub async fn reload(self: &Arc<Self>, trigger: &str) -> Result<u64, ConfigErrors> {
        self.reload_from(&self.source.clone(), trigger).await
    }

    /// As [`Self::reload`], reading the config from `source` this once (the control plane
    /// tries a downloaded bundle before it becomes the one the source names).
    pub async fn reload_from(
        self: &Arc<Self>,
        source: &ConfigSource,
        trigger: &str,
    ) -> Result<u64, ConfigErrors> {
        let _one_at_a_time = self.lock.lock().await;
        let started = Instant::now();
        let this = self.clone();
        let source = source.clone();
        let built = tokio::task::spawn_blocking(move || this.build(&source))
            .await
            .unwrap_or_else(|join| {
                Err(ConfigErrors(vec![ConfigError {
                    source: self.describe(),
                    location: None,
                    path: String::new(),
                    message: format!("the reload failed unexpectedly: {join}"),
                }]))
            });
        let took = started.elapsed();
        let outcome = ReloadOutcome {
            at: SystemTime::now(),
            trigger: trigger.to_string(),
            version: None,
            error: None,
            took,
        };
        match built {
            Ok(snapshot) => {
                let version = snapshot.version;
                let previous = self.shared.snapshot();
                let kept = snapshot
                    .plugins()
                    .filter(|p| previous.plugins().any(|old| old.id == p.id))
                    .count();
                let filters = snapshot.plugins().count();
                let new_clusters = !Arc::ptr_eq(&previous.clusters, &snapshot.clusters);
                drop(previous);
                self.shared.publish(snapshot);
                if new_clusters {
                    // The old clusters' checks end with them.
                    crate::cluster::spawn_tasks(&self.shared.snapshot().clusters);
                }
                tracing::info!(
                    version,
                    trigger,
                    took_ms = took.as_secs_f64() * 1e3,
                    filters,
                    filters_kept = kept,
                    "config reloaded"
                );
                self.shared.record_reload(ReloadOutcome {
                    version: Some(version),
                    ..outcome
                });
                Ok(version)
            }
            Err(errors) => {
                for error in &errors.0 {
                    tracing::error!(
                        trigger,
                        "reload refused, still serving the previous config: {error}"
                    );
                }
                self.shared.record_reload(ReloadOutcome {
                    error: Some(errors.to_string()),
                    ..outcome
                });
                Err(errors)
            }
        }
    }

    fn describe(&self) -> String {
        match &self.source {
            ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Quick { .. } => quick::SOURCE.to_string(),
            ConfigSource::Embedded => config::EMBEDDED_SOURCE.to_string(),
            ConfigSource::Bundle { path, .. } => path.display().to_string(),
        }
    }

    /// Everything a reload does before publishing; runs on a blocking thread.
    fn build(&self, source: &ConfigSource) -> Result<Snapshot, ConfigErrors> {
        let config = source.load()?;
        let previous = self.shared.snapshot();
        check_start_only(&previous.config, &config)?;
        let wasm = Snapshot::needs_wasm(&config)
            .then(|| self.shared.wasm_or_init(config.wasm.cache_dir.clone()));
        Snapshot::build(
            previous.version + 1,
            config,
            &self.shared.metrics,
            self.shared.workers,
            wasm.as_ref(),
            Some(&previous),
        )
    }
}

/// Settings that are applied when the proxy starts and that a reload cannot change: the
/// listeners (names, addresses, connection limits), the admin and the demo upstream
/// addresses. A reload that changes one is refused, naming it.
pub fn check_start_only(old: &Config, new: &Config) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    let mut refuse = |path: String, what: String| {
        errors.push(ConfigError {
            source: new.source.clone(),
            location: None,
            path,
            message: format!("{what}; this is applied at start only, restart weft to change it"),
        })
    };
    if old.listeners.len() != new.listeners.len() {
        refuse(
            "listeners".to_string(),
            format!(
                "the number of listeners changed from {} to {}",
                old.listeners.len(),
                new.listeners.len()
            ),
        );
    }
    for (i, (o, n)) in old.listeners.iter().zip(&new.listeners).enumerate() {
        if o.name != n.name {
            refuse(
                format!("listeners[{i}].name"),
                format!("changed from {:?} to {:?}", o.name, n.name),
            );
        }
        if o.address != n.address {
            refuse(
                format!("listeners[{i}].address"),
                format!("changed from {} to {}", o.address, n.address),
            );
        }
        if o.limits != n.limits {
            refuse(format!("listeners[{i}].limits"), "changed".to_string());
        }
    }
    if old.admin != new.admin {
        refuse("admin".to_string(), "the admin address changed".to_string());
    }
    if old.demo_upstream != new.demo_upstream {
        refuse(
            "demo_upstream".to_string(),
            "the demo upstream address changed".to_string(),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The directory a file lives in (`.` for a bare name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests;
