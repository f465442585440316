//! External authorization: the check request and what each answer means.

use serde_json::json;

use crate::config::Config;
use crate::engine::{Decision, Grant, Reply};
use crate::ext_authz::{check_request, outcome};
use crate::request::RequestView;

fn config(extra: serde_json::Value) -> Config {
    let mut authz = json!({"cluster": "authz", "path_prefix": "/check",
        "allowed_headers": ["authorization", "cookie"], "allowed_upstream_headers": ["x-user-id"]});
    for (k, v) in extra.as_object().unwrap() {
        authz[k] = v.clone();
    }
    let doc = json!({"ext_authz": authz, "default": {"ext_authz": true}});
    Config::parse(&serde_json::to_vec(&doc).unwrap()).unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_check_request_carries_method_path_and_allowed_headers() {
    let cfg = config(json!({}));
    let req = RequestView {
        method: "POST".into(),
        path: "/orders?id=1".into(),
        headers: pairs(&[
            (":method", "POST"),
            ("authorization", "Bearer t"),
            ("x-secret", "s"),
            ("cookie", "c=1"),
        ]),
    };
    let grant = Grant {
        set_headers: pairs(&[("x-consumer", "alice")]),
        ..Grant::default()
    };
    assert_eq!(
        check_request(cfg.ext_authz.as_ref().unwrap(), &req, &grant),
        pairs(&[
            (":method", "POST"),
            (":path", "/check/orders?id=1"),
            (":authority", "authz"),
            ("authorization", "Bearer t"),
            ("cookie", "c=1"),
            ("x-consumer", "alice")
        ])
    );
}

#[test]
fn a_2xx_allows_and_copies_only_the_allowed_headers_upstream() {
    let cfg = config(json!({}));
    let headers = pairs(&[(":status", "200"), ("x-user-id", "42"), ("x-other", "no")]);
    match outcome(
        cfg.ext_authz.as_ref().unwrap(),
        Some(204),
        &headers,
        b"",
        Grant::default(),
    ) {
        Decision::Allow(g) => assert_eq!(g.set_headers, pairs(&[("x-user-id", "42")])),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_denial_passes_the_services_status_body_and_client_headers() {
    let cfg = config(json!({}));
    let headers = pairs(&[
        (":status", "401"),
        ("www-authenticate", "Custom"),
        ("x-internal", "no"),
    ]);
    let d = outcome(
        cfg.ext_authz.as_ref().unwrap(),
        Some(401),
        &headers,
        b"go away",
        Grant::default(),
    );
    assert_eq!(
        d,
        Decision::Deny(Reply {
            status: 401,
            headers: pairs(&[("www-authenticate", "Custom")]),
            body: "go away".into()
        })
    );
    let odd = outcome(
        cfg.ext_authz.as_ref().unwrap(),
        Some(100),
        &[],
        b"",
        Grant::default(),
    );
    assert!(matches!(odd, Decision::Deny(Reply { status: 403, .. })));
}

#[test]
fn no_answer_denies_unless_failure_mode_allow() {
    let closed = config(json!({}));
    let d = outcome(
        closed.ext_authz.as_ref().unwrap(),
        None,
        &[],
        b"",
        Grant::default(),
    );
    assert!(
        matches!(d, Decision::Deny(Reply { status: 403, .. })),
        "{d:?}"
    );
    let custom = config(json!({"status_on_error": 503}));
    let d = outcome(
        custom.ext_authz.as_ref().unwrap(),
        None,
        &[],
        b"",
        Grant::default(),
    );
    assert!(
        matches!(d, Decision::Deny(Reply { status: 503, .. })),
        "{d:?}"
    );
    let open = config(json!({"failure_mode_allow": true}));
    let d = outcome(
        open.ext_authz.as_ref().unwrap(),
        None,
        &[],
        b"",
        Grant::default(),
    );
    assert!(matches!(d, Decision::Allow(_)));
}
