//! The control plane: `weft control` keeps bundles and pushes them to proxies
//! ([`server`], [`store`]); `weft run --control-plane URL` subscribes and applies them
//! through the reload path ([`client`]); `weft push` and `weft rollback` are the
//! operators' commands ([`ops`]). See docs/control-plane.md.

pub mod api;
pub mod auth;
pub mod client;
pub mod ops;
pub mod server;
pub mod store;

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The header a proxy names itself with.
pub const NODE_HEADER: &str = "x-weft-node";

/// A proxy's report on one version: ACK (no error) or NACK.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Checks an archive as a proxy would load it: unpacked and verified against its
/// manifest, config valid, filter configs valid for their schemas, every filter loaded
/// (compiled, `on_vm_start`, `on_configure`). `work_dir` holds the unpacked copy.
pub fn check_bundle(archive: &[u8], work_dir: &Path) -> Result<(), Vec<String>> {
    let sha = crate::wasm::cache::sha256_hex(archive);
    let file = work_dir.join(format!("{sha}.tar.gz"));
    std::fs::create_dir_all(work_dir)
        .and_then(|()| std::fs::write(&file, archive))
        .map_err(|e| vec![format!("cannot keep the bundle for checking: {e}")])?;
    let result = crate::bundle::open(&file, &work_dir.join("unpacked"))
        .and_then(|opened| crate::bundle::load_config(&opened, "bundle"))
        .and_then(crate::snapshot::check_filters);
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(work_dir.join("unpacked").join(&sha));
    result
        .map(|_| ())
        .map_err(|errors| errors.0.iter().map(ToString::to_string).collect())
}
