//! Rule matching: exact and prefix paths, methods, first match wins, the default.

use crate::rules::{PathMatch, Rule, RuleMatch, select};

fn rule(path: Option<PathMatch>, methods: &[&str]) -> Rule {
    Rule::public(RuleMatch {
        path,
        methods: methods.iter().map(|m| m.to_string()).collect(),
    })
}

#[test]
fn paths_match_exactly_or_by_prefix_without_the_query() {
    let exact = RuleMatch {
        path: Some(PathMatch::Exact("/health".into())),
        methods: vec![],
    };
    assert!(exact.matches("GET", "/health"));
    assert!(exact.matches("GET", "/health?full=1"));
    assert!(!exact.matches("GET", "/health/x"));
    let prefix = RuleMatch {
        path: Some(PathMatch::Prefix("/api".into())),
        methods: vec![],
    };
    assert!(prefix.matches("GET", "/api/v1"));
    assert!(prefix.matches("GET", "/apix"));
    assert!(!prefix.matches("GET", "/ap"));
    assert!(RuleMatch::default().matches("DELETE", "/anything"));
}

#[test]
fn methods_narrow_a_rule() {
    let m = RuleMatch {
        path: None,
        methods: vec!["GET".into(), "HEAD".into()],
    };
    assert!(m.matches("HEAD", "/"));
    assert!(!m.matches("POST", "/"));
}

#[test]
fn the_first_matching_rule_wins_and_the_default_covers_the_rest() {
    let rules = vec![
        rule(Some(PathMatch::Exact("/a".into())), &["POST"]),
        rule(Some(PathMatch::Prefix("/a".into())), &[]),
    ];
    let default = rule(None, &["PUT"]);
    let pick = |m: &str, p: &str| select(&rules, Some(&default), m, p).map(|r| r as *const Rule);
    assert_eq!(pick("POST", "/a"), Some(&rules[0] as *const Rule));
    assert_eq!(pick("GET", "/a"), Some(&rules[1] as *const Rule));
    assert_eq!(pick("GET", "/b"), Some(&default as *const Rule));
    assert!(select(&rules, None, "GET", "/b").is_none());
}
