//! The router on the SDK's harness: matching, splits, rewrites, redirects, direct responses.

use std::collections::HashMap;
use std::time::Duration;

use weft_sdk::proxy_wasm::types::Action;
use weft_sdk::testing::Host;

use super::{cluster_for, request, router};

const KINDS: &str = r#"{"routes": [
    {"name": "health", "match": {"path": {"exact": "/healthz"}}, "cluster": "health"},
    {"name": "user", "match": {"path": {"regex": "/users/[0-9]+"}}, "cluster": "users"},
    {"name": "write", "match": {"path": {"prefix": "/api"}, "methods": ["post", "PUT"]}, "cluster": "api-write"},
    {"name": "debug", "match": {"path": {"prefix": "/api"}, "query": [{"name": "debug", "exact": "on"}]}, "cluster": "api-debug"},
    {"name": "read", "match": {"path": {"prefix": "/api"}}, "cluster": "api-read"}
]}"#;

#[test]
fn paths_match_exactly_by_prefix_and_by_whole_path_regex() {
    let mut host = router(KINDS);
    let mut to = |method: &str, path: &str| cluster_for(&mut host, method, path, &[]);
    assert_eq!(to("GET", "/healthz").as_deref(), Some("health"));
    assert_eq!(
        to("GET", "/healthz?probe=1").as_deref(),
        Some("health"),
        "the query is not part of the path"
    );
    assert_eq!(to("GET", "/healthz/x"), None, "exact is exact");
    assert_eq!(to("GET", "/users/42").as_deref(), Some("users"));
    assert_eq!(
        to("GET", "/users/42/orders"),
        None,
        "a regex must match the whole path"
    );
    assert_eq!(to("GET", "/users/abc"), None);
    assert_eq!(to("GET", "/api/items").as_deref(), Some("api-read"));
    assert_eq!(
        to("GET", "/apiary").as_deref(),
        Some("api-read"),
        "a prefix is a string prefix"
    );
    assert_eq!(to("GET", "/other"), None);
}

#[test]
fn methods_and_query_parameters_match_and_the_first_rule_wins() {
    let mut host = router(KINDS);
    let mut to = |method: &str, path: &str| cluster_for(&mut host, method, path, &[]);
    assert_eq!(
        to("POST", "/api/items").as_deref(),
        Some("api-write"),
        "methods are compared upper-case"
    );
    assert_eq!(
        to("PUT", "/api/items?debug=on").as_deref(),
        Some("api-write"),
        "the earlier rule wins"
    );
    assert_eq!(
        to("GET", "/api/items?x=1&debug=on").as_deref(),
        Some("api-debug")
    );
    assert_eq!(
        to("GET", "/api/items?debug=%6Fn").as_deref(),
        Some("api-debug"),
        "values are decoded"
    );
    assert_eq!(
        to("GET", "/api/items?debug=off").as_deref(),
        Some("api-read")
    );
    assert_eq!(to("DELETE", "/api/items").as_deref(), Some("api-read"));
}

const VERSIONS: &str = r#"{"routes": [
    {"match": {"path": {"prefix": "/reviews"}, "headers": [{"name": "X-Version", "exact": "v2"}]}, "cluster": "reviews-v2"},
    {"match": {"path": {"prefix": "/reviews"}, "headers": [{"name": "x-beta", "regex": "yes|true"}, {"name": "x-legacy", "present": false}]}, "cluster": "reviews-beta"},
    {"match": {"path": {"prefix": "/reviews"}, "headers": [{"name": "user-agent", "prefix": "curl/"}]}, "cluster": "reviews-curl"},
    {"match": {"path": {"prefix": "/reviews"}}, "cluster": "reviews-v1"}
]}"#;

#[test]
fn header_based_version_routing() {
    let mut host = router(VERSIONS);
    let mut to =
        |headers: &[(&str, &str)]| cluster_for(&mut host, "GET", "/reviews/1", headers).unwrap();
    assert_eq!(to(&[("x-version", "v2")]), "reviews-v2");
    assert_eq!(
        to(&[("X-Version", "v2")]),
        "reviews-v2",
        "header names are case-insensitive"
    );
    assert_eq!(to(&[("x-version", "v3")]), "reviews-v1");
    assert_eq!(to(&[]), "reviews-v1");
    assert_eq!(to(&[("x-beta", "true")]), "reviews-beta");
    assert_eq!(
        to(&[("x-beta", "truer")]),
        "reviews-v1",
        "a header regex must match the whole value"
    );
    assert_eq!(
        to(&[("x-beta", "yes"), ("x-legacy", "1")]),
        "reviews-v1",
        "present: false"
    );
    assert_eq!(
        to(&[("x-version", "v1"), ("x-version", "v2")]),
        "reviews-v2",
        "any value of a repeated header"
    );
    assert_eq!(to(&[("user-agent", "curl/8.5")]), "reviews-curl");
}

#[test]
fn a_request_no_rule_matches_is_left_to_weft_s_routes() {
    let mut host = router(VERSIONS);
    let (http, action) = request(&mut host, "GET", "/ratings/1", &[("x-version", "v2")]);
    assert_eq!(action, Action::Continue);
    assert_eq!(http.cluster(), None);
    assert_eq!(http.local_reply(), None);
    assert_eq!(http.request_header(":path").as_deref(), Some("/ratings/1"));
    http.finish();
    cluster_for(&mut host, "GET", "/reviews", &[]);
    assert_eq!(host.metric("router_unmatched"), Some(1));
    assert_eq!(host.metric("router_matched"), Some(1));
}

const CANARY: &str = r#"{"routes": [{"match": {"path": {"prefix": "/"}},
    "weighted_clusters": [{"cluster": "stable", "weight": 90}, {"cluster": "canary", "weight": 10}, {"cluster": "off", "weight": 0}]}]}"#;

fn split_counts(
    host: &mut Host,
    n: usize,
    headers: impl Fn(usize) -> Vec<(String, String)>,
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for i in 0..n {
        let owned = headers(i);
        let pairs: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let cluster = cluster_for(host, "GET", "/x", &pairs).expect("a cluster");
        *counts.entry(cluster).or_default() += 1;
    }
    counts
}

#[test]
fn a_weighted_split_follows_the_weights() {
    let mut host = router(CANARY);
    let counts = split_counts(&mut host, 10_000, |_| Vec::new());
    let canary = counts.get("canary").copied().unwrap_or(0);
    // Binomial(10000, 0.1): sd 30; 1000 +- 150 is five standard deviations.
    assert!((850..=1150).contains(&canary), "{counts:?}");
    assert_eq!(
        canary + counts["stable"],
        10_000,
        "a weight of 0 is never chosen: {counts:?}"
    );
}

#[test]
fn the_split_differs_between_vms_seeded_at_different_times() {
    let sequence = |offset: Duration| {
        let mut host = Host::new(crate::register);
        let start = host.now();
        host.set_time(start + offset);
        assert!(host.configure(CANARY));
        let picks: Vec<String> = (0..64)
            .map(|_| cluster_for(&mut host, "GET", "/", &[]).unwrap())
            .collect();
        drop(host);
        picks
    };
    let a = sequence(Duration::ZERO);
    assert_eq!(
        a,
        sequence(Duration::ZERO),
        "the same seed gives the same sequence"
    );
    assert_ne!(
        a,
        sequence(Duration::from_nanos(1)),
        "another clock reading, another sequence"
    );
}

const STICKY_COOKIE: &str = r#"{"routes": [{"match": {}, "sticky": {"cookie": "session"},
    "weighted_clusters": [{"cluster": "stable", "weight": 90}, {"cluster": "canary", "weight": 10}]}]}"#;

#[test]
fn a_sticky_cookie_keeps_a_client_on_one_side_of_the_split() {
    let mut host = router(STICKY_COOKIE);
    for user in 0..200 {
        let cookie = format!("theme=dark; session=user-{user}");
        let first = cluster_for(&mut host, "GET", "/", &[("cookie", &cookie)]).unwrap();
        for _ in 0..5 {
            assert_eq!(
                cluster_for(&mut host, "GET", "/", &[("cookie", &cookie)]).unwrap(),
                first
            );
        }
        // The same on another VM (another worker, seeded differently).
        let expected = weft_sdk::hash::bucket(format!("user-{user}").as_bytes(), 100);
        assert_eq!(first == "canary", expected >= 90, "user-{user}");
    }
    // Distinct sessions spread by the weights.
    let counts = split_counts(&mut host, 5_000, |i| {
        vec![("cookie".into(), format!("session=s{i}"))]
    });
    assert!((350..=650).contains(&counts["canary"]), "{counts:?}");
}

#[test]
fn requests_without_the_sticky_value_are_split_at_random() {
    let mut host = router(STICKY_COOKIE);
    let counts = split_counts(&mut host, 2_000, |_| {
        vec![("cookie".into(), "other=1".into())]
    });
    assert!((120..=280).contains(&counts["canary"]), "{counts:?}");
}

#[test]
fn a_sticky_header_hashes_its_value() {
    let mut host = router(
        r#"{"routes": [{"match": {}, "sticky": {"header": "X-User"},
            "weighted_clusters": [{"cluster": "a", "weight": 1}, {"cluster": "b", "weight": 1}]}]}"#,
    );
    let mut seen = HashMap::new();
    for user in ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal"] {
        let first = cluster_for(&mut host, "GET", "/", &[("x-user", user)]).unwrap();
        for _ in 0..10 {
            assert_eq!(
                cluster_for(&mut host, "GET", "/", &[("x-user", user)]).unwrap(),
                first
            );
        }
        let expected = if weft_sdk::hash::fnv1a64(user.as_bytes()) % 2 == 0 {
            "a"
        } else {
            "b"
        };
        assert_eq!(first, expected);
        *seen.entry(first).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both sides get users: {seen:?}");
}

#[test]
fn prefix_and_host_rewrites_change_the_request_sent_upstream() {
    let mut host = router(
        r#"{"routes": [
            {"match": {"path": {"prefix": "/shop/"}}, "cluster": "shop", "prefix_rewrite": "/v2/", "host_rewrite": "shop.internal:8080"},
            {"match": {"path": {"prefix": "/legacy"}}, "cluster": "legacy", "prefix_rewrite": "/"}
        ]}"#,
    );
    let (http, _) = request(&mut host, "GET", "/shop/items/7?sort=asc&q=a%20b", &[]);
    assert_eq!(http.cluster().as_deref(), Some("shop"));
    assert_eq!(
        http.request_header(":path").as_deref(),
        Some("/v2/items/7?sort=asc&q=a%20b")
    );
    assert_eq!(
        http.request_header(":authority").as_deref(),
        Some("shop.internal:8080")
    );
    http.finish();
    for (from, to) in [("/legacy/a", "/a"), ("/legacy", "/"), ("/legacyx", "/x")] {
        let (http, _) = request(&mut host, "GET", from, &[]);
        assert_eq!(http.request_header(":path").as_deref(), Some(to), "{from}");
        assert_eq!(
            http.request_header(":authority").as_deref(),
            Some("shop.example")
        );
        http.finish();
    }
}

#[test]
fn redirects_keep_what_they_do_not_change() {
    let mut host = router(
        r#"{"routes": [
            {"match": {"path": {"prefix": "/old/"}}, "redirect": {"prefix_rewrite": "/new/"}},
            {"match": {"path": {"exact": "/login"}}, "redirect": {"status": 308, "scheme": "https", "host": "auth.example"}},
            {"match": {"path": {"exact": "/home"}}, "redirect": {"status": 302, "path": "/", "strip_query": true}}
        ]}"#,
    );
    for (path, status, location) in [
        ("/old/a/b?x=1", 301, "http://shop.example/new/a/b?x=1"),
        (
            "/login?next=%2F",
            308,
            "https://auth.example/login?next=%2F",
        ),
        ("/home?x=1", 302, "http://shop.example/"),
    ] {
        let (http, action) = request(&mut host, "GET", path, &[]);
        assert_eq!(action, Action::Pause, "{path}");
        let reply = http.local_reply().expect("a redirect");
        assert_eq!(reply.status, status, "{path}");
        assert_eq!(
            reply.header("location").as_deref(),
            Some(location),
            "{path}"
        );
        assert_eq!(http.cluster(), None);
        http.finish();
    }
}

#[test]
fn direct_responses_answer_without_an_upstream() {
    let mut host = router(
        r#"{"routes": [
            {"match": {"path": {"exact": "/ping"}}, "direct_response": {"status": 200, "body": "pong\n"}},
            {"match": {"path": {"exact": "/gone"}, "methods": ["GET"]}, "direct_response": {"status": 410, "body": "{}", "content_type": "application/json"}},
            {"match": {"path": {"exact": "/empty"}}, "direct_response": {"status": 204}}
        ]}"#,
    );
    let (http, action) = request(&mut host, "GET", "/ping", &[]);
    assert_eq!(action, Action::Pause);
    let reply = http.local_reply().unwrap();
    assert_eq!((reply.status, reply.body_text().as_str()), (200, "pong\n"));
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    let (http, _) = request(&mut host, "GET", "/gone", &[]);
    let reply = http.local_reply().unwrap();
    assert_eq!(
        (reply.status, reply.header("content-type").as_deref()),
        (410, Some("application/json"))
    );
    let (http, _) = request(&mut host, "POST", "/gone", &[]);
    assert_eq!(http.local_reply(), None, "the method does not match");
    let (http, _) = request(&mut host, "GET", "/empty", &[]);
    let reply = http.local_reply().unwrap();
    assert_eq!(
        (reply.status, reply.body.len(), reply.header("content-type")),
        (204, 0, None)
    );
}

#[test]
fn a_new_config_replaces_the_rules_and_a_refused_one_keeps_them() {
    let mut host = router(VERSIONS);
    assert!(host.configure(r#"{"routes": [{"match": {}, "cluster": "everything"}]}"#));
    assert_eq!(
        cluster_for(&mut host, "GET", "/reviews", &[]).as_deref(),
        Some("everything")
    );
    assert!(!host.configure(r#"{"routes": [{"match": {}}]}"#));
    assert_eq!(
        cluster_for(&mut host, "GET", "/reviews", &[]).as_deref(),
        Some("everything")
    );
    assert!(host.configure(""), "an empty config has no rules");
    assert_eq!(cluster_for(&mut host, "GET", "/reviews", &[]), None);
}
