//! Load-balancing policies: (weighted) round robin, (weighted) random, least request (power
//! of two choices, weighted) and consistent hashing on a request key (ring hash, maglev).
//!
//! A [`Balancer`] is one worker's state for one cluster, so nothing here is shared between
//! workers (the hash tables, which never change, are shared read-only).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::LbPolicy;

/// A balancer's state for one worker.
#[derive(Debug)]
pub struct Balancer {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// Walks `schedule` (endpoint indices, each as often as its weight, interleaved).
    RoundRobin {
        next: AtomicUsize,
        schedule: Arc<[usize]>,
    },
    /// `cumulative[i]` is the sum of the weights up to and including endpoint i.
    Random { cumulative: Arc<[u64]> },
    /// Requests in flight per endpoint (on this worker).
    LeastRequest {
        weights: Arc<[u32]>,
        active: Box<[AtomicUsize]>,
    },
    /// Consistent hashing; requests without a key are spread at random.
    Hash {
        table: Arc<HashTable>,
        cumulative: Arc<[u64]>,
    },
}

/// The shared, read-only part of a cluster's balancing: built once per cluster.
#[derive(Debug, Clone)]
pub struct BalancerPlan {
    policy: LbPolicy,
    weights: Arc<[u32]>,
    schedule: Arc<[usize]>,
    cumulative: Arc<[u64]>,
    table: Option<Arc<HashTable>>,
}

impl BalancerPlan {
    /// `names` identify the endpoints for hashing (their addresses), `weights` are > 0.
    pub fn new(policy: LbPolicy, names: &[String], weights: &[u32]) -> Self {
        let weights: Arc<[u32]> = weights.iter().map(|w| (*w).max(1)).collect();
        let mut total = 0u64;
        let cumulative = weights
            .iter()
            .map(|w| {
                total += u64::from(*w);
                total
            })
            .collect();
        let table = match policy {
            LbPolicy::RingHash => Some(Arc::new(HashTable::ring(names, &weights))),
            LbPolicy::Maglev => Some(Arc::new(HashTable::maglev(names, &weights))),
            _ => None,
        };
        BalancerPlan {
            policy,
            schedule: smooth_schedule(&weights).into(),
            weights,
            cumulative,
            table,
        }
    }

    /// A worker's balancer.
    pub fn balancer(&self) -> Balancer {
        let kind = match self.policy {
            LbPolicy::RoundRobin => Kind::RoundRobin {
                // Start each worker at a different place so workers do not march in step.
                next: AtomicUsize::new(fastrand::usize(..self.schedule.len().max(1))),
                schedule: self.schedule.clone(),
            },
            LbPolicy::Random => Kind::Random {
                cumulative: self.cumulative.clone(),
            },
            LbPolicy::LeastRequest => Kind::LeastRequest {
                weights: self.weights.clone(),
                active: self.weights.iter().map(|_| AtomicUsize::new(0)).collect(),
            },
            LbPolicy::RingHash | LbPolicy::Maglev => Kind::Hash {
                table: self.table.clone().expect("hash policies have a table"),
                cumulative: self.cumulative.clone(),
            },
        };
        Balancer { kind }
    }
}

impl Balancer {
    /// The endpoint for the next request; `key` is the request's hash key (for the hash
    /// policies; others ignore it).
    pub fn pick(&self, key: Option<u64>) -> usize {
        match &self.kind {
            Kind::RoundRobin { next, schedule } => {
                schedule[next.fetch_add(1, Ordering::Relaxed) % schedule.len()]
            }
            Kind::Random { cumulative } => weighted_random(cumulative),
            Kind::LeastRequest { weights, active } => {
                let n = weights.len();
                if n == 1 {
                    return 0;
                }
                let a = fastrand::usize(..n);
                let mut b = fastrand::usize(..n - 1);
                if b >= a {
                    b += 1;
                }
                // Fewer requests in flight per unit of weight wins.
                let load = |i: usize| active[i].load(Ordering::Relaxed) as u64;
                if load(a) * u64::from(weights[b]) <= load(b) * u64::from(weights[a]) {
                    a
                } else {
                    b
                }
            }
            Kind::Hash { table, cumulative } => match key {
                Some(key) => table.lookup(key),
                None => weighted_random(cumulative),
            },
        }
    }

    /// Counts a request in flight to endpoint `index` until the guard is dropped (for least
    /// request; a no-op for the other policies).
    pub fn start(&self, index: usize) -> InFlight<'_> {
        if let Kind::LeastRequest { active, .. } = &self.kind {
            active[index].fetch_add(1, Ordering::Relaxed);
            InFlight {
                counter: Some(&active[index]),
            }
        } else {
            InFlight { counter: None }
        }
    }

    /// Whether the policy hashes a request key.
    pub fn wants_key(&self) -> bool {
        matches!(self.kind, Kind::Hash { .. })
    }
}

/// A request in flight (see [`Balancer::start`]).
#[derive(Debug)]
pub struct InFlight<'a> {
    counter: Option<&'a AtomicUsize>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(counter) = self.counter {
            counter.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn weighted_random(cumulative: &[u64]) -> usize {
    let total = *cumulative.last().unwrap_or(&1);
    let roll = fastrand::u64(..total.max(1));
    cumulative.partition_point(|c| *c <= roll)
}

/// One round of smooth weighted round robin (nginx's): each endpoint appears as often as
/// its weight, spread out (weights 5, 1, 1 give a a b a c a a, not a a a a a b c). Weights
/// are divided by their greatest common divisor and the round is kept under 10,000 slots.
fn smooth_schedule(weights: &[u32]) -> Vec<usize> {
    let g = weights.iter().fold(0u32, |g, w| gcd(g, *w)).max(1);
    let mut weights: Vec<u64> = weights.iter().map(|w| u64::from(w / g)).collect();
    let total: u64 = weights.iter().sum();
    if total > 10_000 {
        for w in &mut weights {
            *w = (*w * 10_000 / total).max(1);
        }
    }
    let total: i64 = weights.iter().map(|w| *w as i64).sum();
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (c, w) in current.iter_mut().zip(&weights) {
                *c += *w as i64;
            }
            let best = (0..current.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            current[best] -= total;
            best
        })
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// 64-bit FNV-1a followed by a finaliser (splitmix64), stable across processes and
/// versions, so that every proxy maps a key the same way.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A consistent-hash lookup table.
#[derive(Debug)]
pub enum HashTable {
    /// Points on a ring, sorted: (hash, endpoint). A key goes to the first point at or
    /// after its hash.
    Ring(Vec<(u64, usize)>),
    /// Maglev: a lookup table of a prime size; a key goes to `table[key % size]`.
    Maglev(Vec<usize>),
}

/// Ring points per unit of weight.
const RING_POINTS: u64 = 128;
/// Maglev's table size (a prime, well above the number of endpoints times 100).
const MAGLEV_SIZE: usize = 65_537;

impl HashTable {
    fn ring(names: &[String], weights: &[u32]) -> HashTable {
        let max_points = 100_000u64;
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum::<u64>() * RING_POINTS;
        let scale = if total > max_points {
            max_points as f64 / total as f64
        } else {
            1.0
        };
        let mut points = Vec::new();
        for (i, (name, weight)) in names.iter().zip(weights).enumerate() {
            let count = ((u64::from(*weight) * RING_POINTS) as f64 * scale).max(1.0) as u64;
            for replica in 0..count {
                points.push((hash64(format!("{name}_{replica}").as_bytes()), i));
            }
        }
        points.sort_unstable();
        HashTable::Ring(points)
    }

    fn maglev(names: &[String], weights: &[u32]) -> HashTable {
        let n = names.len();
        let m = MAGLEV_SIZE;
        let offsets: Vec<usize> = names
            .iter()
            .map(|name| (hash64(name.as_bytes()) % m as u64) as usize)
            .collect();
        let skips: Vec<usize> = names
            .iter()
            .map(|name| (mix(hash64(name.as_bytes()) ^ 0x5bd1_e995) % (m as u64 - 1) + 1) as usize)
            .collect();
        let max_weight = weights.iter().copied().max().unwrap_or(1);
        let mut next = vec![0usize; n];
        let mut credit = vec![0u64; n];
        let mut table = vec![usize::MAX; m];
        let mut filled = 0;
        'fill: loop {
            for i in 0..n {
                // Weighted: an endpoint takes a slot each time its credit reaches the
                // largest weight.
                credit[i] += u64::from(weights[i]);
                if credit[i] < u64::from(max_weight) {
                    continue;
                }
                credit[i] -= u64::from(max_weight);
                loop {
                    let slot = (offsets[i] + next[i] * skips[i]) % m;
                    next[i] += 1;
                    if table[slot] == usize::MAX {
                        table[slot] = i;
                        filled += 1;
                        break;
                    }
                }
                if filled == m {
                    break 'fill;
                }
            }
        }
        HashTable::Maglev(table)
    }

    pub fn lookup(&self, key: u64) -> usize {
        match self {
            HashTable::Ring(points) => {
                let at = points.partition_point(|(h, _)| *h < key);
                points[at % points.len()].1
            }
            HashTable::Maglev(table) => table[(key % table.len() as u64) as usize],
        }
    }
}

#[cfg(test)]
mod tests;
