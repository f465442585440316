//! Load-balancing policies. Only round robin for now; the policy is an enum so that
//! weighted, random, least-request and hashing policies slot in beside it.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::LbPolicy;

/// A balancer's state for one worker (so no atomics are shared between workers).
#[derive(Debug)]
pub struct Balancer {
    policy: LbPolicy,
    next: AtomicUsize,
}

impl Balancer {
    pub fn new(policy: LbPolicy) -> Self {
        Balancer {
            policy,
            // Start each worker at a different place so that workers do not march in step.
            next: AtomicUsize::new(fastrand::usize(..1024)),
        }
    }

    /// Index of the endpoint (of `count`, which must be > 0) to use next.
    pub fn pick(&self, count: usize) -> usize {
        match self.policy {
            LbPolicy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_visits_every_endpoint_in_turn() {
        let b = Balancer::new(LbPolicy::RoundRobin);
        let mut counts = [0; 3];
        for _ in 0..300 {
            counts[b.pick(3)] += 1;
        }
        assert_eq!(counts, [100, 100, 100]);
        let first = b.pick(3);
        assert_eq!(b.pick(3), (first + 1) % 3);
    }
}
