//! Shared data: a process-wide key-value store that every VM on every worker sees, with
//! compare-and-swap as in Envoy. A value's CAS token starts at 1 and grows with each write;
//! a write with token 0 is unconditional. The store is split into shards by key so that
//! workers touching different keys do not wait on each other.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use bytes::Bytes;

const SHARDS: usize = 16;

#[derive(Debug)]
pub struct SharedData {
    hasher: RandomState,
    shards: [Mutex<HashMap<String, (Bytes, u32)>>; SHARDS],
}

impl Default for SharedData {
    fn default() -> Self {
        SharedData {
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }
}

/// A write lost the race: the value's token is no longer the one given.
#[derive(Debug, PartialEq, Eq)]
pub struct CasMismatch;

impl SharedData {
    fn shard(&self, key: &str) -> &Mutex<HashMap<String, (Bytes, u32)>> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// The value and its CAS token.
    pub fn get(&self, key: &str) -> Option<(Bytes, u32)> {
        self.shard(key)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Writes `value` if `cas` is 0 or the current token.
    pub fn set(&self, key: &str, value: Bytes, cas: u32) -> Result<(), CasMismatch> {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        match shard.get_mut(key) {
            Some((current, token)) => {
                if cas != 0 && cas != *token {
                    return Err(CasMismatch);
                }
                *current = value;
                *token = token.wrapping_add(1).max(1);
            }
            None => {
                shard.insert(key.to_string(), (value, 1));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_swap() {
        let data = SharedData::default();
        assert_eq!(data.get("k"), None);
        data.set("k", Bytes::from_static(b"1"), 0).unwrap();
        let (value, cas) = data.get("k").unwrap();
        assert_eq!((value.as_ref(), cas), (&b"1"[..], 1));
        data.set("k", Bytes::from_static(b"2"), cas).unwrap();
        assert_eq!(
            data.set("k", Bytes::from_static(b"3"), cas),
            Err(CasMismatch)
        );
        assert_eq!(data.get("k").unwrap(), (Bytes::from_static(b"2"), 2));
    }

    #[test]
    fn concurrent_cas_increments_lose_nothing() {
        let data = std::sync::Arc::new(SharedData::default());
        // The key exists before the race: a missing key reads as token 0, and a write with
        // token 0 is unconditional (Envoy's rule), so racing creators could overwrite.
        data.set("n", Bytes::from_static(b"0"), 0).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let data = data.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        loop {
                            let (value, cas) = data.get("n").unwrap();
                            let n: u64 = std::str::from_utf8(&value).unwrap().parse().unwrap();
                            if data.set("n", Bytes::from((n + 1).to_string()), cas).is_ok() {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(data.get("n").unwrap().0, Bytes::from_static(b"4000"));
    }
}
