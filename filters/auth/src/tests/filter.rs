//! The filter as a host runs it (weft-sdk's native harness): local replies, the key
//! fetch that pauses a request, the root context's prefetch and refresh, shared data
//! across workers, and the external authorization call.

use std::time::Duration;

use proxy_wasm::types::Action;
use serde_json::{Value, json};
use weft_sdk::testing::{CallResponse, Host, Http};

use super::support::*;

const SHARED_KEY: &str = "weft.auth.jwks|idp|idp.test|/jwks.json";

fn key() -> TestKey {
    TestKey::Hmac(b"test-only-hmac-secret-0123456789".to_vec())
}

fn jwks_body() -> Vec<u8> {
    serde_json::to_vec(&jwks(&[(&key(), "k1")])).unwrap()
}

fn config() -> String {
    json!({
        "jwt_providers": {
            "idp": {
                "issuer": "https://issuer.test",
                "remote_jwks": {"cluster": "idp", "authority": "idp.test", "path": "/jwks.json",
                                "cache_duration": "5m", "timeout": "2s"}
            }
        },
        "api_key": {"header": "x-api-key", "keys": [{"key": "test-key", "consumer": "svc"}]},
        "ext_authz": {"cluster": "authz", "allowed_upstream_headers": ["x-user-id"]},
        "rules": [
            {"match": {"path": {"prefix": "/jwt"}}, "require_any": ["jwt:idp"], "ext_authz": false},
            {"match": {"path": {"prefix": "/checked"}}, "require_any": ["api_key"]}
        ]
    })
    .to_string()
}

fn request(http: &mut Http, path: &str, extra: &[(&str, &str)]) -> Action {
    let mut headers = vec![
        (":method", "GET"),
        (":path", path),
        (":authority", "svc"),
        (":scheme", "http"),
    ];
    headers.extend_from_slice(extra);
    http.request_headers(&headers, true)
}

fn bearer() -> String {
    format!("Bearer {}", token(&key(), "k1", &good_claims()))
}

fn jwks_calls(host: &Host) -> Vec<u32> {
    host.http_calls()
        .into_iter()
        .filter(|c| c.cluster == "idp")
        .map(|c| c.token)
        .collect()
}

#[test]
fn a_bad_config_is_refused_with_the_field_named() {
    let mut host = Host::new(crate::register);
    assert!(!host.configure(r#"{"rules": [{"public": true, "typo": 1}]}"#));
    assert!(host.logged("unknown field `typo`"), "{:?}", host.logs());
}

#[test]
fn a_missing_token_gets_a_local_401() {
    let mut host = Host::new(crate::register);
    assert!(host.configure(config()));
    let mut http = host.http();
    assert_eq!(request(&mut http, "/jwt/x", &[]), Action::Pause);
    let reply = http.local_reply().expect("a local reply");
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="weft""#)
    );
}

#[test]
fn the_root_fetches_keys_at_start_and_refreshes_them_after_the_cache_duration() {
    let mut host = Host::new(crate::register);
    assert!(host.configure(config()));
    assert_eq!(host.tick_period(), Some(Duration::from_secs(1)));
    let calls = host.http_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].header(":path").as_deref(), Some("/jwks.json"));
    assert_eq!(calls[0].header(":authority").as_deref(), Some("idp.test"));
    assert_eq!(calls[0].timeout, Duration::from_secs(2));
    host.respond(calls[0].token, CallResponse::new(200).body(jwks_body()));
    let (shared, _) = host
        .shared_data(SHARED_KEY)
        .expect("published for other workers");
    assert!(shared.starts_with(b"1700000000\n"));

    let mut http = host.http();
    let auth = bearer();
    assert_eq!(
        request(&mut http, "/jwt/x", &[("authorization", &auth)]),
        Action::Continue
    );
    assert_eq!(http.request_header("x-consumer").as_deref(), Some("alice"));
    assert_eq!(http.request_header("authorization"), None);
    assert!(
        host.http_calls().is_empty(),
        "no fetch while the keys are fresh"
    );

    host.advance(Duration::from_secs(299));
    assert!(host.http_calls().is_empty());
    host.advance(Duration::from_secs(2));
    let refresh = jwks_calls(&host);
    assert_eq!(refresh.len(), 1, "one refresh after 5 minutes");
    // A failed refresh keeps the old keys in use. (The token is still valid: it expires
    // 600 s after NOW and 301 s have passed.)
    host.respond(refresh[0], CallResponse::failed());
    let mut http = host.http();
    assert_eq!(
        request(&mut http, "/jwt/x", &[("authorization", &auth)]),
        Action::Continue
    );
    host.advance(Duration::from_secs(1));
    assert_eq!(jwks_calls(&host).len(), 1, "retried on the next tick");
}

#[test]
fn a_request_that_finds_no_keys_fetches_them_and_waits() {
    let mut host = Host::new(crate::register);
    assert!(host.configure(config()));
    let root_call = jwks_calls(&host)[0];
    let mut http = host.http();
    let auth = bearer();
    assert_eq!(
        request(&mut http, "/jwt/x", &[("authorization", &auth)]),
        Action::Pause
    );
    let own: Vec<u32> = jwks_calls(&host)
        .into_iter()
        .filter(|t| *t != root_call)
        .collect();
    assert_eq!(own.len(), 1);
    assert_eq!(http.request_resumes(), 0);
    host.respond(own[0], CallResponse::new(200).body(jwks_body()));
    assert_eq!(http.request_resumes(), 1);
    assert_eq!(http.request_header("x-consumer").as_deref(), Some("alice"));
    assert!(http.local_reply().is_none());
}

#[test]
fn a_request_whose_key_fetch_fails_gets_401() {
    let mut host = Host::new(crate::register);
    assert!(host.configure(config()));
    let root_call = jwks_calls(&host)[0];
    host.respond(root_call, CallResponse::new(503));
    let mut http = host.http();
    let auth = bearer();
    assert_eq!(
        request(&mut http, "/jwt/x", &[("authorization", &auth)]),
        Action::Pause
    );
    let own = jwks_calls(&host)[0];
    host.respond(own, CallResponse::new(200).body("not json"));
    let reply = http.local_reply().expect("a local reply");
    assert_eq!(reply.status, 401);
    assert!(
        reply.body_text().contains("could not be fetched"),
        "{}",
        reply.body_text()
    );
    assert_eq!(http.request_resumes(), 0);
}

#[test]
fn keys_another_worker_fetched_are_taken_from_shared_data() {
    let mut host = Host::new(crate::register);
    let mut value = b"1700000000\n".to_vec();
    value.extend(jwks_body());
    host.set_shared_data(SHARED_KEY, value);
    assert!(host.configure(config()));
    assert!(
        host.http_calls().is_empty(),
        "fresh keys in shared data: no fetch"
    );
    let mut http = host.http();
    let auth = bearer();
    assert_eq!(
        request(&mut http, "/jwt/x", &[("authorization", &auth)]),
        Action::Continue
    );
}

fn checked(host: &mut Host, response: CallResponse) -> Http {
    let mut http = host.http();
    assert_eq!(
        request(&mut http, "/checked?a=1", &[("x-api-key", "test-key")]),
        Action::Pause
    );
    let call = host
        .http_calls()
        .into_iter()
        .find(|c| c.cluster == "authz")
        .expect("a check call");
    assert_eq!(call.header(":path").as_deref(), Some("/checked?a=1"));
    assert_eq!(call.header("x-consumer").as_deref(), Some("svc"));
    host.respond(call.token, response);
    http
}

#[test]
fn ext_authz_allows_denies_and_fails_closed() {
    let mut host = Host::new(crate::register);
    assert!(host.configure(config()));
    let allowed = checked(&mut host, CallResponse::new(200).header("x-user-id", "7"));
    assert_eq!(allowed.request_resumes(), 1);
    assert_eq!(allowed.request_header("x-user-id").as_deref(), Some("7"));
    assert_eq!(allowed.request_header("x-consumer").as_deref(), Some("svc"));

    let denied = checked(&mut host, CallResponse::new(403).body("nope"));
    let reply = denied.local_reply().expect("denied");
    assert_eq!((reply.status, reply.body_text().as_str()), (403, "nope"));
    assert_eq!(denied.request_resumes(), 0);

    let failed = checked(&mut host, CallResponse::failed());
    assert_eq!(failed.local_reply().map(|r| r.status), Some(403));
}

#[test]
fn identity_headers_from_the_client_are_removed_on_public_and_default_paths() {
    let mut host = Host::new(crate::register);
    let mut cfg: Value = serde_json::from_str(&config()).unwrap();
    cfg["default"] = json!({"public": true});
    assert!(host.configure(cfg.to_string()));
    let mut http = host.http();
    assert_eq!(
        request(&mut http, "/other", &[("x-consumer", "admin")]),
        Action::Continue
    );
    assert_eq!(http.request_header("x-consumer"), None);
}
