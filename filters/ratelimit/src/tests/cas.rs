//! Compare-and-swap through the harness's shared data: a store that lets "another worker"
//! write between this VM's read and its write.

use std::cell::Cell;
use std::time::Duration;

use weft_sdk::proxy_wasm::hostcalls;

use crate::bucket::{Bucket, Limit, SCALE};
use crate::config::{Key, Rule};
use crate::engine::{Applied, Decision, decide};
use crate::store::{SharedData, Store, update};

use super::limiter;

/// Shared data where another writer takes a token from the bucket right before each of
/// this VM's first `conflicts` writes.
struct Racing {
    conflicts: Cell<u32>,
    limit: Limit,
    now: u64,
}

impl Store for Racing {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        SharedData.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> bool {
        if self.conflicts.get() > 0 {
            self.conflicts.set(self.conflicts.get() - 1);
            let (current, other_cas) = SharedData.get(key).expect("the test made the bucket");
            let (taken, _) = self.limit.take(Bucket::decode(&current), self.now);
            hostcalls::set_shared_data(key, Some(&taken.encode()), Some(other_cas)).unwrap();
        }
        SharedData.set(key, value, cas)
    }
}

fn rule(requests: u64) -> Rule {
    Rule {
        name: "r".into(),
        path: None,
        methods: Vec::new(),
        key: Key::Route,
        limits: vec![Limit {
            requests,
            period: Duration::from_secs(60),
            burst: requests,
        }],
        shadow: false,
    }
}

fn tokens(key: &str) -> u64 {
    Bucket::decode(&SharedData.get(key).unwrap().0)
        .unwrap()
        .tokens
}

const KEY: &str = "ratelimit/d/r/60000/";
const NOW: u64 = 1_700_000_000_000_000_000;

/// Decides on one request to a full bucket of `requests` per minute (shared data key
/// [`KEY`]), with `tries` CAS tries, while another writer takes a token before each of the
/// first `conflicts` writes. Returns the decision and the conflicts left unused.
fn race(requests: u64, conflicts: u32, tries: u32) -> (Decision, u32) {
    let rule = rule(requests);
    SharedData.set(KEY, &rule.limits[0].full(NOW).encode(), 0);
    let store = Racing {
        conflicts: Cell::new(conflicts),
        limit: rule.limits[0],
        now: NOW,
    };
    let applied = [Applied {
        rule: &rule,
        key: String::new(),
    }];
    let d = decide(&store, "d", tries, &applied, NOW);
    (d, store.conflicts.get())
}

#[test]
fn a_conflicting_write_is_retried_on_top_of_the_other_one() {
    let _host = limiter("{}");
    let (d, left) = race(10, 3, 16);
    assert_eq!((d.refused, d.contended, left), (None, 0, 0));
    assert_eq!(
        d.report.unwrap().remaining,
        6,
        "3 taken by the other writer, 1 by us"
    );
    assert_eq!(tokens(KEY), 6 * SCALE, "no update was lost");
}

#[test]
fn persistent_contention_fails_open_and_is_counted() {
    let _host = limiter("{}");
    let (d, left) = race(1, 100, 4);
    assert_eq!((d.contended, left), (1, 96), "4 tries, 4 conflicts");
    assert_eq!(
        (d.refused, d.report),
        (None, None),
        "allowed without a report"
    );
}

#[test]
fn update_reads_again_after_a_mismatch() {
    let _host = limiter("{}");
    SharedData.set("k", b"1", 0);
    let mut seen = Vec::new();
    let r = update(&SharedData, "k", 3, |current| {
        seen.push(current.map(<[u8]>::to_vec));
        if seen.len() == 1 {
            // Another writer, between this read and the write below.
            SharedData.set("k", b"2", 0);
        }
        (b"3".to_vec(), ())
    });
    assert_eq!(r, Ok(()));
    assert_eq!(seen, [Some(b"1".to_vec()), Some(b"2".to_vec())]);
    assert_eq!(SharedData.get("k").unwrap().0, b"3");
}

#[test]
fn a_stale_cas_token_is_refused_by_the_harness_as_by_weft() {
    let mut host = limiter("{}");
    SharedData.set("k", b"1", 0);
    let (_, cas) = SharedData.get("k").unwrap();
    host.set_shared_data("k", b"other");
    assert!(!SharedData.set("k", b"mine", cas));
    assert!(SharedData.set("k", b"mine", cas + 1));
}
