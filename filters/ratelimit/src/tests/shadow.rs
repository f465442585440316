//! Shadow mode: count and log, never refuse.

use super::{limiter, send, statuses};

#[test]
fn shadow_mode_counts_and_logs_but_never_refuses() {
    let mut host = limiter(
        r#"{"shadow": true, "rules": [{"name": "ip", "key": "client_ip", "limits": [{"requests": 2, "per": "minute"}]}]}"#,
    );
    assert_eq!(statuses(&mut host, 5, "10.0.0.1:1", "/", &[]), [200; 5]);
    assert_eq!(host.metric("ratelimit_shadow_limited"), Some(3));
    assert_eq!(host.metric("ratelimit_limited"), Some(0));
    assert_eq!(host.metric("ratelimit_allowed"), Some(5));
    assert!(host.logged("ratelimit shadow: rule ip would refuse client 10.0.0.1 (2 per 60s)"));
    assert_eq!(
        send(&mut host, "10.0.0.1:1", "/", &[]).header("x-ratelimit-limit"),
        None,
        "shadow rules add no headers"
    );
}

#[test]
fn a_shadow_rule_next_to_an_enforced_one() {
    let mut host = limiter(
        r#"{"rules": [
            {"name": "trial", "shadow": true, "key": {"header": "x-api-key"}, "limits": [{"requests": 1, "per": "minute"}]},
            {"name": "ip", "key": "client_ip", "limits": [{"requests": 3, "per": "minute"}]}
        ]}"#,
    );
    let key = [("x-api-key", "secret-123")];
    assert_eq!(
        statuses(&mut host, 4, "10.0.0.1:1", "/", &key),
        [200, 200, 200, 429]
    );
    assert_eq!(
        host.metric("ratelimit_shadow_limited"),
        Some(3),
        "requests 2 to 4"
    );
    assert_eq!(host.metric("ratelimit_limited"), Some(1));
    assert!(host.logged("rule trial would refuse header x-api-key #"));
    assert!(
        !host.logged("secret-123"),
        "header values are logged only as a hash"
    );
}
