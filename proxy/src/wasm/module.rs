//! Loading a filter module: read it, check its sha256 pin, compile it (or take it from the
//! cache), check that it is a proxy-wasm module whose every import weft provides, and
//! resolve those imports once (`InstancePre`).

use std::path::{Path, PathBuf};

use wasmtime::{ExternType, InstancePre, Module};

use super::cache::{CacheOutcome, sha256_hex};
use super::host::WasmRuntime;
use super::state::HostState;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiVersion {
    V0_2_0,
    V0_2_1,
}

impl AbiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            AbiVersion::V0_2_0 => "0.2.0",
            AbiVersion::V0_2_1 => "0.2.1",
        }
    }
}

/// A compiled module, ready to instantiate.
pub struct LoadedModule {
    pub path: PathBuf,
    pub sha256: String,
    pub abi: AbiVersion,
    pub module: Module,
    pub pre: InstancePre<HostState>,
    pub cache: CacheOutcome,
}

impl std::fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModule")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("abi", &self.abi)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("cannot read module {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("module {path} has sha256 {actual}, but the config pins {expected}")]
    PinMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("module {path} is not valid WebAssembly: {message}")]
    Compile { path: PathBuf, message: String },
    #[error(
        "module {path} is not a proxy-wasm module: it exports neither proxy_abi_version_0_2_1 nor proxy_abi_version_0_2_0"
    )]
    NotProxyWasm { path: PathBuf },
    #[error("module {path} imports {module}::{name} ({kind}), which weft does not provide")]
    UnknownImport {
        path: PathBuf,
        module: String,
        name: String,
        kind: &'static str,
    },
    #[error("module {path} cannot be linked: {message}")]
    Link { path: PathBuf, message: String },
}

/// Loads the module at `path`, checking it against `pin` (a sha256 in hex) when given.
pub fn load(
    runtime: &WasmRuntime,
    path: &Path,
    pin: Option<&str>,
) -> Result<LoadedModule, ModuleError> {
    let path_buf = path.to_path_buf();
    let builtin = path
        .to_str()
        .and_then(|p| p.strip_prefix(super::builtin::PREFIX));
    let wasm = match builtin {
        Some(name) => super::builtin::module(name)
            .ok_or_else(|| ModuleError::Read {
                path: path_buf.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such built-in filter",
                ),
            })?
            .to_vec(),
        None => std::fs::read(path).map_err(|source| ModuleError::Read {
            path: path_buf.clone(),
            source,
        })?,
    };
    let sha256 = sha256_hex(&wasm);
    if let Some(expected) = pin {
        if !expected.eq_ignore_ascii_case(&sha256) {
            return Err(ModuleError::PinMismatch {
                path: path_buf,
                expected: expected.to_string(),
                actual: sha256,
            });
        }
    }
    let (module, cache) = runtime
        .cache
        .load(&runtime.engine, &wasm, &sha256)
        .map_err(|e| ModuleError::Compile {
            path: path_buf.clone(),
            message: format!("{e:#}"),
        })?;
    let abi = abi_version(&module).ok_or_else(|| ModuleError::NotProxyWasm {
        path: path_buf.clone(),
    })?;
    for import in module.imports() {
        let kind = match import.ty() {
            ExternType::Func(_) => "function",
            ExternType::Memory(_) => "memory",
            ExternType::Table(_) => "table",
            ExternType::Global(_) => "global",
            ExternType::Tag(_) => "tag",
        };
        let known = runtime
            .provided
            .iter()
            .any(|(m, n)| *m == import.module() && *n == import.name());
        if !known {
            return Err(ModuleError::UnknownImport {
                path: path_buf,
                module: import.module().to_string(),
                name: import.name().to_string(),
                kind,
            });
        }
    }
    let pre = runtime
        .linker
        .instantiate_pre(&module)
        .map_err(|e| ModuleError::Link {
            path: path_buf.clone(),
            message: format!("{e:#}"),
        })?;
    Ok(LoadedModule {
        path: path_buf,
        sha256,
        abi,
        module,
        pre,
        cache,
    })
}

fn abi_version(module: &Module) -> Option<AbiVersion> {
    let mut version = None;
    for export in module.exports() {
        match export.name() {
            "proxy_abi_version_0_2_1" => return Some(AbiVersion::V0_2_1),
            "proxy_abi_version_0_2_0" => version = Some(AbiVersion::V0_2_0),
            _ => {}
        }
    }
    version
}
