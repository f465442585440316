//! Outlier detection (passive health checking), as Envoy does it: every upstream answer is
//! reported here, and an endpoint that fails `consecutive_5xx` times in a row (5xx answers,
//! connect failures, resets, timeouts), or `consecutive_gateway_failure` times (502, 503,
//! 504 and the same local failures), is ejected: it leaves the rotation for
//! `base_ejection_time` times the number of times it has been ejected, at most
//! `max_ejection_time`. No more than `max_ejection_percent` of the endpoints are ejected at
//! once, though always at least one may be.
//!
//! A review task per cluster runs every `interval`: it brings back the endpoints whose time
//! is up, and lowers by one the ejection count of each endpoint that stayed in the
//! rotation, so an endpoint that recovered for good is forgiven over time. A passing active
//! health check also brings an ejected endpoint back (Envoy's default).
//!
//! State is shared by every worker (atomics), as the balancer of each worker must skip the
//! same endpoints.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::ClusterRuntime;
use crate::config::OutlierDetection;

/// What became of one request to an endpoint, as outlier detection sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer below 500.
    Success,
    /// An answer with this 5xx status.
    Status(u16),
    /// No answer: connect failure, reset or timeout.
    LocalFailure,
}

impl Outcome {
    fn is_5xx(self) -> bool {
        !matches!(self, Outcome::Success)
    }

    fn is_gateway_failure(self) -> bool {
        matches!(self, Outcome::Status(502..=504) | Outcome::LocalFailure)
    }
}

/// The outlier state of a cluster's endpoints.
#[derive(Debug)]
pub struct Outliers {
    config: OutlierDetection,
    endpoints: Box<[EndpointState]>,
    /// How many endpoints are ejected now.
    ejected: AtomicUsize,
    ejections: Counter,
    /// Per endpoint: 1 while ejected.
    gauges: Vec<Gauge>,
    /// The zero of the endpoints' `until_ms`.
    epoch: Instant,
}

#[derive(Debug, Default)]
struct EndpointState {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    ejected: AtomicBool,
    /// Times ejected, less one per review interval spent in the rotation.
    times: AtomicU32,
    /// When the current ejection ends, in milliseconds since `epoch`.
    until_ms: AtomicU64,
}

/// What `/clusters` shows of an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointOutlier {
    pub ejected: bool,
    /// Times ejected (decays while the endpoint stays in the rotation).
    pub times_ejected: u32,
    pub consecutive_failures: u32,
}

impl Outliers {
    pub fn new(config: OutlierDetection, ejections: Counter, gauges: Vec<Gauge>) -> Self {
        for g in &gauges {
            g.set(0);
        }
        Outliers {
            endpoints: gauges.iter().map(|_| EndpointState::default()).collect(),
            config,
            ejected: AtomicUsize::new(0),
            ejections,
            gauges,
            epoch: Instant::now(),
        }
    }

    pub fn config(&self) -> &OutlierDetection {
        &self.config
    }

    pub fn is_ejected(&self, index: usize) -> bool {
        self.endpoints[index].ejected.load(Ordering::Relaxed)
    }

    pub fn state(&self, index: usize) -> EndpointOutlier {
        let e = &self.endpoints[index];
        EndpointOutlier {
            ejected: e.ejected.load(Ordering::Relaxed),
            times_ejected: e.times.load(Ordering::Relaxed),
            consecutive_failures: e
                .consecutive_5xx
                .load(Ordering::Relaxed)
                .max(e.consecutive_gateway.load(Ordering::Relaxed)),
        }
    }

    /// Records the outcome of a request to endpoint `index`; returns true when it ejected
    /// the endpoint.
    pub fn report(&self, index: usize, outcome: Outcome) -> bool {
        let e = &self.endpoints[index];
        let bump = |counter: &AtomicU32, failed: bool| {
            if failed {
                counter.fetch_add(1, Ordering::Relaxed).saturating_add(1)
            } else {
                // A plain load first: most answers are successes on a streak of zero.
                if counter.load(Ordering::Relaxed) != 0 {
                    counter.store(0, Ordering::Relaxed);
                }
                0
            }
        };
        let fives = bump(&e.consecutive_5xx, outcome.is_5xx());
        let gateway = bump(&e.consecutive_gateway, outcome.is_gateway_failure());
        let tripped = |threshold: u32, streak: u32| threshold > 0 && streak >= threshold;
        if tripped(self.config.consecutive_5xx, fives)
            || tripped(self.config.consecutive_gateway_failure, gateway)
        {
            return self.eject(index);
        }
        false
    }

    /// Ejects endpoint `index` unless it already is, or the ejection cap is reached.
    fn eject(&self, index: usize) -> bool {
        let e = &self.endpoints[index];
        let cap = (self.endpoints.len() * self.config.max_ejection_percent as usize / 100).max(1);
        if self.ejected.fetch_add(1, Ordering::Relaxed) >= cap {
            self.ejected.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        if e.ejected.swap(true, Ordering::Relaxed) {
            // Another worker ejected it first.
            self.ejected.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        let times = e.times.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let length = self
            .config
            .base_ejection_time
            .saturating_mul(times)
            .min(self.config.max_ejection_time);
        let until = self.epoch.elapsed().saturating_add(length);
        e.until_ms
            .store(until.as_millis() as u64, Ordering::Relaxed);
        e.consecutive_5xx.store(0, Ordering::Relaxed);
        e.consecutive_gateway.store(0, Ordering::Relaxed);
        self.ejections.inc();
        self.gauges[index].set(1);
        true
    }

    /// Brings endpoint `index` back into the rotation; false if it was not ejected.
    pub fn uneject(&self, index: usize) -> bool {
        let e = &self.endpoints[index];
        if !e.ejected.swap(false, Ordering::Relaxed) {
            return false;
        }
        self.ejected.fetch_sub(1, Ordering::Relaxed);
        self.gauges[index].set(0);
        true
    }

    /// One review: returns the endpoints brought back.
    pub fn review(&self) -> Vec<usize> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let mut back = Vec::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            if e.ejected.load(Ordering::Relaxed) {
                if now >= e.until_ms.load(Ordering::Relaxed) && self.uneject(i) {
                    back.push(i);
                }
            } else {
                // No ejection during a whole interval: forgive one.
                let _ = e
                    .times
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(1));
            }
        }
        back
    }
}

/// Starts the review task of every cluster in `clusters` that has outlier detection, on
/// the current runtime. A task holds only a weak reference, so it ends with its snapshot's
/// clusters.
pub fn spawn_reviews(clusters: &Arc<Vec<ClusterRuntime>>) {
    for (index, cluster) in clusters.iter().enumerate() {
        if let Some(outliers) = &cluster.outliers {
            tokio::spawn(review_loop(
                Arc::downgrade(clusters),
                index,
                outliers.config.interval,
            ));
        }
    }
}

async fn review_loop(clusters: Weak<Vec<ClusterRuntime>>, index: usize, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(all) = clusters.upgrade() else {
            return;
        };
        let cluster = &all[index];
        if let Some(outliers) = &cluster.outliers {
            for i in outliers.review() {
                tracing::info!(cluster = %cluster.config.name, endpoint = %cluster.config.endpoints[i], "ejection over; endpoint back in the rotation");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outliers(n: usize, config: OutlierDetection) -> Outliers {
        Outliers::new(
            config,
            Counter::default(),
            (0..n).map(|_| Gauge::default()).collect(),
        )
    }

    fn config() -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 3,
            consecutive_gateway_failure: 0,
            interval: Duration::from_millis(10),
            base_ejection_time: Duration::from_millis(40),
            max_ejection_time: Duration::from_millis(100),
            max_ejection_percent: 50,
        }
    }

    #[test]
    fn failures_in_a_row_eject_and_a_success_resets_the_streak() {
        let o = outliers(4, config());
        assert!(!o.report(0, Outcome::Status(500)));
        assert!(!o.report(0, Outcome::LocalFailure));
        assert!(!o.report(0, Outcome::Success));
        assert!(!o.report(0, Outcome::Status(503)));
        assert!(!o.report(0, Outcome::Status(500)));
        assert!(!o.is_ejected(0));
        assert!(o.report(0, Outcome::LocalFailure));
        assert!(o.is_ejected(0));
        assert_eq!(o.ejections.get(), 1);
        assert_eq!(o.gauges[0].get(), 1);
        assert_eq!(o.state(0).times_ejected, 1);
        // Already out: more failures do not count as new ejections.
        for _ in 0..5 {
            assert!(!o.report(0, Outcome::Status(500)));
        }
        assert_eq!(o.ejections.get(), 1);
    }

    #[test]
    fn gateway_failures_count_only_502_to_504_and_local_failures() {
        let mut c = config();
        c.consecutive_5xx = 0;
        c.consecutive_gateway_failure = 2;
        let o = outliers(2, c);
        for _ in 0..4 {
            assert!(!o.report(1, Outcome::Status(500)));
        }
        assert!(!o.report(1, Outcome::Status(502)));
        assert!(o.report(1, Outcome::LocalFailure));
    }

    #[test]
    fn no_more_than_the_max_ejection_percent_but_always_one() {
        let o = outliers(4, config()); // 50% of 4: two at once
        for i in 0..4 {
            for _ in 0..3 {
                o.report(i, Outcome::Status(500));
            }
        }
        assert_eq!((0..4).filter(|&i| o.is_ejected(i)).count(), 2);

        let mut c = config();
        c.max_ejection_percent = 10; // 10% of 2 rounds to none, yet one may go
        let o = outliers(2, c);
        for i in 0..2 {
            for _ in 0..3 {
                o.report(i, Outcome::Status(500));
            }
        }
        assert!(o.is_ejected(0) && !o.is_ejected(1));
    }

    #[test]
    fn ejections_grow_with_repeats_up_to_the_max_and_decay() {
        let o = outliers(2, config());
        // Ejects endpoint 0 and checks that the ejection lasts `ms`.
        let eject_for = |o: &Outliers, ms: u64| {
            let before = o.epoch.elapsed().as_millis() as u64;
            for _ in 0..3 {
                o.report(0, Outcome::Status(500));
            }
            let after = o.epoch.elapsed().as_millis() as u64;
            assert!(o.is_ejected(0));
            let until = o.endpoints[0].until_ms.load(Ordering::Relaxed);
            assert!(
                (before + ms..=after + ms).contains(&until),
                "{before} {after} {until}"
            );
        };
        eject_for(&o, 40);
        o.uneject(0);
        eject_for(&o, 80);
        o.uneject(0);
        // 3 × 40 ms, capped at 100 ms.
        eject_for(&o, 100);
        o.endpoints[0].until_ms.store(0, Ordering::Relaxed);
        assert_eq!(o.review(), vec![0]);
        assert!(!o.is_ejected(0));
        assert_eq!(o.gauges[0].get(), 0);
        assert_eq!(o.state(0).times_ejected, 3);
        o.review();
        o.review();
        assert_eq!(o.state(0).times_ejected, 1);
        o.review();
        o.review();
        assert_eq!(o.state(0).times_ejected, 0);
    }
}
