//! The decision for a request: rules, each authenticator, the 401 and 403 replies, and
//! the header changes on success. Also config checking.

use std::rc::Rc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::support::*;
use crate::config::Config;
use crate::engine::{Decision, Env, Grant, RemoteKeys, Reply, decide};
use crate::request::RequestView;

fn hmac_key() -> TestKey {
    TestKey::Hmac(b"test-only-hmac-secret-0123456789".to_vec())
}

fn config_json() -> Value {
    json!({
        "realm": "test",
        "jwt_providers": {
            "idp": {
                "issuer": "https://issuer.test",
                "audiences": ["api"],
                "jwks": jwks(&[(&hmac_key(), "k1")]),
                "forward_claims": {"email": "x-jwt-email"},
                "from_params": ["access_token"],
                "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}]
            },
            "remote": {
                "remote_jwks": {"cluster": "idp", "path": "/jwks.json", "cache_duration": "10m"},
                "forward": true
            }
        },
        "api_key": {"header": "x-api-key", "query": "api_key",
                    "keys": [{"key": "test-key-1", "consumer": "svc-a"},
                             {"key_sha256": "f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7", "consumer": "svc-b"}]},
        "basic": {"realm": "admins", "users": [{"username": "root", "password_hash": "sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7"}]},
        "ext_authz": {"cluster": "authz"},
        "rules": [
            {"match": {"path": {"prefix": "/public"}}, "public": true},
            {"match": {"path": {"prefix": "/admin"}}, "require_any": ["basic"], "ext_authz": false},
            {"match": {"path": {"prefix": "/remote"}}, "require_any": ["jwt:remote"], "ext_authz": false},
            {"match": {"path": {"prefix": "/checked"}}, "require_any": ["jwt:idp"]},
            {"match": {"path": {"prefix": "/api"}}, "require_any": ["jwt:idp", "api_key"], "ext_authz": false}
        ]
    })
}

fn config() -> Config {
    Config::parse(&serde_json::to_vec(&config_json()).unwrap()).expect("valid config")
}

fn request(path: &str, headers: &[(&str, &str)]) -> RequestView {
    RequestView {
        method: "GET".into(),
        path: path.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn run(config: &Config, req: &RequestView, remote: RemoteKeys) -> Decision {
    let remote_keys = |_| remote.clone();
    let remembered = |_: &[u8; 32]| false;
    decide(
        config,
        req,
        &Env {
            now: NOW,
            remote_keys: &remote_keys,
            remembered: &remembered,
        },
    )
}

fn allowed(d: Decision) -> Grant {
    match d {
        Decision::Allow(g) => g,
        other => panic!("expected Allow, got {other:?}"),
    }
}

fn denied(d: Decision) -> Reply {
    match d {
        Decision::Deny(r) => r,
        other => panic!("expected Deny, got {other:?}"),
    }
}

fn challenges(r: &Reply) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(k, _)| k == "www-authenticate")
        .map(|(_, v)| v.as_str())
        .collect()
}

fn bearer(claims: &Value) -> String {
    format!("Bearer {}", token(&hmac_key(), "k1", claims))
}

#[test]
fn public_paths_pass_but_lose_identity_headers_a_client_sent() {
    let g = allowed(run(
        &config(),
        &request("/public/x", &[("x-consumer", "admin")]),
        RemoteKeys::Missing,
    ));
    assert_eq!(g.remove_headers, ["x-consumer", "x-jwt-email"]);
    assert!(g.set_headers.is_empty());
}

#[test]
fn requests_no_rule_matches_are_forbidden_without_a_default() {
    assert_eq!(
        denied(run(&config(), &request("/other", &[]), RemoteKeys::Missing)).status,
        403
    );
    let mut with_default = config_json();
    with_default["default"] = json!({"public": true});
    let cfg = Config::parse(&serde_json::to_vec(&with_default).unwrap()).unwrap();
    allowed(run(&cfg, &request("/other", &[]), RemoteKeys::Missing));
}

#[test]
fn missing_credentials_get_401_with_one_challenge_per_scheme() {
    let r = denied(run(&config(), &request("/api/x", &[]), RemoteKeys::Missing));
    assert_eq!(r.status, 401);
    assert_eq!(
        challenges(&r),
        [r#"Bearer realm="test""#, r#"ApiKey realm="test""#]
    );
    let r = denied(run(&config(), &request("/admin", &[]), RemoteKeys::Missing));
    assert_eq!(challenges(&r), [r#"Basic realm="admins", charset="UTF-8""#]);
}

#[test]
fn a_good_jwt_sets_the_consumer_and_claims_and_strips_the_token() {
    let mut claims = good_claims();
    claims["email"] = json!("alice@example.test");
    let auth = bearer(&claims);
    let g = allowed(run(
        &config(),
        &request("/api/x", &[("authorization", &auth)]),
        RemoteKeys::Missing,
    ));
    assert_eq!(
        g.set_headers,
        [
            ("x-jwt-email".into(), "alice@example.test".into()),
            ("x-consumer".into(), "alice".into())
        ]
    );
    assert!(g.remove_headers.contains(&"authorization".to_string()));
}

#[test]
fn a_token_in_the_query_is_taken_out_of_the_path() {
    let t = token(&hmac_key(), "k1", &good_claims());
    let g = allowed(run(
        &config(),
        &request(&format!("/api/x?a=1&access_token={t}&b=2"), &[]),
        RemoteKeys::Missing,
    ));
    assert_eq!(g.path.as_deref(), Some("/api/x?a=1&b=2"));
}

#[test]
fn a_bad_jwt_gets_invalid_token_with_a_description() {
    let mut expired = good_claims();
    expired["exp"] = json!(NOW - 3600);
    let auth = bearer(&expired);
    let r = denied(run(
        &config(),
        &request("/api/x", &[("authorization", &auth)]),
        RemoteKeys::Missing,
    ));
    assert_eq!(r.status, 401);
    assert_eq!(
        challenges(&r),
        [r#"Bearer realm="test", error="invalid_token", error_description="the token is expired""#]
    );
    assert_eq!(r.body, "the token is expired\n");
}

#[test]
fn an_attacker_chosen_alg_cannot_break_out_of_the_challenge() {
    let t = token_with_header(
        &hmac_key(),
        &json!({"alg": "x\", evil=\"1"}),
        &good_claims(),
    );
    let auth = format!("Bearer {t}");
    let r = denied(run(
        &config(),
        &request("/api/x", &[("authorization", &auth)]),
        RemoteKeys::Missing,
    ));
    assert!(
        challenges(&r)[0]
            .ends_with(r#"error_description="the token algorithm x, evil=1 is not allowed""#),
        "{r:?}"
    );
}

#[test]
fn api_keys_from_header_or_query_name_their_consumer() {
    let g = allowed(run(
        &config(),
        &request("/api/x", &[("x-api-key", "test-key-1")]),
        RemoteKeys::Missing,
    ));
    assert_eq!(g.set_headers, [("x-consumer".into(), "svc-a".into())]);
    assert!(g.remove_headers.contains(&"x-api-key".to_string()));
    let g = allowed(run(
        &config(),
        &request("/api/x?api_key=hunter2", &[]),
        RemoteKeys::Missing,
    ));
    assert_eq!(g.set_headers, [("x-consumer".into(), "svc-b".into())]);
    assert_eq!(g.path.as_deref(), Some("/api/x"));
    let r = denied(run(
        &config(),
        &request("/api/x", &[("x-api-key", "nope")]),
        RemoteKeys::Missing,
    ));
    assert_eq!(
        (r.status, challenges(&r)),
        (401, vec![r#"ApiKey realm="test""#])
    );
}

#[test]
fn basic_auth_checks_the_password() {
    let good = format!("Basic {}", STANDARD.encode("root:hunter2"));
    let g = allowed(run(
        &config(),
        &request("/admin", &[("authorization", &good)]),
        RemoteKeys::Missing,
    ));
    assert_eq!(g.set_headers, [("x-consumer".into(), "root".into())]);
    assert!(g.remember.is_some());
    for bad in ["root:hunter3", "nobody:hunter2"] {
        let auth = format!("Basic {}", STANDARD.encode(bad));
        let r = denied(run(
            &config(),
            &request("/admin", &[("authorization", &auth)]),
            RemoteKeys::Missing,
        ));
        assert_eq!(r.status, 401, "{bad}");
        assert_eq!(challenges(&r), [r#"Basic realm="admins", charset="UTF-8""#]);
    }
}

#[test]
fn remote_keys_are_fetched_when_missing_and_used_when_ready() {
    let cfg = config();
    let remote_index = cfg
        .providers
        .iter()
        .position(|p| p.name == "remote")
        .unwrap();
    let auth = bearer(&good_claims());
    let req = request("/remote", &[("authorization", &auth)]);
    assert_eq!(
        run(&cfg, &req, RemoteKeys::Missing),
        Decision::FetchJwks(remote_index)
    );
    // No token: no fetch.
    assert_eq!(
        denied(run(&cfg, &request("/remote", &[]), RemoteKeys::Missing)).status,
        401
    );
    let r = denied(run(&cfg, &req, RemoteKeys::Failed));
    assert!(r.body.contains("could not be fetched"), "{r:?}");
    let ready = RemoteKeys::Ready(Rc::new(parse_jwks(&[(&hmac_key(), "k1")])));
    let g = allowed(run(&cfg, &req, ready));
    assert!(
        !g.remove_headers.contains(&"authorization".to_string()),
        "forward: true keeps the token"
    );
}

#[test]
fn ext_authz_runs_after_authentication() {
    let auth = bearer(&good_claims());
    match run(
        &config(),
        &request("/checked", &[("authorization", &auth)]),
        RemoteKeys::Missing,
    ) {
        Decision::AskExtAuthz(g) => {
            assert_eq!(g.set_headers, [("x-consumer".into(), "alice".into())])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        denied(run(
            &config(),
            &request("/checked", &[]),
            RemoteKeys::Missing
        ))
        .status,
        401
    );
}

#[test]
fn config_errors_name_the_field() {
    let cases = [
        (
            json!({"rules": [{"public": true, "typo": 1}]}),
            "unknown field `typo`",
        ),
        (
            json!({"rules": [{"require_any": ["jwt:nope"]}]}),
            "rules[0]: require_any: no jwt provider named \"nope\"",
        ),
        (
            json!({"rules": [{"require_any": ["basic"]}]}),
            "\"basic\" is used but not configured",
        ),
        (
            json!({"rules": [{"match": {}}]}),
            "rules[0]: needs `public: true`",
        ),
        (
            json!({"rules": [{"public": true, "require_any": ["api_key"]}]}),
            "cannot also require",
        ),
        (
            json!({"rules": [{"match": {"path": {"prefix": "api"}}, "public": true}]}),
            "must start with '/'",
        ),
        (
            json!({"jwt_providers": {"p": {}}}),
            "jwt_providers.p: exactly one of `jwks` and `remote_jwks`",
        ),
        (
            json!({"jwt_providers": {"p": {"jwks": {"keys": []}}}}),
            "jwt_providers.p: jwks: the JWKS has no keys",
        ),
        (
            json!({"api_key": {"keys": []}}),
            "api_key: needs `header` or `query`",
        ),
        (
            json!({"basic": {"users": [{"username": "a", "password_hash": "plain"}]}}),
            "basic: users[0].password_hash",
        ),
        (
            json!({"ext_authz": {"cluster": "c", "timeout": "soon"}}),
            "expected a duration",
        ),
    ];
    for (doc, want) in cases {
        let err = Config::parse(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
        assert!(err.contains(want), "{doc}: {err}");
    }
}
