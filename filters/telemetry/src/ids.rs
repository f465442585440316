//! Random ids: trace ids, span ids, request ids, and the sampling roll.
//!
//! A `wasm32-unknown-unknown` module has no OS randomness (the proxy-wasm ABI has no
//! random host call, and `getrandom` has no backend there), so the filter keeps a small
//! generator per VM: SplitMix64, seeded from the host clock (nanoseconds) when the root
//! context starts, and stirred with the clock and the context id at every request, so
//! VMs on different workers (started at different nanoseconds) and requests that arrive
//! together still draw different ids. The ids are unique identifiers, not secrets: do not
//! use them where an attacker must not guess the next one.

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut rng = Rng { state: 0 };
        rng.stir(seed);
        rng
    }

    /// Mixes `entropy` into the state.
    pub fn stir(&mut self, entropy: u64) {
        self.state = finalize(self.state ^ entropy.wrapping_mul(GAMMA));
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        finalize(self.state)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `N` random bytes, never all zero (trace and span ids must not be).
    pub fn nonzero_bytes<const N: usize>(&mut self) -> [u8; N] {
        loop {
            let mut out = [0u8; N];
            for chunk in out.chunks_mut(8) {
                let bits = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&bits[..chunk.len()]);
            }
            if out.iter().any(|&b| b != 0) {
                return out;
            }
        }
    }

    /// A request id in UUID version 4 form (`xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxxxxx`).
    pub fn uuid_v4(&mut self) -> String {
        let mut bytes: [u8; 16] = self.nonzero_bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant 10xx
        let mut out = [b'-'; 36];
        // Groups of 4, 2, 2, 2 and 6 bytes.
        write_hex(&bytes[..4], &mut out[..8]);
        write_hex(&bytes[4..6], &mut out[9..13]);
        write_hex(&bytes[6..8], &mut out[14..18]);
        write_hex(&bytes[8..10], &mut out[19..23]);
        write_hex(&bytes[10..], &mut out[24..]);
        ascii(&out).to_string()
    }
}

/// SplitMix64's output function (a bijection with good avalanche).
fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Lowercase hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(bytes, &mut out);
    ascii(&out).to_string()
}

/// Writes the lowercase hex digits of `bytes` into `out`, which is twice as long, and
/// returns them as text: ids are formatted into fixed arrays on the request path.
pub fn write_hex<'a>(bytes: &[u8], out: &'a mut [u8]) -> &'a str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    debug_assert_eq!(out.len(), bytes.len() * 2);
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    ascii(out)
}

/// Text this module wrote (ASCII only).
pub fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// Decodes lowercase hex digits into exactly `N` bytes (`None` on any other input).
pub fn unhex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if text.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}
