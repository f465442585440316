//! A small, stable hash for sticky decisions (canary splits, sharding): the same key gives
//! the same answer on every worker, every VM and every host, release after release. It is
//! FNV-1a (64 bit), which is not meant to resist an attacker choosing keys.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// The 64-bit FNV-1a hash of `bytes`.
///
/// ```
/// assert_eq!(weft_sdk::hash::fnv1a64(b""), 0xcbf29ce484222325);
/// assert_eq!(weft_sdk::hash::fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
/// ```
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The bucket `0..buckets` that `key` falls in, for example `bucket(user, 100) < 10` for
/// a sticky 10 % split. `buckets` 0 is taken as 1.
pub fn bucket(key: &[u8], buckets: u64) -> u64 {
    fnv1a64(key) % buckets.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_fnv1a_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket(b"user-1", 100), bucket(b"user-1", 100));
        assert_eq!(bucket(b"x", 0), 0);
        let mut counts = [0u32; 10];
        for i in 0..10_000 {
            counts[bucket(format!("user-{i}").as_bytes(), 10) as usize] += 1;
        }
        // Each bucket within 20 % of the fair share.
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }
}
