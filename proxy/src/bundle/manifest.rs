//! `manifest.json`: what a bundle holds, with each module's sha256.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The manifest format this weft writes and reads.
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: u32,
    /// Every module of the bundle, by its path relative to the bundle root.
    pub modules: BTreeMap<String, ModuleEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleEntry {
    /// Lower-case hex sha256 of the module's bytes.
    pub sha256: String,
    /// A JSON Schema (path relative to the bundle root) that the `config` of every filter
    /// using this module must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

impl Manifest {
    /// Reads and checks a manifest file; the error says what is wrong.
    pub fn read(path: &Path) -> Result<Manifest, String> {
        let text = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
        let manifest: Manifest =
            serde_json::from_slice(&text).map_err(|e| format!("not a valid manifest: {e}"))?;
        if manifest.format != FORMAT {
            return Err(format!(
                "format {} is not one this weft reads (it reads {FORMAT})",
                manifest.format
            ));
        }
        for (module, entry) in &manifest.modules {
            let hex =
                entry.sha256.len() == 64 && entry.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex {
                return Err(format!("modules.{module}.sha256 is not 64 hex digits"));
            }
        }
        Ok(manifest)
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let manifest = Manifest {
            format: FORMAT,
            ..self.clone()
        };
        let text = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}
