//! The built-in router filter (filters/router) in a real weft with two workers, in front of
//! real upstreams (each answers with `x-upstream: <name>`): a canary split, header-based
//! version routing, sticky splits, rewrites the upstream sees, redirects and direct
//! responses, and requests no rule matches falling through to weft's own routes.
//!
//! The module is `target/filters/router.wasm`; when it is missing the test builds it with
//! scripts/build-filters.sh.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{Value, json};
use weft_e2e::*;

fn module() -> PathBuf {
    filter_module("router")
}

/// A weft with two workers, the router configured with `routes`, a catch-all weft route to
/// `web`, and a cluster per upstream (named after it).
fn start(routes: Value, ups: &[&Upstream]) -> Weft {
    let config = json!({ "routes": routes }).to_string();
    let clusters: String = ups
        .iter()
        .map(|u| cluster_yaml(&u.name, &[u.addr], ""))
        .collect();
    let yaml = format!(
        "admin: {{ address: 127.0.0.1:0 }}\nwasm: {{ callback_deadline: 250ms }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    filters:\n      - name: router\n        module: {}\n        config: '{}'\n    routes:\n      - match: {{ path: {{ prefix: /weft-only }} }}\n        direct_response: {{ status: 200, body: weft }}\n      - cluster: web\nclusters:\n{clusters}",
        module().display(),
        config.replace('\'', "''"),
    );
    Weft::start(&yaml, 2)
}

/// Sends `n` GETs of `path` (8 at a time, each task on its own connection) and counts
/// the answers by `x-upstream`.
async fn spread(
    addr: std::net::SocketAddr,
    path: &str,
    n: usize,
    headers: &[(&str, &str)],
) -> HashMap<String, usize> {
    let tasks = 8;
    let mut joins = Vec::new();
    for t in 0..tasks {
        let path = path.to_string();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        joins.push(tokio::spawn(async move {
            let client = http1_client();
            let pairs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut counts = HashMap::new();
            for _ in (t..n).step_by(tasks) {
                let reply = get(&client, addr, &path, &pairs).await;
                assert_eq!(reply.status, 200, "{}", reply.text());
                let up = reply.header("x-upstream").unwrap_or("none").to_string();
                *counts.entry(up).or_insert(0) += 1;
            }
            counts
        }));
    }
    let mut total = HashMap::new();
    for j in joins {
        for (k, v) in j.await.unwrap() {
            *total.entry(k).or_insert(0) += v;
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_split_90_10_over_2000_requests() {
    let (stable, canary, web) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
        Upstream::start("web").await,
    );
    let weft = start(
        json!([{
            "match": {"path": {"prefix": "/app"}},
            "weighted_clusters": [{"cluster": "stable", "weight": 90}, {"cluster": "canary", "weight": 10}]
        }]),
        &[&stable, &canary, &web],
    );
    let counts = spread(weft.addr("main"), "/app/page", 2000, &[]).await;
    let to_canary = counts.get("canary").copied().unwrap_or(0);
    let to_stable = counts.get("stable").copied().unwrap_or(0);
    assert_eq!(to_canary + to_stable, 2000, "{counts:?}");
    // 10 % of 2000 is 200; within +-5 % of the requests (+-100).
    assert!((100..=300).contains(&to_canary), "{counts:?}");
    eprintln!("canary split: {counts:?}");
    assert_eq!(weft.metric("router_matched_total"), 2000.0);
    assert_eq!(web.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_routing_by_header_and_fall_through_to_weft_routes() {
    let (v1, v2, web) = (
        Upstream::start("reviews-v1").await,
        Upstream::start("reviews-v2").await,
        Upstream::start("web").await,
    );
    let weft = start(
        json!([
            {"match": {"path": {"prefix": "/reviews"}, "headers": [{"name": "x-version", "exact": "v2"}]}, "cluster": "reviews-v2"},
            {"match": {"path": {"prefix": "/reviews"}}, "cluster": "reviews-v1"}
        ]),
        &[&v1, &v2, &web],
    );
    let (client, addr) = (http1_client(), weft.addr("main"));
    for _ in 0..10 {
        let r = get(&client, addr, "/reviews/1", &[("x-version", "v2")]).await;
        assert_eq!(
            (r.status, r.header("x-upstream")),
            (200, Some("reviews-v2"))
        );
        let r = get(&client, addr, "/reviews/1", &[]).await;
        assert_eq!(
            (r.status, r.header("x-upstream")),
            (200, Some("reviews-v1"))
        );
        let r = get(&client, addr, "/reviews/1", &[("x-version", "v3")]).await;
        assert_eq!(r.header("x-upstream"), Some("reviews-v1"));
    }
    // No rule matches: weft's own routes decide.
    let r = get(&client, addr, "/ratings", &[("x-version", "v2")]).await;
    assert_eq!((r.status, r.header("x-upstream")), (200, Some("web")));
    let r = get(&client, addr, "/weft-only", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "weft"));
    assert_eq!(v2.request_count(), 10);
    assert_eq!(weft.metric("router_unmatched_total"), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_and_host_rewrites_reach_the_upstream() {
    let (shop, web) = (Upstream::start("shop").await, Upstream::start("web").await);
    let weft = start(
        json!([{"match": {"path": {"prefix": "/shop/"}}, "cluster": "shop",
                "prefix_rewrite": "/v2/", "host_rewrite": "shop.internal"}]),
        &[&shop, &web],
    );
    let client = http1_client();
    let r = get(&client, weft.addr("main"), "/shop/items/7?sort=asc", &[]).await;
    assert_eq!((r.status, r.header("x-upstream")), (200, Some("shop")));
    let seen = &shop.requests()[0];
    assert_eq!(seen.path, "/v2/items/7?sort=asc");
    assert_eq!(seen.headers["host"], "shop.internal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_split_redirect_and_direct_response() {
    let (a, b, web) = (
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("web").await,
    );
    let weft = start(
        json!([
            {"match": {"path": {"exact": "/ping"}}, "direct_response": {"status": 200, "body": "pong"}},
            {"match": {"path": {"prefix": "/old/"}}, "redirect": {"status": 308, "prefix_rewrite": "/new/"}},
            {"match": {"path": {"prefix": "/s"}}, "sticky": {"cookie": "session"},
             "weighted_clusters": [{"cluster": "a", "weight": 50}, {"cluster": "b", "weight": 50}]}
        ]),
        &[&a, &b, &web],
    );
    let addr = weft.addr("main");
    // Each session stays on one side over 16 connections (spread over both workers);
    // the sessions between them use both sides.
    let mut sides = HashMap::new();
    for user in 0..8 {
        let cookie = format!("session=user-{user}");
        let counts = spread(addr, "/s", 16, &[("cookie", &cookie)]).await;
        assert_eq!(counts.len(), 1, "user-{user}: {counts:?}");
        let side = counts.into_keys().next().unwrap();
        let expected = if weft_hash(&format!("user-{user}")) % 100 < 50 {
            "a"
        } else {
            "b"
        };
        assert_eq!(side, expected, "user-{user}");
        *sides.entry(side).or_insert(0) += 1;
    }
    assert_eq!(sides.len(), 2, "{sides:?}");

    let client = http1_client();
    let r = get(&client, addr, "/ping", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "pong"));
    let r = get(&client, addr, "/old/a?x=1", &[("host", "shop.example")]).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("http://shop.example/new/a?x=1"));
    assert_eq!(web.request_count(), 0);
}

/// FNV-1a 64, as `weft_sdk::hash::fnv1a64` (the sticky hash; this crate does not link the
/// SDK).
fn weft_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
