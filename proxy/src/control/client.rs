//! A proxy's subscription to the control plane (`weft run --control-plane URL --node-id
//! ID`).
//!
//! The proxy long-polls `GET /v1/watch?have=N` (held up to 30 s). When the control plane
//! offers another version, the proxy downloads it, checks its sha256, and applies it
//! through the same reload path as a file change; then it reports ACK, or NACK with the
//! error (and asks not to be offered that version again until another is active). The last
//! applied bundle is kept in the cache directory (`current.tar.gz` + `current.json`), so a
//! restart serves it even while the control plane is down; a bundle that failed is never
//! written there. Errors reaching the control plane are retried with exponential backoff
//! (200 ms up to 10 s, with jitter) while the proxy keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Report;
use super::api::Api;
use super::store::VersionInfo;
use crate::reload::{ConfigSource, Reloader};

/// How long one watch request is held by the control plane.
const WATCH_SECONDS: u64 = 30;
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What `current.json` records about the cached bundle.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Current {
    version: u64,
    sha256: String,
}

#[derive(Debug)]
pub struct Subscriber {
    api: Api,
    cache: PathBuf,
    node: String,
}

/// Exponential backoff with jitter.
struct Backoff {
    next: Duration,
    failures: u32,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: BACKOFF_MIN,
            failures: 0,
        }
    }

    /// Logs the failure (the first in a row as a warning) and sleeps.
    async fn failed(&mut self, what: &str, error: &str) {
        self.failures += 1;
        let jitter = 0.5 + fastrand::f64();
        let wait = self.next.mul_f64(jitter);
        if self.failures == 1 {
            tracing::warn!(
                error,
                retry_in_ms = wait.as_millis() as u64,
                "{what}; serving the last applied config meanwhile"
            );
        } else {
            tracing::debug!(
                error,
                failures = self.failures,
                retry_in_ms = wait.as_millis() as u64,
                "{what}"
            );
        }
        tokio::time::sleep(wait).await;
        self.next = (self.next * 2).min(BACKOFF_MAX);
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                after_failures = self.failures,
                "control plane reachable again"
            );
        }
        *self = Backoff::new();
    }
}

impl Subscriber {
    /// `cache`: where this node keeps its last applied bundle.
    pub fn new(api: Api, node: String, cache: PathBuf) -> Result<Subscriber, String> {
        std::fs::create_dir_all(&cache)
            .map_err(|e| format!("bundle cache {}: cannot create it: {e}", cache.display()))?;
        Ok(Subscriber { api, cache, node })
    }

    /// The default cache directory for `node`: `$XDG_CACHE_HOME/weft/control/<node>`.
    pub fn default_cache(node: &str) -> PathBuf {
        crate::bundle::default_unpack_dir()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir)
            .join("control")
            .join(node)
    }

    /// The config source serving the last applied bundle.
    pub fn source(&self) -> ConfigSource {
        ConfigSource::Bundle {
            path: self.current_path(),
            unpack_dir: self.cache.join("unpacked"),
        }
    }

    fn current_path(&self) -> PathBuf {
        self.cache.join("current.tar.gz")
    }

    fn current(&self) -> Option<Current> {
        let bytes = std::fs::read(self.cache.join("current.json")).ok()?;
        let current: Current = serde_json::from_slice(&bytes).ok()?;
        self.current_path().is_file().then_some(current)
    }

    /// Whether a bundle was applied before (and so can be served at once).
    pub fn has_cached(&self) -> bool {
        self.current().is_some()
    }

    /// Waits for the control plane's first version that loads, and caches it; for a proxy
    /// that has never applied one (its listeners come from the bundle).
    pub async fn bootstrap(&self) {
        let mut refused = None;
        let mut backoff = Backoff::new();
        tracing::info!(control_plane = self.api.base(), node = %self.node, "no cached bundle: waiting for the control plane's first version");
        loop {
            let (offered, candidate) = self.next_offer(0, refused, &mut backoff).await;
            let source = self.candidate_source(&candidate);
            let loaded = match tokio::task::spawn_blocking(move || source.load()).await {
                Ok(loaded) => loaded.map(|_| ()),
                Err(join) => {
                    tracing::error!(%join, "checking the bundle failed");
                    continue;
                }
            };
            if let Err(errors) = &loaded {
                tracing::error!(
                    version = offered.version,
                    "the control plane's bundle is refused: {errors}"
                );
            }
            if self.settle(&candidate, &offered, loaded).await {
                return;
            }
            refused = Some(offered.version);
        }
    }

    /// Follows the control plane for as long as the process runs, applying each new
    /// version through `reloader`.
    pub async fn run(self: Arc<Self>, reloader: Arc<Reloader>) {
        let mut refused = None;
        let mut backoff = Backoff::new();
        loop {
            let have = self.current().map_or(0, |c| c.version);
            let (offered, candidate) = self.next_offer(have, refused, &mut backoff).await;
            let trigger = format!("control plane version {}", offered.version);
            let applied = reloader
                .reload_from(&self.candidate_source(&candidate), &trigger)
                .await
                .map(|_| ());
            refused =
                (!self.settle(&candidate, &offered, applied).await).then_some(offered.version);
        }
    }

    /// Long-polls until the control plane offers a version other than `have` and
    /// `refused`, and downloads it; errors are retried with `backoff`.
    async fn next_offer(
        &self,
        have: u64,
        refused: Option<u64>,
        backoff: &mut Backoff,
    ) -> (VersionInfo, PathBuf) {
        loop {
            let offered = match self.watch(have, refused).await {
                Ok(Some(info)) => info,
                Ok(None) => {
                    backoff.succeeded();
                    continue;
                }
                Err(error) => {
                    backoff
                        .failed("cannot reach the control plane", &error)
                        .await;
                    continue;
                }
            };
            backoff.succeeded();
            match self.download(&offered).await {
                Ok(candidate) => return (offered, candidate),
                Err(error) => backoff.failed("cannot download the bundle", &error).await,
            }
        }
    }

    /// The config source of a downloaded, not yet applied bundle.
    fn candidate_source(&self, candidate: &Path) -> ConfigSource {
        ConfigSource::Bundle {
            path: candidate.to_path_buf(),
            unpack_dir: self.cache.join("unpacked"),
        }
    }

    /// After trying a candidate: keeps it as the cached bundle and reports ACK, or drops it
    /// and reports NACK with the errors. True when it was applied.
    async fn settle(
        &self,
        candidate: &Path,
        offered: &VersionInfo,
        outcome: Result<(), crate::config::ConfigErrors>,
    ) -> bool {
        match outcome {
            Ok(()) => {
                self.keep(candidate, offered);
                self.report(offered.version, None).await;
                true
            }
            Err(errors) => {
                let _ = std::fs::remove_file(candidate);
                self.report(offered.version, Some(errors.to_string())).await;
                false
            }
        }
    }

    /// One long poll: the offered version, or None when the wait ended without one.
    async fn watch(&self, have: u64, refused: Option<u64>) -> Result<Option<VersionInfo>, String> {
        let mut path = format!("/v1/watch?have={have}&wait={WATCH_SECONDS}");
        if let Some(v) = refused {
            path.push_str(&format!("&refused={v}"));
        }
        let answer = self
            .api
            .get(&path, Duration::from_secs(WATCH_SECONDS + 15))
            .await?;
        match answer.status {
            200 => serde_json::from_slice(&answer.body)
                .map(Some)
                .map_err(|e| format!("the control plane's answer is not a version: {e}")),
            204 => Ok(None),
            status => Err(format!(
                "the control plane answered {status}: {}",
                answer.text()
            )),
        }
    }

    /// Downloads `info`'s archive to `candidate.tar.gz`, checking its sha256.
    async fn download(&self, info: &VersionInfo) -> Result<PathBuf, String> {
        let answer = self
            .api
            .get(
                &format!("/v1/versions/{}/bundle", info.version),
                Duration::from_secs(300),
            )
            .await?;
        if answer.status != 200 {
            return Err(format!(
                "downloading version {} answered {}: {}",
                info.version,
                answer.status,
                answer.text()
            ));
        }
        let sha = crate::wasm::cache::sha256_hex(&answer.body);
        if sha != info.sha256 {
            return Err(format!(
                "version {} downloaded with sha256 {sha}, expected {}",
                info.version, info.sha256
            ));
        }
        let candidate = self.cache.join("candidate.tar.gz");
        std::fs::write(&candidate, &answer.body)
            .map_err(|e| format!("{}: {e}", candidate.display()))?;
        Ok(candidate)
    }

    /// Makes an applied candidate the cached current bundle.
    fn keep(&self, candidate: &Path, info: &VersionInfo) {
        let current = Current {
            version: info.version,
            sha256: info.sha256.clone(),
        };
        let kept = std::fs::rename(candidate, self.current_path()).and_then(|()| {
            let tmp = self.cache.join("current.json.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&current).unwrap_or_default())?;
            std::fs::rename(&tmp, self.cache.join("current.json"))
        });
        if let Err(error) = kept {
            tracing::error!(%error, cache = %self.cache.display(), "cannot cache the applied bundle; a restart will not have it");
        }
    }

    /// Reports ACK (no error) or NACK; retried a few times, then given up (the control
    /// plane sees the node's state at its next watch).
    async fn report(&self, version: u64, error: Option<String>) {
        let report = Report { version, error };
        for attempt in 0..5u32 {
            match self.api.post_json("/v1/report", &report).await {
                Ok(answer) if answer.status == 200 => return,
                Ok(answer) => {
                    tracing::warn!(status = answer.status, body = %answer.text(), "the control plane did not take the report");
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "report failed; retrying");
                    tokio::time::sleep(BACKOFF_MIN * 2u32.pow(attempt)).await;
                }
            }
        }
    }
}
