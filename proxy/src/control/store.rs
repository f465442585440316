//! The control plane's bundle store: archives on disk, content-addressed by sha256, and a
//! version history with the active version. Everything is written with write-then-rename,
//! so a crash or restart never leaves half a file and loses nothing that was acknowledged.
//!
//! ```text
//! DATA/bundles/<sha256>.tar.gz     each distinct archive once
//! DATA/state.json                  {"active": N, "versions": [{version, sha256, size, created_at_unix, note}]}
//! ```

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::wasm::cache::sha256_hex;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: u64,
    pub sha256: String,
    pub size: u64,
    pub created_at_unix: u64,
    /// What made this version: "push", or "rollback to N".
    pub note: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreState {
    /// The version proxies should run; 0 before the first push.
    pub active: u64,
    pub versions: Vec<VersionInfo>,
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    state: StoreState,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, String> {
        std::fs::create_dir_all(dir.join("bundles"))
            .map_err(|e| format!("{}: cannot create it: {e}", dir.display()))?;
        let state_file = dir.join("state.json");
        let state = match std::fs::read(&state_file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not a valid store state: {e}", state_file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoreState::default(),
            Err(e) => return Err(format!("{}: cannot read it: {e}", state_file.display())),
        };
        let store = Store {
            dir: dir.to_path_buf(),
            state,
        };
        for v in &store.state.versions {
            if !store.blob_path(&v.sha256).is_file() {
                return Err(format!(
                    "{}: version {} names bundle {} which is missing",
                    state_file.display(),
                    v.version,
                    v.sha256
                ));
            }
        }
        Ok(store)
    }

    pub fn state(&self) -> &StoreState {
        &self.state
    }

    pub fn get(&self, version: u64) -> Option<&VersionInfo> {
        self.state.versions.iter().find(|v| v.version == version)
    }

    pub fn active(&self) -> Option<&VersionInfo> {
        self.get(self.state.active)
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("bundles").join(format!("{sha256}.tar.gz"))
    }

    /// The archive of `version`.
    pub fn read(&self, version: u64) -> Option<Vec<u8>> {
        let info = self.get(version)?;
        std::fs::read(self.blob_path(&info.sha256)).ok()
    }

    /// Stores a (checked) archive as a new version and makes it active.
    pub fn push(&mut self, archive: &[u8]) -> Result<VersionInfo, String> {
        let sha256 = sha256_hex(archive);
        let blob = self.blob_path(&sha256);
        if !blob.is_file() {
            write_atomically(&blob, archive)?;
        }
        self.add_version(sha256, archive.len() as u64, "push".to_string())
    }

    /// Makes an earlier version's bundle active again, as a new version (so the history
    /// shows the rollback and proxies see a version change).
    pub fn rollback(&mut self, to: u64) -> Result<VersionInfo, String> {
        let Some(target) = self.get(to).cloned() else {
            return Err(format!("there is no version {to}"));
        };
        self.add_version(target.sha256, target.size, format!("rollback to {to}"))
    }

    fn add_version(
        &mut self,
        sha256: String,
        size: u64,
        note: String,
    ) -> Result<VersionInfo, String> {
        let info = VersionInfo {
            version: self.state.versions.last().map_or(1, |v| v.version + 1),
            sha256,
            size,
            created_at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            note,
        };
        let mut state = self.state.clone();
        state.versions.push(info.clone());
        state.active = info.version;
        let text = serde_json::to_vec_pretty(&state).map_err(|e| e.to_string())?;
        write_atomically(&self.dir.join("state.json"), &text)?;
        self.state = state;
        Ok(info)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: cannot write it: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_survive_a_restart_and_rollback_adds_a_version() {
        let dir = std::env::temp_dir().join(format!("weft-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir).unwrap();
        assert_eq!(store.state().active, 0);
        let v1 = store.push(b"one").unwrap();
        let v2 = store.push(b"two").unwrap();
        assert_eq!((v1.version, v2.version, store.state().active), (1, 2, 2));

        let mut store = Store::open(&dir).unwrap();
        assert_eq!(store.state().active, 2);
        assert_eq!(store.read(1).unwrap(), b"one");
        let v3 = store.rollback(1).unwrap();
        assert_eq!((v3.version, v3.sha256.as_str()), (3, v1.sha256.as_str()));
        assert_eq!(v3.note, "rollback to 1");
        assert_eq!(store.read(3).unwrap(), b"one");
        assert!(store.rollback(9).unwrap_err().contains("no version 9"));

        // A state naming a missing archive is refused at open, not served.
        std::fs::remove_file(store.blob_path(&v2.sha256)).unwrap();
        assert!(Store::open(&dir).unwrap_err().contains("which is missing"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
