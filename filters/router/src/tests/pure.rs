//! The pure pieces: cluster picking, prefix rewriting, the generator.

use crate::matcher::RequestView;
use crate::rng::{Rng, seed};
use crate::route::{Redirect, pick, rewrite_prefix};

fn clusters(weights: &[(&str, u64)]) -> Vec<(String, u64)> {
    weights.iter().map(|(n, w)| (n.to_string(), *w)).collect()
}

#[test]
fn pick_lays_the_weights_end_to_end() {
    let c = clusters(&[("a", 90), ("b", 0), ("c", 10)]);
    assert_eq!(pick(&c, 100, 0), "a");
    assert_eq!(pick(&c, 100, 89), "a");
    assert_eq!(pick(&c, 100, 90), "c");
    assert_eq!(pick(&c, 100, 99), "c");
    assert_eq!(
        pick(&c, 100, 100),
        "a",
        "the roll is taken modulo the total"
    );
    // Raising the last weight only moves rolls onto it.
    let wider = clusters(&[("a", 80), ("b", 0), ("c", 20)]);
    for roll in 0..100 {
        if pick(&c, 100, roll) == "c" {
            assert_eq!(pick(&wider, 100, roll), "c");
        }
    }
}

#[test]
fn prefix_rewrites() {
    assert_eq!(rewrite_prefix("/api/v1/x", "/api/v1", "/v2"), "/v2/x");
    assert_eq!(rewrite_prefix("/api/x", "/api", "/"), "/x");
    assert_eq!(rewrite_prefix("/api", "/api", "/"), "/");
    assert_eq!(rewrite_prefix("/api/x", "/api/", "/v2/"), "/v2/x");
    assert_eq!(rewrite_prefix("/api/x", "/api", "/v2/"), "/v2/x");
    assert_eq!(rewrite_prefix("/apix", "/api", "/b"), "/bx");
}

#[test]
fn redirect_location_falls_back_to_the_host_header() {
    let req = RequestView::new(vec![
        (":method".into(), "GET".into()),
        (":path".into(), "/a?b=1".into()),
        ("host".into(), "h.example".into()),
    ]);
    let r = Redirect {
        status: 301,
        scheme: None,
        host: None,
        path: None,
        prefix_rewrite: None,
        strip_query: false,
    };
    assert_eq!(r.location(&req), "http://h.example/a?b=1");
}

#[test]
fn the_generator_is_deterministic_per_seed_and_shared_by_clones() {
    let a = Rng::new(seed(1, 1));
    let b = Rng::new(seed(1, 1));
    let first: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
    assert_eq!(first, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
    assert_ne!(seed(1, 1), seed(1, 2));
    let clone = a.clone();
    let x = clone.next_u64();
    assert_ne!(a.next_u64(), x, "a clone advances the shared state");
    // Low bits are spread: 10,000 draws land in 10 buckets about evenly.
    let mut buckets = [0u32; 10];
    for _ in 0..10_000 {
        buckets[(a.next_u64() % 10) as usize] += 1;
    }
    assert!(
        buckets.iter().all(|n| (850..1150).contains(n)),
        "{buckets:?}"
    );
}

#[test]
fn a_request_reads_only_what_the_rules_look_at() {
    use crate::config::Config;
    use crate::route::Needs;
    let needs = |json: &str| {
        let config: Config = weft_sdk::serde_json::from_str(json).expect("json");
        Needs::of(&config.compile().expect("valid"))
    };
    let (all, method, path) = (true, true, true);
    let cases = [
        (r#"{"routes": [{"cluster": "a"}]}"#, Needs::default()),
        (
            r#"{"routes": [{"match": {"path": {"prefix": "/"}}, "cluster": "a"}]}"#,
            Needs {
                path,
                ..Needs::default()
            },
        ),
        (
            r#"{"routes": [{"match": {"methods": ["GET"]}, "direct_response": {"status": 200}}]}"#,
            Needs {
                method,
                ..Needs::default()
            },
        ),
        (
            r#"{"routes": [{"match": {"query": [{"name": "q", "present": true}]}, "cluster": "a"}]}"#,
            Needs {
                path,
                ..Needs::default()
            },
        ),
        (
            r#"{"routes": [{"match": {"path": {"prefix": "/a"}}, "cluster": "a", "prefix_rewrite": "/b"}]}"#,
            Needs {
                path,
                ..Needs::default()
            },
        ),
        (
            r#"{"routes": [{"cluster": "a"}, {"match": {"headers": [{"name": "x-v", "exact": "2"}]}, "cluster": "b"}]}"#,
            Needs {
                all_headers: all,
                ..Needs::default()
            },
        ),
        (
            r#"{"routes": [{"weighted_clusters": [{"cluster": "a", "weight": 1}], "sticky": {"cookie": "s"}}]}"#,
            Needs {
                all_headers: all,
                ..Needs::default()
            },
        ),
        (
            r#"{"routes": [{"weighted_clusters": [{"cluster": "a", "weight": 1}]}]}"#,
            Needs::default(),
        ),
        (
            r#"{"routes": [{"redirect": {"status": 301}}]}"#,
            Needs {
                all_headers: all,
                ..Needs::default()
            },
        ),
    ];
    for (json, want) in cases {
        assert_eq!(needs(json), want, "{json}");
    }
}
