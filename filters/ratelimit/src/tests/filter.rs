//! The filter on the SDK's harness: keys, several limits, the 429 and its headers, the
//! clock.

use std::time::Duration;

use super::{limiter, send, statuses};

const PER_IP: &str = r#"{"rules": [{"name": "ip", "key": "client_ip", "limits": [{"requests": 3, "per": "minute"}]}]}"#;

#[test]
fn a_client_gets_its_limit_then_429_with_the_headers() {
    let mut host = limiter(PER_IP);
    for left in ["2", "1", "0"] {
        let seen = send(&mut host, "10.0.0.1:40000", "/x", &[]);
        assert_eq!(seen.status(), 200);
        assert_eq!(seen.header("x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(seen.header("x-ratelimit-remaining").as_deref(), Some(left));
    }
    let refused = send(&mut host, "10.0.0.1:40001", "/x", &[]);
    let reply = refused.refused.as_ref().expect("a 429");
    assert_eq!(reply.status, 429);
    assert_eq!(
        reply.header("retry-after").as_deref(),
        Some("20"),
        "one token every 20 s"
    );
    assert_eq!(reply.header("x-ratelimit-limit").as_deref(), Some("3"));
    assert_eq!(reply.header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(reply.header("x-ratelimit-reset").as_deref(), Some("60"));
    assert_eq!(reply.body_text(), "rate limit exceeded\n");
    // Weft runs the response phase of the filter that replied: no second set of headers.
    let mut http = refused.http;
    http.response_headers(&[(":status", "429")], true);
    assert_eq!(http.response_header("x-ratelimit-limit"), None);
    // Another client has its own bucket; the port is not part of the key.
    assert_eq!(send(&mut host, "10.0.0.2:40000", "/x", &[]).status(), 200);
    assert_eq!(send(&mut host, "[::1]:1", "/x", &[]).status(), 200);
    assert_eq!(host.metric("ratelimit_allowed"), Some(5));
    assert_eq!(host.metric("ratelimit_limited"), Some(1));
}

#[test]
fn tokens_come_back_with_the_host_clock() {
    let mut host = limiter(PER_IP);
    assert_eq!(
        statuses(&mut host, 4, "10.0.0.1:1", "/", &[]),
        [200, 200, 200, 429]
    );
    host.advance(Duration::from_millis(19_900));
    assert_eq!(
        send(&mut host, "10.0.0.1:1", "/", &[])
            .header("retry-after")
            .as_deref(),
        Some("1")
    );
    host.advance(Duration::from_millis(100));
    assert_eq!(statuses(&mut host, 2, "10.0.0.1:1", "/", &[]), [200, 429]);
    host.advance(Duration::from_secs(3600));
    assert_eq!(
        statuses(&mut host, 4, "10.0.0.1:1", "/", &[]),
        [200, 200, 200, 429],
        "never more than the capacity"
    );
}

#[test]
fn several_limits_apply_and_refused_requests_take_no_tokens() {
    let mut host = limiter(
        r#"{"rules": [{"name": "ip", "key": "client_ip",
            "limits": [{"requests": 2, "per": "second"}, {"requests": 5, "per": "minute"}]}]}"#,
    );
    let c = "10.0.0.9:1";
    assert_eq!(statuses(&mut host, 4, c, "/", &[]), [200, 200, 429, 429]);
    let refused = send(&mut host, c, "/", &[]);
    assert_eq!(
        refused.header("x-ratelimit-limit").as_deref(),
        Some("2"),
        "the per-second limit refused it"
    );
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    host.advance(Duration::from_secs(1));
    // The three refusals took nothing from the per-minute bucket: 3 of its 5 are left.
    let seen = send(&mut host, c, "/", &[]);
    assert_eq!(seen.header("x-ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(seen.header("x-ratelimit-remaining").as_deref(), Some("1"));
    let seen = send(&mut host, c, "/", &[]);
    assert_eq!(seen.status(), 200);
    assert_eq!(
        (
            seen.header("x-ratelimit-limit").as_deref(),
            seen.header("x-ratelimit-remaining").as_deref()
        ),
        (Some("2"), Some("0")),
        "the headers show the bucket with the fewest tokens left"
    );
    host.advance(Duration::from_secs(1));
    let seen = send(&mut host, c, "/", &[]);
    assert_eq!(seen.status(), 200);
    assert_eq!(seen.header("x-ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(seen.header("x-ratelimit-remaining").as_deref(), Some("0"));
    let refused = send(&mut host, c, "/", &[]);
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.header("x-ratelimit-limit").as_deref(),
        Some("5"),
        "now the minute limit refuses"
    );
    assert_eq!(refused.header("retry-after").as_deref(), Some("10"));
}

#[test]
fn header_keys_count_per_value_and_skip_requests_without_it() {
    let mut host = limiter(
        r#"{"rules": [{"name": "key", "key": {"header": "X-Api-Key"}, "limits": [{"requests": 2, "per": "hour"}]}]}"#,
    );
    assert_eq!(
        statuses(&mut host, 3, "10.0.0.1:1", "/", &[("x-api-key", "alpha")]),
        [200, 200, 429]
    );
    assert_eq!(
        statuses(&mut host, 3, "10.0.0.2:1", "/", &[("x-api-key", "beta")]),
        [200, 200, 429]
    );
    let free = send(&mut host, "10.0.0.1:1", "/", &[]);
    assert_eq!(free.status(), 200, "no key, no limit");
    assert_eq!(free.header("x-ratelimit-limit"), None);
    assert!(
        host.shared_data("ratelimit/rl/key/3600000/alpha").is_some(),
        "keyed by domain, rule, period, value"
    );
}

#[test]
fn path_and_route_keys_and_path_prefix_rules() {
    let mut host = limiter(
        r#"{"rules": [
            {"name": "per-path", "match": {"path": {"prefix": "/api/"}}, "key": "path", "limits": [{"requests": 2, "per": "minute"}]},
            {"name": "search", "match": {"path": {"exact": "/search"}, "methods": ["get"]}, "key": "route", "limits": [{"requests": 1, "per": "minute"}]}
        ]}"#,
    );
    assert_eq!(
        statuses(&mut host, 3, "10.0.0.1:1", "/api/a?x=1", &[]),
        [200, 200, 429]
    );
    assert_eq!(
        statuses(&mut host, 1, "10.0.0.1:1", "/api/a?x=2", &[]),
        [429],
        "the query is not part of the path"
    );
    assert_eq!(
        statuses(&mut host, 2, "10.0.0.2:1", "/api/b", &[]),
        [200, 200]
    );
    assert_eq!(
        statuses(&mut host, 5, "10.0.0.1:1", "/other", &[]),
        [200; 5],
        "only /api/ is limited"
    );
    assert_eq!(
        send(&mut host, "10.0.0.1:1", "/other", &[]).header("x-ratelimit-limit"),
        None
    );
    // One bucket for the route, whoever asks.
    assert_eq!(send(&mut host, "10.0.0.1:1", "/search", &[]).status(), 200);
    assert_eq!(send(&mut host, "10.0.0.2:1", "/search", &[]).status(), 429);
}

#[test]
fn every_matching_rule_applies() {
    let mut host = limiter(
        r#"{"rules": [
            {"name": "ip", "key": "client_ip", "limits": [{"requests": 3, "per": "minute"}]},
            {"name": "api", "match": {"path": {"prefix": "/api"}}, "key": "route", "limits": [{"requests": 10, "per": "minute"}]}
        ]}"#,
    );
    assert_eq!(
        statuses(&mut host, 4, "10.0.0.1:1", "/api", &[]),
        [200, 200, 200, 429]
    );
    for client in 2..=8 {
        send(&mut host, &format!("10.0.0.{client}:1"), "/api", &[]);
    }
    // 3 + 7 = 10: the route bucket is empty for everyone now.
    let refused = send(&mut host, "10.0.0.9:1", "/api", &[]);
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.header("x-ratelimit-limit").as_deref(), Some("10"));
    // The refusal gave back the token the ip rule had taken for it.
    assert_eq!(
        statuses(&mut host, 3, "10.0.0.9:1", "/other", &[]),
        [200, 200, 200]
    );
}

#[test]
fn buckets_live_in_shared_data_so_every_worker_sees_them() {
    let mut host = limiter(PER_IP);
    assert_eq!(send(&mut host, "10.0.0.1:1", "/", &[]).status(), 200);
    let key = "ratelimit/rl/ip/60000/10.0.0.1";
    let (state, cas) = host.shared_data(key).expect("the bucket");
    assert_eq!(state.len(), 16);
    // Another worker empties the bucket.
    let now = host
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let empty = crate::bucket::Bucket {
        tokens: 0,
        updated: now,
    };
    host.set_shared_data(key, empty.encode().to_vec());
    assert!(host.shared_data(key).unwrap().1 > cas);
    assert_eq!(send(&mut host, "10.0.0.1:1", "/", &[]).status(), 429);
    // A reload keeps the buckets (shared data outlives the VM's config).
    assert!(host.configure(PER_IP));
    assert_eq!(send(&mut host, "10.0.0.1:1", "/", &[]).status(), 429);
}

#[test]
fn response_headers_can_be_left_off_allowed_responses_and_the_status_changed() {
    let mut host = limiter(
        r#"{"response_headers": false, "status": 503, "domain": "shared",
            "rules": [{"key": "client_ip", "limits": [{"requests": 1, "per": "second"}]}]}"#,
    );
    let ok = send(&mut host, "10.0.0.1:1", "/", &[]);
    assert_eq!((ok.status(), ok.header("x-ratelimit-limit")), (200, None));
    let refused = send(&mut host, "10.0.0.1:1", "/", &[]);
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.header("x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    assert!(
        host.shared_data("ratelimit/shared/rule0/1000/10.0.0.1")
            .is_some()
    );
}
