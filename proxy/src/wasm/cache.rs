//! The on-disk cache of compiled modules, so restarts and reloads do not recompile.
//!
//! An entry is named by the module's sha256 and the engine's compatibility hash (wasmtime
//! version and every setting that changes the compiled code). Its file holds a sha256 of
//! the serialised code followed by the code. A missing, stale, truncated or corrupt entry
//! is compiled again and rewritten; an entry is only deserialised after its checksum matched.
//!
//! In front of the disk sits a small in-memory table of the modules this process compiled
//! or loaded, by sha256, so a reload that keeps a module (or goes back to one it had a
//! moment ago) neither compiles nor reads the disk.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

#[derive(Debug)]
pub struct ModuleCache {
    dir: Option<PathBuf>,
    /// Recently used modules, by sha256, most recent last.
    memory: Mutex<Vec<(String, Module)>>,
}

/// How many compiled modules the in-memory table keeps.
const MEMORY_ENTRIES: usize = 32;

/// Where a module's code came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Already compiled in this process.
    Memory,
    /// Read from the on-disk cache.
    Hit,
    Compiled,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Memory => "memory",
            CacheOutcome::Hit => "disk",
            CacheOutcome::Compiled => "compiled",
        }
    }
}

impl ModuleCache {
    /// A cache in `dir` (created when needed), or none.
    pub fn new(dir: Option<PathBuf>) -> Self {
        ModuleCache {
            dir,
            memory: Mutex::default(),
        }
    }

    fn remember(&self, module_hash: &str, module: &Module) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.retain(|(hash, _)| hash != module_hash);
        if memory.len() >= MEMORY_ENTRIES {
            memory.remove(0);
        }
        memory.push((module_hash.to_string(), module.clone()));
    }

    fn recall(&self, module_hash: &str) -> Option<Module> {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let found = memory.iter().find(|(hash, _)| hash == module_hash);
        found.map(|(_, module)| module.clone())
    }

    fn entry(&self, engine: &Engine, module_hash: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Some(dir.join(format!("{module_hash}-{:016x}.cwasm", hasher.finish())))
    }

    /// The compiled module for `wasm` (whose sha256 is `module_hash`).
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        module_hash: &str,
    ) -> wasmtime::Result<(Module, CacheOutcome)> {
        if let Some(module) = self.recall(module_hash) {
            self.remember(module_hash, &module);
            return Ok((module, CacheOutcome::Memory));
        }
        let entry = self.entry(engine, module_hash);
        if let Some(path) = &entry {
            if let Some(module) = read_entry(engine, path) {
                self.remember(module_hash, &module);
                return Ok((module, CacheOutcome::Hit));
            }
        }
        let module = Module::new(engine, wasm)?;
        self.remember(module_hash, &module);
        if let Some(path) = &entry {
            if let Err(error) = write_entry(path, &module) {
                tracing::warn!(path = %path.display(), %error, "cannot write the compiled-module cache");
            }
        }
        Ok((module, CacheOutcome::Compiled))
    }
}

fn read_entry(engine: &Engine, path: &Path) -> Option<Module> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 32 {
        return None;
    }
    let (sum, code) = bytes.split_at(32);
    if Sha256::digest(code).as_slice() != sum {
        tracing::warn!(path = %path.display(), "compiled-module cache entry is corrupt; compiling again");
        return None;
    }
    deserialize(engine, code)
        .map_err(|error| {
            tracing::warn!(path = %path.display(), %error, "compiled-module cache entry is unusable; compiling again")
        })
        .ok()
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Module> {
    // SAFETY: wasmtime requires the bytes to come from `Module::serialize` of a compatible
    // engine. They were written by `write_entry` below, the entry name carries the engine's
    // compatibility hash, wasmtime checks its own header and version again, and the sha256
    // over the bytes was verified just before this call, so a truncated or altered file is
    // never deserialised.
    unsafe { Module::deserialize(engine, code) }
}

fn write_entry(path: &Path, module: &Module) -> std::io::Result<()> {
    let code = module.serialize().map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = Vec::with_capacity(32 + code.len());
    bytes.extend_from_slice(&Sha256::digest(&code));
    bytes.extend_from_slice(&code);
    // Write then rename, so a reader never sees half a file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAT: &str = r#"(module (func (export "f") (result i32) i32.const 7))"#;

    #[test]
    fn compiles_once_then_hits_and_survives_corruption() {
        let dir = std::env::temp_dir().join(format!("weft-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = Engine::default();
        let cache = ModuleCache::new(Some(dir.clone()));
        let wasm = WAT.as_bytes().to_vec();
        let hash = sha256_hex(&wasm);
        assert_eq!(
            cache.load(&engine, &wasm, &hash).unwrap().1,
            CacheOutcome::Compiled
        );
        // This process already has it; a new process (a fresh cache) reads the disk.
        assert_eq!(
            cache.load(&engine, &wasm, &hash).unwrap().1,
            CacheOutcome::Memory
        );
        let cache = || ModuleCache::new(Some(dir.clone()));
        assert_eq!(
            cache().load(&engine, &wasm, &hash).unwrap().1,
            CacheOutcome::Hit
        );
        // Corrupt the entry: it is compiled again, not trusted.
        let entry = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&entry, &bytes).unwrap();
        assert_eq!(
            cache().load(&engine, &wasm, &hash).unwrap().1,
            CacheOutcome::Compiled
        );
        std::fs::write(&entry, b"short").unwrap();
        assert_eq!(
            cache().load(&engine, &wasm, &hash).unwrap().1,
            CacheOutcome::Compiled
        );
        assert_eq!(
            cache().load(&engine, &wasm, &hash).unwrap().1,
            CacheOutcome::Hit
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
