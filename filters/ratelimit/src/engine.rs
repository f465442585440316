//! The decision for one request, given the rules that apply and their key values: take a
//! token from each of their buckets (in shared data, with CAS), refuse when an enforced
//! bucket is empty (giving back the tokens already taken for this request), and say what
//! the response headers report. Pure over a [`Store`] and a time, so tests drive it with
//! conflicts and a clock of their own.

use std::time::Duration;

use weft_sdk::hash::fnv1a64;

use crate::bucket::{Bucket, Limit};
use crate::config::Rule;
use crate::store::{Contended, Store, update};

/// A rule that applies to the request, with its key value.
#[derive(Debug, Clone)]
pub struct Applied<'a> {
    pub rule: &'a Rule,
    pub key: String,
}

/// What the `x-ratelimit-*` headers (and `retry-after`) say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The limit's `requests`.
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until that bucket is full again.
    pub reset: u64,
    /// Seconds until a token is there (refusals only).
    pub retry_after: u64,
}

/// A limit a shadow rule would have enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowHit {
    pub rule: String,
    pub key: String,
    pub limit: Limit,
}

/// The decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// `Some`: refuse, reporting the bucket that was empty.
    pub refused: Option<Report>,
    /// For an allowed request: the enforced bucket with the fewest tokens left.
    pub report: Option<Report>,
    pub shadow_hits: Vec<ShadowHit>,
    /// Buckets skipped (failed open) because every CAS try met a concurrent write.
    pub contended: u32,
}

/// The shared-data key of a bucket: `ratelimit/<domain>/<rule>/<period ms>/<key>`. A key
/// value longer than 128 bytes, or with bytes other than printable ASCII, is replaced by
/// `#` and its FNV-1a hash.
pub fn storage_key(domain: &str, rule: &str, period: Duration, key: &str) -> String {
    let mut out = String::new();
    write_storage_key(&mut out, domain, rule, period, key);
    out
}

/// [`storage_key`] written into `out` (cleared first), so one buffer serves every bucket
/// of a request without `format!`.
pub fn write_storage_key(out: &mut String, domain: &str, rule: &str, period: Duration, key: &str) {
    out.clear();
    out.push_str("ratelimit/");
    out.push_str(domain);
    out.push('/');
    out.push_str(rule);
    out.push('/');
    push_decimal(out, period.as_millis());
    out.push('/');
    if key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic()) {
        out.push_str(key);
    } else {
        out.push('#');
        push_hex16(out, fnv1a64(key.as_bytes()));
    }
}

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut String, n: u128) {
    if let Ok(n) = u64::try_from(n) {
        out.push_str(decimal(&mut [0; 20], n));
        return;
    }
    let mut digits = [0u8; 39];
    let mut at = digits.len();
    let mut n = n;
    while n > 0 {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

/// `n` in decimal, written into `buf` (no allocation; u64 arithmetic, as wasm has no
/// 128-bit division).
pub fn decimal(buf: &mut [u8; 20], n: u64) -> &str {
    let mut at = buf.len();
    let mut n = n;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

/// Appends `n` as 16 lowercase hex digits.
fn push_hex16(out: &mut String, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(char::from(DIGITS[(n >> (shift * 4)) as usize & 0xf]));
    }
}

fn take(
    store: &dyn Store,
    key: &str,
    tries: u32,
    limit: &Limit,
    now: u64,
) -> Result<crate::bucket::Outcome, Contended> {
    update(store, key, tries, |current| {
        let (bucket, outcome) = limit.take(current.and_then(Bucket::decode), now);
        (bucket.encode(), outcome)
    })
}

fn give_back(store: &dyn Store, key: &str, tries: u32, limit: &Limit, now: u64) {
    // A refund that keeps meeting conflicts is dropped: the bucket is then one token
    // short, which errs on the side of the limit.
    let _ = update(store, key, tries, |current| {
        let bucket = current
            .and_then(Bucket::decode)
            .map_or_else(|| limit.full(now), |b| limit.refund(b));
        (bucket.encode(), ())
    });
}

/// Decides on a request at host time `now` (nanoseconds since the epoch).
pub fn decide(
    store: &dyn Store,
    domain: &str,
    tries: u32,
    applied: &[Applied<'_>],
    now: u64,
) -> Decision {
    let mut decision = Decision::default();
    // One key buffer for every bucket; the buckets taken are kept as (applied, limit)
    // indexes and their keys written again only for a refund.
    let mut key = String::with_capacity(64);
    let mut taken: Vec<(usize, usize)> = Vec::new();
    for (ai, a) in applied.iter().enumerate() {
        for (li, limit) in a.rule.limits.iter().enumerate() {
            write_storage_key(&mut key, domain, &a.rule.name, limit.period, &a.key);
            let outcome = match take(store, &key, tries, limit, now) {
                Ok(outcome) => outcome,
                Err(Contended) => {
                    decision.contended += 1;
                    continue;
                }
            };
            let report = Report {
                limit: limit.requests,
                remaining: outcome.remaining,
                reset: outcome.reset,
                retry_after: outcome.retry_after,
            };
            if outcome.allowed {
                taken.push((ai, li));
                if !a.rule.shadow
                    && decision
                        .report
                        .is_none_or(|r| report.remaining < r.remaining)
                {
                    decision.report = Some(report);
                }
            } else if a.rule.shadow {
                decision.shadow_hits.push(ShadowHit {
                    rule: a.rule.name.clone(),
                    key: a.key.clone(),
                    limit: *limit,
                });
            } else {
                for &(ai, li) in &taken {
                    let (a, limit) = (&applied[ai], &applied[ai].rule.limits[li]);
                    write_storage_key(&mut key, domain, &a.rule.name, limit.period, &a.key);
                    give_back(store, &key, tries, limit, now);
                }
                decision.refused = Some(report);
                decision.report = None;
                return decision;
            }
        }
    }
    decision
}
