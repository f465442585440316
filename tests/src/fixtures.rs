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

/// Runs one of the repository's build scripts, failing the test if it fails.
fn run_script(script: &str) {
    let status = Command::new("bash")
        .arg(root().join(script))
        .current_dir(root())
        .status()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(status.success(), "{script} failed");
}

/// The path of fixture `name` built for `target`.
pub fn fixture(name: &str, target: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| run_script("scripts/build-wasm.sh"));
    let path = root()
        .join("target/wasm-fixtures")
        .join(target)
        .join(format!("{name}.wasm"));
    assert!(path.is_file(), "no fixture at {}", path.display());
    path
}

/// The built-in filter or example module `lib` (`auth`, `router`, `hello_filter`, ...), as
/// scripts/build-filters.sh builds it into target/filters/ (run once per test process; it
/// is incremental and quick when nothing changed).
pub fn filter_module(lib: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| run_script("scripts/build-filters.sh"));
    let path = root().join("target/filters").join(format!("{lib}.wasm"));
    assert!(path.is_file(), "no filter module at {}", path.display());
    path
}
