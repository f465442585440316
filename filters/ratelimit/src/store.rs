//! Buckets in shared data, updated with compare-and-swap so that every worker's VM (and
//! every filter instance with the same `domain`) counts against the same bucket.
//!
//! An update reads the value and its CAS token, computes the new value, and writes it
//! only if nobody wrote in between; on a conflict it reads again, up to a bounded number
//! of tries. A bucket that does not exist yet is written unconditionally (the ABI has no
//! "create if absent"): two workers creating the same bucket at the same instant may each
//! take a token from a fresh bucket, so a new key can admit one request per worker too
//! many, once.

use weft_sdk::proxy_wasm::hostcalls;
use weft_sdk::proxy_wasm::types::Status;

/// Where buckets live: the host's shared data, or a test double.
pub trait Store {
    /// The value and its CAS token, `None` when there is no value.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes `value` if the value's CAS token is still `cas` (0: unconditionally).
    /// `false` on a CAS mismatch.
    fn set(&self, key: &str, value: &[u8], cas: u32) -> bool;
}

/// The host's shared data (process-wide on Weft, shared by every worker).
#[derive(Debug, Clone, Copy, Default)]
pub struct SharedData;

impl Store for SharedData {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), cas)) => Some((value, cas.unwrap_or(0))),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> bool {
        let cas = (cas != 0).then_some(cas);
        !matches!(
            hostcalls::set_shared_data(key, Some(value), cas),
            Err(Status::CasMismatch)
        )
    }
}

/// Every try of an update met a concurrent write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contended;

/// Reads the value under `key`, computes `(new value, result)` with `f` and writes it back
/// with CAS, retrying on conflicts up to `tries` times.
pub fn update<S: Store + ?Sized, V: AsRef<[u8]>, T>(
    store: &S,
    key: &str,
    tries: u32,
    mut f: impl FnMut(Option<&[u8]>) -> (V, T),
) -> Result<T, Contended> {
    for _ in 0..tries.max(1) {
        let current = store.get(key);
        let (value, result) = f(current.as_ref().map(|(v, _)| v.as_slice()));
        let cas = current.map_or(0, |(_, cas)| cas);
        if store.set(key, value.as_ref(), cas) {
            return Ok(result);
        }
    }
    Err(Contended)
}
