//! `stamp_v2`: `stamp_v1` with `x-module-version: v2` (see stamp_v1/src/lib.rs).

const VERSION: &str = "v2";

include!("../../stamp_v1/src/stamp.rs");
