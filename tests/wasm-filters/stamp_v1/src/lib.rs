//! `stamp_v1`: adds `x-module-version: v1` to each request (as the upstream sees it) and
//! to each response. With `stamp_v2` (the same code, `v2`), the reload tests swap one
//! module file for the other and tell from each response which version served it.

const VERSION: &str = "v1";

include!("stamp.rs");
