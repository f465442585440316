//! Random numbers for traffic splits. A `wasm32-unknown-unknown` module has no source of
//! entropy (the proxy-wasm ABI v0.2.1 has no random host call, and `getrandom` would need
//! a custom backend), so each VM runs SplitMix64 seeded from the host clock (nanoseconds)
//! and the root context id when it is configured. That is plenty for choosing 90/10
//! between clusters; it is not for anything secret.

use std::cell::Cell;
use std::rc::Rc;

/// A SplitMix64 generator; clones share the state (the root and its requests).
#[derive(Debug, Clone, Default)]
pub struct Rng(Rc<Cell<u64>>);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(Rc::new(Cell::new(seed)))
    }

    /// Reseeds every clone.
    pub fn reseed(&self, seed: u64) {
        self.0.set(seed);
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let state = self.0.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.0.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The seed for a VM: the clock and the root context id, mixed.
pub fn seed(clock_nanos: u64, context_id: u32) -> u64 {
    clock_nanos ^ u64::from(context_id).rotate_left(32) ^ 0x5851_f42d_4c95_7f2d
}
