//! The proxy-wasm test filters in tests/wasm-filters, built once per test process by
//! scripts/build-wasm.sh for both wasm targets.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const TARGETS: [&str; 2] = ["wasm32-unknown-unknown", "wasm32-wasip1"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The path of fixture `name` built for `target`.
pub fn fixture(name: &str, target: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new("bash")
            .arg(root().join("scripts/build-wasm.sh"))
            .current_dir(root())
            .status()
            .expect("run scripts/build-wasm.sh");
        assert!(status.success(), "building the wasm fixtures failed");
    });
    let path = root()
        .join("target/wasm-fixtures")
        .join(target)
        .join(format!("{name}.wasm"));
    assert!(path.is_file(), "no fixture at {}", path.display());
    path
}
