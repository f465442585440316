//! Token-bucket math.

use std::time::Duration;

use crate::bucket::{Bucket, Limit, SCALE};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

fn per_minute(n: u64) -> Limit {
    Limit {
        requests: n,
        period: Duration::from_secs(60),
        burst: n,
    }
}

#[test]
fn a_new_bucket_is_full_and_each_request_takes_one() {
    let limit = per_minute(3);
    let (b, o) = limit.take(None, T0);
    assert!(o.allowed);
    assert_eq!((o.remaining, o.retry_after, o.reset), (2, 0, 20));
    let (b, o) = limit.take(Some(b), T0);
    assert_eq!((o.allowed, o.remaining, o.reset), (true, 1, 40));
    let (b, o) = limit.take(Some(b), T0);
    assert_eq!((o.allowed, o.remaining, o.reset), (true, 0, 60));
    let (b, o) = limit.take(Some(b), T0);
    assert_eq!(
        (o.allowed, o.remaining, o.retry_after, o.reset),
        (false, 0, 20, 60)
    );
    assert_eq!(b.tokens, 0, "a refusal takes nothing");
}

#[test]
fn tokens_refill_continuously_with_fractions_kept() {
    let limit = per_minute(200); // one token every 300 ms
    let empty = Bucket {
        tokens: 0,
        updated: T0,
    };
    let b = limit.refill(empty, T0 + 299_000_000);
    assert_eq!(b.tokens, 996_666, "0.996666 of a token");
    let (_, o) = limit.take(Some(b), b.updated);
    assert_eq!(
        (o.allowed, o.retry_after),
        (false, 1),
        "retry-after rounds up to a whole second"
    );
    let (_, o) = limit.take(Some(empty), T0 + 300_000_000);
    assert!(o.allowed);
    // Small steps lose nothing: the time of a fraction of a unit is carried over.
    let mut b = empty;
    for i in 1..=599 {
        b = limit.refill(b, T0 + i * 100_000_000 + i % 7);
    }
    assert_eq!(b.tokens, 199_666_666, "59.9 s of 200 per minute");
    let mut steps = empty;
    for i in 1..=1000 {
        steps = limit.refill(steps, T0 + i * 1_000);
    }
    assert_eq!(
        steps,
        limit.refill(empty, T0 + 1_000_000),
        "1000 steps of 1 us add what 1 ms adds"
    );
    // Never past the capacity.
    assert_eq!(limit.refill(empty, T0 + 3600 * SEC).tokens, 200 * SCALE);
}

#[test]
fn a_clock_that_goes_back_adds_nothing() {
    let limit = per_minute(60);
    let b = Bucket {
        tokens: SCALE / 2,
        updated: T0,
    };
    let back = limit.refill(b, T0 - 5 * SEC);
    assert_eq!(back, b, "the later time is kept");
    assert_eq!(limit.refill(back, T0 + SEC).tokens, SCALE + SCALE / 2);
}

#[test]
fn burst_sets_the_capacity_and_a_lower_one_caps_old_state() {
    let limit = Limit {
        requests: 1,
        period: Duration::from_secs(1),
        burst: 5,
    };
    let mut b = None;
    for i in 0..5 {
        let (next, o) = limit.take(b, T0);
        assert!(o.allowed, "request {i}");
        b = Some(next);
    }
    assert!(!limit.take(b, T0).1.allowed);
    let smaller = Limit { burst: 2, ..limit };
    let full = Bucket {
        tokens: 5 * SCALE,
        updated: T0,
    };
    assert_eq!(smaller.refill(full, T0).tokens, 2 * SCALE);
    assert_eq!(
        smaller
            .refund(Bucket {
                tokens: 2 * SCALE,
                updated: T0
            })
            .tokens,
        2 * SCALE
    );
    assert_eq!(
        smaller
            .refund(Bucket {
                tokens: 0,
                updated: T0
            })
            .tokens,
        SCALE
    );
}

#[test]
fn state_round_trips_and_foreign_bytes_start_afresh() {
    let b = Bucket {
        tokens: 123_456_789,
        updated: T0 + 42,
    };
    assert_eq!(Bucket::decode(&b.encode()), Some(b));
    assert_eq!(Bucket::decode(b"short"), None);
    assert_eq!(Bucket::decode(&[0u8; 17]), None);
}

#[test]
fn periods_parse() {
    use crate::config::parse_period;
    assert_eq!(parse_period("second"), Some(Duration::from_secs(1)));
    assert_eq!(parse_period("minute"), Some(Duration::from_secs(60)));
    assert_eq!(parse_period("hour"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_period("day"), Some(Duration::from_secs(86_400)));
    assert_eq!(parse_period("10s"), Some(Duration::from_secs(10)));
    assert_eq!(parse_period("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_period("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_period("30"), Some(Duration::from_secs(30)));
    for bad in ["", "0s", "week", "1w", "-1s", "s"] {
        assert_eq!(parse_period(bad), None, "{bad}");
    }
}

#[test]
fn client_ips_lose_their_port() {
    use crate::key::client_ip;
    assert_eq!(client_ip("10.0.0.1:5432"), "10.0.0.1");
    assert_eq!(client_ip("[::1]:8080"), "::1");
    assert_eq!(client_ip("::1"), "::1");
    assert_eq!(client_ip("10.0.0.1"), "10.0.0.1");
    assert_eq!(client_ip("2001:db8::1"), "2001:db8::1");
}

#[test]
fn storage_keys_name_the_domain_rule_period_and_key_or_its_hash() {
    use crate::engine::{push_decimal, storage_key, write_storage_key};
    use std::time::Duration;
    let minute = Duration::from_secs(60);
    assert_eq!(
        storage_key("d", "r", minute, "10.0.0.1"),
        "ratelimit/d/r/60000/10.0.0.1"
    );
    assert_eq!(
        storage_key("d", "r", Duration::from_millis(250), ""),
        "ratelimit/d/r/250/"
    );
    // Not printable ASCII, or too long: `#` and the FNV-1a hash, 16 hex digits.
    let hashed = format!(
        "ratelimit/d/r/60000/#{:016x}",
        weft_sdk::hash::fnv1a64("a key".as_bytes())
    );
    assert_eq!(storage_key("d", "r", minute, "a key"), hashed);
    let long = "k".repeat(129);
    let hashed = format!(
        "ratelimit/d/r/60000/#{:016x}",
        weft_sdk::hash::fnv1a64(long.as_bytes())
    );
    assert_eq!(storage_key("d", "r", minute, &long), hashed);
    assert_eq!(
        storage_key("d", "r", minute, &long[..128]),
        format!("ratelimit/d/r/60000/{}", &long[..128])
    );
    // The buffer is cleared before each key.
    let mut buf = String::from("old");
    write_storage_key(&mut buf, "x", "y", Duration::from_secs(1), "z");
    assert_eq!(buf, "ratelimit/x/y/1000/z");
    for n in [
        0u128,
        7,
        10,
        999,
        u64::MAX as u128,
        u64::MAX as u128 + 1,
        10u128.pow(20),
        10u128.pow(20) + 7,
        u128::MAX,
    ] {
        let mut s = String::new();
        push_decimal(&mut s, n);
        assert_eq!(s, n.to_string());
    }
}
