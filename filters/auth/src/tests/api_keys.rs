//! API keys: the constant-time comparison with configured keys, `key_sha256` keys learnt
//! by the VM after their first use, and what a request reads of its head (single headers,
//! or the whole map when a value may join repeated headers).

use proxy_wasm::types::Action;
use serde_json::json;
use weft_sdk::testing::Host;

use crate::config::Config;
use crate::request::Needs;

/// SHA-256 of `hunter2`.
const HUNTER2: &str = "f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7";

fn parse(config: serde_json::Value) -> Config {
    Config::parse(&serde_json::to_vec(&config).unwrap()).expect("valid config")
}

fn keys_config() -> Config {
    parse(json!({
        "api_key": {"header": "x-api-key", "keys": [
            {"key": "test-key-1", "consumer": "a"},
            {"key_sha256": HUNTER2, "consumer": "b"},
            {"key": "hunter2", "consumer": "c"},
            {"key": "test-key-10", "consumer": "d"}
        ]},
        "default": {"require_any": ["api_key"]}
    }))
}

#[test]
fn keys_match_only_exactly_and_the_first_configured_owner_wins() {
    let config = keys_config();
    let keys = config.api_keys.as_ref().unwrap();
    assert_eq!(keys.lookup("test-key-1"), Some("a"));
    assert_eq!(keys.lookup("test-key-10"), Some("d"));
    for wrong in [
        "test-key-",
        "test-key-100",
        "test-key-2",
        "TEST-KEY-1",
        "t",
        "hunter",
        "x",
    ] {
        assert_eq!(keys.lookup(wrong), None, "{wrong}");
    }
    // `hunter2` is both the digest of key b and key c: b comes first.
    assert_eq!(keys.lookup("hunter2"), Some("b"));
}

#[test]
fn a_hashed_key_is_learnt_on_first_use_and_still_matches_only_itself() {
    let config = keys_config();
    let keys = config.api_keys.as_ref().unwrap();
    assert_eq!(keys.learnt(), 3, "the three plain keys");
    assert_eq!(keys.lookup("hunter3"), None);
    assert_eq!(keys.learnt(), 3, "a wrong key teaches nothing");
    assert_eq!(keys.lookup("hunter2"), Some("b"));
    assert_eq!(keys.learnt(), 4);
    assert_eq!(keys.lookup("hunter2"), Some("b"));
    for wrong in ["hunter", "hunter22", "hunter3", "Hunter2", ""] {
        assert_eq!(keys.lookup(wrong), None, "{wrong}");
    }
}

#[test]
fn a_config_needs_only_the_headers_its_credentials_are_in() {
    let needs = Needs::of(&keys_config());
    assert_eq!(
        needs,
        Needs {
            method: false,
            path: false,
            headers: vec!["x-api-key".into()],
            all_headers: false,
        }
    );
    let needs = Needs::of(&parse(json!({
        "jwt_providers": {"idp": {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]},
                                  "from_headers": [{"name": "X-Token"}, {"name": "authorization", "value_prefix": "Bearer "}]}},
        "api_key": {"header": "x-token", "query": "key", "keys": [{"key": "k", "consumer": "c"}]},
        "basic": {"users": []},
        "rules": [{"match": {"methods": ["GET"]}, "require_any": ["api_key"]}],
        "default": {"require_any": ["jwt:idp", "basic"]}
    })));
    assert_eq!(
        needs,
        Needs {
            method: true,
            path: true,
            headers: vec!["x-token".into(), "authorization".into()],
            all_headers: false,
        }
    );
    let needs = Needs::of(&parse(json!({
        "ext_authz": {"cluster": "authz"},
        "rules": [{"match": {"path": {"prefix": "/a"}}, "public": true}]
    })));
    assert!(needs.all_headers && needs.method && needs.path, "{needs:?}");
}

#[test]
fn a_repeated_key_header_counts_with_its_first_value_as_before() {
    let mut host = Host::new(crate::register);
    assert!(
        host.configure(
            json!({
                "api_key": {"header": "x-api-key", "keys": [{"key": "good", "consumer": "svc"}]},
                "default": {"require_any": ["api_key"]}
            })
            .to_string()
        )
    );
    let head = [(":method", "GET"), (":path", "/"), (":authority", "a")];
    for (values, allowed) in [
        (&["good"][..], true),
        (&["good", "bad"][..], true),
        (&["bad", "good"][..], false),
        (&["good,bad"][..], false),
    ] {
        let mut http = host.http();
        let mut headers = head.to_vec();
        headers.extend(values.iter().map(|v| ("x-api-key", *v)));
        headers.push(("x-consumer", "spoofed"));
        let action = http.request_headers(&headers, true);
        assert_eq!(action == Action::Continue, allowed, "{values:?}");
        if allowed {
            assert_eq!(http.request_header("x-consumer").as_deref(), Some("svc"));
            assert_eq!(
                http.request_header("x-api-key"),
                None,
                "the key is not forwarded"
            );
        } else {
            assert_eq!(http.local_reply().map(|r| r.status), Some(401));
        }
    }
}
