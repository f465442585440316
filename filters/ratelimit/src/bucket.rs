//! Token-bucket math, pure: a bucket holds up to `burst` tokens and gains `requests` tokens
//! per `period`, continuously; a request takes one. Tokens are counted in millionths
//! ([`SCALE`]) so that slow refill rates (200 per minute is 3.33 per second) lose nothing
//! to rounding, and time in nanoseconds of the host clock.
//!
//! A bucket's state is 16 bytes (tokens, time of the last update), stored in shared data
//! by [`crate::store`].

use std::time::Duration;

/// Units per token.
pub const SCALE: u64 = 1_000_000;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// One limit: `requests` per `period`, with room for `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub requests: u64,
    pub period: Duration,
    /// The bucket's capacity in tokens (default: `requests`).
    pub burst: u64,
}

/// A bucket's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// In units of 1/[`SCALE`] token.
    pub tokens: u64,
    /// Host-clock nanoseconds since the epoch of the last refill.
    pub updated: u64,
}

/// What taking a token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    /// Whole tokens left after this request.
    pub remaining: u64,
    /// Seconds until a token is there (0 when one is).
    pub retry_after: u64,
    /// Seconds until the bucket is full again.
    pub reset: u64,
}

impl Limit {
    fn capacity(&self) -> u64 {
        self.burst.saturating_mul(SCALE)
    }

    fn period_nanos(&self) -> u128 {
        self.period.as_nanos().max(1)
    }

    /// Units gained in `nanos`.
    fn gained(&self, nanos: u64) -> u64 {
        let units =
            u128::from(nanos) * u128::from(self.requests) * u128::from(SCALE) / self.period_nanos();
        u64::try_from(units).unwrap_or(u64::MAX)
    }

    /// Whole seconds (rounded up) until `units` more have been gained, `earned` nanoseconds
    /// towards the next unit having passed already.
    fn seconds_for(&self, units: u64, earned: u64) -> u64 {
        if units == 0 {
            return 0;
        }
        let per_sec = u128::from(self.requests) * u128::from(SCALE);
        if per_sec == 0 {
            return u64::MAX;
        }
        let nanos = (u128::from(units) * self.period_nanos())
            .div_ceil(per_sec)
            .saturating_sub(u128::from(earned));
        u64::try_from(nanos.div_ceil(NANOS_PER_SEC)).unwrap_or(u64::MAX)
    }

    /// A full bucket at `now`.
    pub fn full(&self, now: u64) -> Bucket {
        Bucket {
            tokens: self.capacity(),
            updated: now,
        }
    }

    /// Nanoseconds it takes to gain `units` (rounded down).
    fn nanos_for(&self, units: u64) -> u64 {
        let per_unit = u128::from(self.requests) * u128::from(SCALE);
        u64::try_from(u128::from(units) * self.period_nanos() / per_unit.max(1)).unwrap_or(u64::MAX)
    }

    /// `bucket` refilled up to `now`, capped at the capacity (also after a config change
    /// lowered it). `updated` moves on by the time the added units took, so the fraction
    /// of a unit earned since is not lost; a full bucket starts counting from `now`. A
    /// clock that went back adds nothing and keeps the later time.
    pub fn refill(&self, bucket: Bucket, now: u64) -> Bucket {
        let elapsed = now.saturating_sub(bucket.updated);
        let gained = self.gained(elapsed);
        let tokens = bucket.tokens.saturating_add(gained);
        if tokens >= self.capacity() {
            return Bucket {
                tokens: self.capacity(),
                updated: bucket.updated.max(now),
            };
        }
        Bucket {
            tokens,
            updated: bucket.updated + self.nanos_for(gained).min(elapsed),
        }
    }

    /// Takes a token from `bucket` (`None`: a new, full one) at `now`: the new state and
    /// what happened. A refused request takes nothing.
    pub fn take(&self, bucket: Option<Bucket>, now: u64) -> (Bucket, Outcome) {
        let mut b = self.refill(bucket.unwrap_or_else(|| self.full(now)), now);
        let earned = now.saturating_sub(b.updated);
        let allowed = b.tokens >= SCALE;
        if allowed {
            b.tokens -= SCALE;
        }
        let outcome = Outcome {
            allowed,
            remaining: b.tokens / SCALE,
            retry_after: if allowed {
                0
            } else {
                self.seconds_for(SCALE - b.tokens, earned).max(1)
            },
            reset: self.seconds_for(self.capacity() - b.tokens, earned),
        };
        (b, outcome)
    }

    /// Gives back a token taken by a request that was refused further on.
    pub fn refund(&self, bucket: Bucket) -> Bucket {
        Bucket {
            tokens: bucket.tokens.saturating_add(SCALE).min(self.capacity()),
            ..bucket
        }
    }
}

impl Bucket {
    /// The stored form: tokens and time, 8 bytes little-endian each.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.tokens.to_le_bytes());
        out[8..].copy_from_slice(&self.updated.to_le_bytes());
        out
    }

    /// The stored form read back; anything else (another writer's format) is `None`,
    /// which starts a full bucket.
    pub fn decode(bytes: &[u8]) -> Option<Bucket> {
        let raw: &[u8; 16] = bytes.try_into().ok()?;
        let (tokens, updated) = raw.split_at(8);
        Some(Bucket {
            tokens: u64::from_le_bytes(tokens.try_into().ok()?),
            updated: u64::from_le_bytes(updated.try_into().ok()?),
        })
    }
}
