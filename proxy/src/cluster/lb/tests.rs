use super::*;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("10.0.0.{i}:8080")).collect()
}

fn counts(b: &Balancer, n: usize, picks: usize, key: impl Fn(usize) -> Option<u64>) -> Vec<usize> {
    let mut counts = vec![0; n];
    for i in 0..picks {
        counts[b.pick(key(i))] += 1;
    }
    counts
}

#[test]
fn round_robin_visits_every_endpoint_in_turn() {
    let b = BalancerPlan::new(LbPolicy::RoundRobin, &names(3), &[1, 1, 1]).balancer();
    assert_eq!(counts(&b, 3, 300, |_| None), [100, 100, 100]);
    let first = b.pick(None);
    assert_eq!(b.pick(None), (first + 1) % 3);
}

#[test]
fn weighted_round_robin_follows_the_weights_and_interleaves() {
    let b = BalancerPlan::new(LbPolicy::RoundRobin, &names(3), &[5, 1, 1]).balancer();
    assert_eq!(counts(&b, 3, 700, |_| None), [500, 100, 100]);
    assert_eq!(smooth_schedule(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
    // Large weights are reduced by their common divisor.
    assert_eq!(smooth_schedule(&[300, 100]).len(), 4);
}

#[test]
fn weighted_random_is_within_five_percent() {
    let b = BalancerPlan::new(LbPolicy::Random, &names(2), &[1, 3]).balancer();
    let c = counts(&b, 2, 8_000, |_| None);
    // Expected 2,000 / 6,000; ±5% of the total is ±400 (many standard deviations).
    assert!((1_600..=2_400).contains(&c[0]), "{c:?}");
}

#[test]
fn least_request_prefers_the_endpoint_with_fewer_requests_in_flight() {
    let b = BalancerPlan::new(LbPolicy::LeastRequest, &names(2), &[1, 1]).balancer();
    // Endpoint 0 has 3 requests in flight: with two endpoints, P2C always compares both.
    let busy: Vec<_> = (0..3).map(|_| b.start(0)).collect();
    assert_eq!(counts(&b, 2, 100, |_| None), [0, 100]);
    drop(busy);
    let c = counts(&b, 2, 100, |_| None);
    // Idle again: ties go to the first drawn, so both get picked.
    assert!(c[0] > 20 && c[1] > 20, "{c:?}");
}

#[test]
fn least_request_weighs_requests_in_flight_by_endpoint_weight() {
    let b = BalancerPlan::new(LbPolicy::LeastRequest, &names(2), &[1, 4]).balancer();
    // 3 in flight on a weight-4 endpoint is a lighter load than 1 on a weight-1 one.
    let _a = b.start(0);
    let _b: Vec<_> = (0..3).map(|_| b.start(1)).collect();
    assert_eq!(counts(&b, 2, 50, |_| None), [0, 50]);
}

fn keys(n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| hash64(format!("client-{i}").as_bytes()))
        .collect()
}

/// Share of keys that move when the last of `n` endpoints is removed, and whether every
/// moved key was on the removed endpoint.
fn removal(policy: LbPolicy, n: usize) -> (f64, bool) {
    let all = BalancerPlan::new(policy, &names(n), &vec![1; n]).balancer();
    let fewer = BalancerPlan::new(policy, &names(n - 1), &vec![1; n - 1]).balancer();
    let keys = keys(20_000);
    let mut moved = 0;
    let mut only_removed = true;
    for k in &keys {
        let (before, after) = (all.pick(Some(*k)), fewer.pick(Some(*k)));
        if before != after {
            moved += 1;
            only_removed &= before == n - 1;
        }
    }
    (moved as f64 / keys.len() as f64, only_removed)
}

#[test]
fn ring_hash_is_stable_balanced_and_moves_only_the_removed_endpoints_keys() {
    let b = BalancerPlan::new(LbPolicy::RingHash, &names(5), &[1; 5]).balancer();
    let k = keys(1);
    assert_eq!(b.pick(Some(k[0])), b.pick(Some(k[0])));
    let c = counts(&b, 5, 20_000, |i| {
        Some(hash64(format!("client-{i}").as_bytes()))
    });
    assert!(c.iter().all(|n| (2_800..=5_200).contains(n)), "{c:?}");
    let (moved, only_removed) = removal(LbPolicy::RingHash, 5);
    assert!(only_removed, "keys of other endpoints moved");
    // The removed endpoint held about 1/5 of the keys.
    assert!(moved <= 0.25, "{moved}");
}

#[test]
fn maglev_is_balanced_and_moves_about_one_nth_of_the_keys() {
    let b = BalancerPlan::new(LbPolicy::Maglev, &names(5), &[1; 5]).balancer();
    let c = counts(&b, 5, 20_000, |i| {
        Some(hash64(format!("client-{i}").as_bytes()))
    });
    assert!(c.iter().all(|n| (3_600..=4_400).contains(n)), "{c:?}");
    let (moved, _) = removal(LbPolicy::Maglev, 5);
    // Maglev moves the removed endpoint's keys (1/5) and a few others.
    assert!(moved <= 0.25, "{moved}");
    // Weighted: an endpoint of weight 3 gets about three times the keys.
    let w = BalancerPlan::new(LbPolicy::Maglev, &names(2), &[1, 3]).balancer();
    let c = counts(&w, 2, 20_000, |i| {
        Some(hash64(format!("client-{i}").as_bytes()))
    });
    assert!((4_000..=6_000).contains(&c[0]), "{c:?}");
}

#[test]
fn hash_policies_spread_requests_without_a_key() {
    let b = BalancerPlan::new(LbPolicy::RingHash, &names(2), &[1, 1]).balancer();
    let c = counts(&b, 2, 2_000, |_| None);
    assert!(c[0] > 800 && c[1] > 800, "{c:?}");
}
