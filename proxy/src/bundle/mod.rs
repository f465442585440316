//! Filter bundles: a config and the modules it names, shipped as one unit.
//!
//! A bundle is a directory, or a `.tar.gz` of one, holding:
//! - `weft.yaml`: the config; module paths are relative to the bundle's root and must stay
//!   inside it (or be `builtin:` modules);
//! - the modules it names;
//! - `manifest.json` ([`Manifest`]): the sha256 of every module, and optionally a JSON
//!   Schema per module that each filter's `config` using that module must satisfy;
//! - the schemas.
//!
//! `weft bundle build DIR -o FILE` checks everything `weft validate` does (plus the
//! schemas), writes the manifest and packs the archive; `weft bundle inspect FILE` shows
//! and verifies one; `weft run --bundle FILE|DIR` serves one (and reloads when it
//! changes). A bundle is verified each time it is opened: a module whose bytes do not
//! match the manifest, a module the config names but the manifest does not list, or a
//! filter config its schema refuses, rejects the whole bundle.

pub mod archive;
mod manifest;

use std::path::{Component, Path, PathBuf};

pub use manifest::{Manifest, ModuleEntry};

use crate::config::{self, Config, ConfigError, ConfigErrors};
use crate::wasm::cache::sha256_hex;

/// The config file of a bundle.
pub const CONFIG_FILE: &str = "weft.yaml";
/// The manifest file of a bundle.
pub const MANIFEST_FILE: &str = "manifest.json";

/// A bundle opened from disk: its root directory (an archive is unpacked first) and its
/// verified manifest.
#[derive(Clone, Debug)]
pub struct Opened {
    pub root: PathBuf,
    pub manifest: Manifest,
    /// The sha256 of the archive, when the bundle came as one.
    pub archive_sha256: Option<String>,
}

/// An error about a bundle, as a config error naming the bundle (and the file in it).
fn error(source: &str, path: impl Into<String>, message: impl Into<String>) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        source: source.to_string(),
        location: None,
        path: path.into(),
        message: message.into(),
    }])
}

/// Whether `path` is a bundle archive rather than a bundle directory.
pub fn is_archive(path: &Path) -> bool {
    !path.is_dir()
}

/// Opens the bundle at `path` (a directory, or a `.tar.gz` unpacked into
/// `unpack_dir/<sha256 of the archive>/`) and verifies its manifest.
pub fn open(path: &Path, unpack_dir: &Path) -> Result<Opened, ConfigErrors> {
    let source = path.display().to_string();
    let (root, archive_sha256) = if is_archive(path) {
        let bytes = std::fs::read(path)
            .map_err(|e| error(&source, "", format!("cannot read the bundle: {e}")))?;
        let sha = sha256_hex(&bytes);
        let root = unpack_dir.join(&sha);
        if !root.join(MANIFEST_FILE).is_file() {
            archive::unpack(&bytes, &root)
                .map_err(|e| error(&source, "", format!("cannot unpack the bundle: {e}")))?;
        }
        (root, Some(sha))
    } else {
        (path.to_path_buf(), None)
    };
    let manifest =
        Manifest::read(&root.join(MANIFEST_FILE)).map_err(|e| error(&source, MANIFEST_FILE, e))?;
    for (module, entry) in &manifest.modules {
        let file = inside(&root, module).map_err(|e| error(&source, MANIFEST_FILE, e))?;
        let bytes = std::fs::read(&file).map_err(|e| {
            error(
                &source,
                MANIFEST_FILE,
                format!("module {module}: cannot read it: {e}"),
            )
        })?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(&entry.sha256) {
            return Err(error(
                &source,
                MANIFEST_FILE,
                format!(
                    "module {module} has sha256 {actual}, but the manifest says {}",
                    entry.sha256
                ),
            ));
        }
    }
    Ok(Opened {
        root,
        manifest,
        archive_sha256,
    })
}

/// Loads an opened bundle's config: validated, every module pinned to the manifest's
/// sha256, every filter config checked against its module's schema.
pub fn load_config(bundle: &Opened, source: &str) -> Result<Config, ConfigErrors> {
    let mut config = config::load_file(&bundle.root.join(CONFIG_FILE)).map_err(|errors| {
        ConfigErrors(
            errors
                .0
                .into_iter()
                .map(|e| ConfigError {
                    source: format!("{source}:{CONFIG_FILE}"),
                    ..e
                })
                .collect(),
        )
    })?;
    config.source = format!("{source}:{CONFIG_FILE}");
    let mut errors = Vec::new();
    for (i, listener) in config.listeners.iter_mut().enumerate() {
        for (j, spec) in listener.filters.iter_mut().enumerate() {
            let path = format!("listeners[{i}].filters[{j}].module");
            let name = match module_name(&bundle.root, &spec.module, "the bundle") {
                Ok(Some(name)) => name,
                Ok(None) => continue,
                Err(message) => {
                    errors.push(ConfigError {
                        source: config.source.clone(),
                        location: None,
                        path,
                        message,
                    });
                    continue;
                }
            };
            let Some(entry) = bundle.manifest.modules.get(&name) else {
                errors.push(ConfigError {
                    source: config.source.clone(),
                    location: None,
                    path,
                    message: format!("module {name} is not listed in {MANIFEST_FILE}"),
                });
                continue;
            };
            match &spec.sha256 {
                Some(pin) if !pin.eq_ignore_ascii_case(&entry.sha256) => {
                    errors.push(ConfigError {
                        source: config.source.clone(),
                        location: None,
                        path: format!("listeners[{i}].filters[{j}].sha256"),
                        message: format!(
                            "pins {pin}, but {MANIFEST_FILE} says {} for {name}",
                            entry.sha256
                        ),
                    });
                    continue;
                }
                _ => spec.sha256 = Some(entry.sha256.clone()),
            }
            if let Some(schema) = &entry.schema {
                let schema_path = format!("listeners[{i}].filters[{j}].config");
                if let Err(problems) = check_schema(&bundle.root, schema, &spec.plugin_config) {
                    for message in problems {
                        errors.push(ConfigError {
                            source: config.source.clone(),
                            location: None,
                            path: schema_path.clone(),
                            message: format!("{message} (schema {schema})"),
                        });
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Checks a filter's configuration bytes against the schema file `schema` (relative to
/// the bundle root). Each problem names the place in the config it is about.
fn check_schema(root: &Path, schema: &str, config: &[u8]) -> Result<(), Vec<String>> {
    let file = inside(root, schema).map_err(|e| vec![e])?;
    let text = std::fs::read(&file).map_err(|e| vec![format!("cannot read {schema}: {e}")])?;
    let schema_json: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| vec![format!("{schema} is not JSON: {e}")])?;
    let validator = jsonschema::validator_for(&schema_json)
        .map_err(|e| vec![format!("{schema} is not a valid JSON Schema: {e}")])?;
    // A config that is not JSON is passed to the filter as a string.
    let instance = serde_json::from_slice(config).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(config).into_owned())
    });
    let problems: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("at {at}: {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `root/name`, refusing names that are absolute or climb out of `root`.
pub fn inside(root: &Path, name: &str) -> Result<PathBuf, String> {
    let relative = Path::new(name);
    let safe = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if name.is_empty() || !safe {
        return Err(format!("{name:?} is not a relative path inside the bundle"));
    }
    Ok(root.join(relative))
}

/// A filter module's name in the bundle at `root` (`where_` names the bundle in the error):
/// None for a built-in module, an error for a module outside the bundle.
fn module_name(root: &Path, module: &Path, where_: &str) -> Result<Option<String>, String> {
    if crate::wasm::builtin::is_builtin(module) {
        return Ok(None);
    }
    relative_name(root, module).map(Some).ok_or_else(|| {
        format!(
            "{} is outside {where_}; a bundle's modules must be inside it",
            module.display()
        )
    })
}

/// The path of `file` relative to `root`, with `/` separators, if it is inside it.
fn relative_name(root: &Path, file: &Path) -> Option<String> {
    let root = std::fs::canonicalize(root).ok()?;
    let file = std::fs::canonicalize(file).ok()?;
    let relative = file.strip_prefix(&root).ok()?;
    let parts: Vec<_> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Some(parts.join("/"))
}

/// What `weft bundle build` did.
#[derive(Debug)]
pub struct Built {
    pub manifest: Manifest,
    pub archive_sha256: String,
    pub bytes: usize,
}

/// Builds a bundle from the directory `dir` (holding `weft.yaml`, the modules and the
/// schemas): computes the module hashes, finds each module's schema (`NAME.schema.json`
/// next to `NAME.wasm`), writes `dir/manifest.json`, checks the result as `weft run
/// --bundle` would (`check` loads the filters as a start would), and packs it into `out`.
pub fn build(
    dir: &Path,
    out: &Path,
    check: impl Fn(Config) -> Result<Config, ConfigErrors>,
) -> Result<Built, ConfigErrors> {
    let source = dir.display().to_string();
    let config = config::load_file(&dir.join(CONFIG_FILE))?;
    let mut manifest = Manifest::default();
    let mut errors = Vec::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        for (j, spec) in listener.filters.iter().enumerate() {
            let name = match module_name(dir, &spec.module, &source) {
                Ok(Some(name)) => name,
                Ok(None) => continue,
                Err(message) => {
                    errors.push(ConfigError {
                        source: config.source.clone(),
                        location: None,
                        path: format!("listeners[{i}].filters[{j}].module"),
                        message,
                    });
                    continue;
                }
            };
            let bytes = std::fs::read(&spec.module)
                .map_err(|e| error(&source, &name, format!("cannot read the module: {e}")))?;
            let schema_name = match name.strip_suffix(".wasm") {
                Some(stem) => format!("{stem}.schema.json"),
                None => format!("{name}.schema.json"),
            };
            let schema = dir.join(&schema_name).is_file().then_some(schema_name);
            manifest.modules.insert(
                name,
                ModuleEntry {
                    sha256: sha256_hex(&bytes),
                    schema,
                },
            );
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    manifest
        .write(&dir.join(MANIFEST_FILE))
        .map_err(|e| error(&source, MANIFEST_FILE, format!("cannot write it: {e}")))?;
    let opened = Opened {
        root: dir.to_path_buf(),
        manifest: manifest.clone(),
        archive_sha256: None,
    };
    check(load_config(&opened, &source)?)?;
    let mut files = vec![CONFIG_FILE.to_string(), MANIFEST_FILE.to_string()];
    for (module, entry) in &manifest.modules {
        files.push(module.clone());
        files.extend(entry.schema.clone());
    }
    let bytes = archive::pack(dir, &files)
        .map_err(|e| error(&source, "", format!("cannot pack the bundle: {e}")))?;
    std::fs::write(out, &bytes).map_err(|e| {
        error(
            &out.display().to_string(),
            "",
            format!("cannot write it: {e}"),
        )
    })?;
    Ok(Built {
        manifest,
        archive_sha256: sha256_hex(&bytes),
        bytes: bytes.len(),
    })
}

/// Where archives are unpacked by default: `$XDG_CACHE_HOME/weft/bundles` or
/// `~/.cache/weft/bundles`, else the temp dir.
pub fn default_unpack_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("weft")
        .join("bundles")
}

#[cfg(test)]
mod tests;
