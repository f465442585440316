//! Embeds the built-in filters (filters/*, built to wasm by scripts/build-filters.sh) into
//! the weft binary, so `module: builtin:auth` and the embedded default config need no files.
//!
//! The modules are read from `$WEFT_FILTERS_DIR`, else `<workspace>/target/filters`. A
//! module that is not there is left out (with a cargo warning): a weft built without them
//! serves a smaller default config and refuses `builtin:NAME` for them, saying how to build
//! them. scripts/run.sh and scripts/test.sh build them first.

use std::fmt::Write;
use std::path::PathBuf;

/// The built-in filters: (name in config, file in the filters dir).
const FILTERS: &[(&str, &str)] = &[
    ("router", "router.wasm"),
    ("ratelimit", "ratelimit.wasm"),
    ("auth", "auth.wasm"),
    ("telemetry", "telemetry.wasm"),
];

fn main() {
    println!("cargo:rerun-if-env-changed=WEFT_FILTERS_DIR");
    let dir = std::env::var_os("WEFT_FILTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
            manifest.parent().unwrap().join("target").join("filters")
        });
    // Watch the directory (made if missing, so cargo can compare its mtime) and each file.
    let _ = std::fs::create_dir_all(&dir);
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut out =
        String::from("/// The built-in filters embedded at build time: (name, module bytes).\n");
    out.push_str("pub const EMBEDDED: &[(&str, &[u8])] = &[\n");
    let mut missing = Vec::new();
    for (name, file) in FILTERS {
        let path = dir.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_file() {
            let _ = writeln!(
                out,
                "    ({name:?}, include_bytes!({:?})),",
                path.display().to_string()
            );
        } else {
            missing.push(*name);
        }
    }
    out.push_str("];\n\n/// Built-in filters that were not built when this weft was.\n");
    let _ = writeln!(out, "pub const MISSING: &[&str] = &{missing:?};");
    if !missing.is_empty() {
        println!(
            "cargo:warning=built without the built-in filters {missing:?} (not in {}); run scripts/build-filters.sh first",
            dir.display()
        );
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("builtin_filters.rs"), out).unwrap();
}
