//! JWT verification: the three algorithms, the registered claims, key selection, and the
//! tokens that must be refused whatever their claims say.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::support::*;
use crate::jwt::{JwtError, Validation, verify};

fn keys() -> Vec<TestKey> {
    vec![
        TestKey::Rsa(rsa_key(0)),
        TestKey::Ec(ec_key(7)),
        TestKey::Hmac(b"test-only-hmac-secret-0123456789".to_vec()),
    ]
}

fn validation(audiences: &[String]) -> Validation<'_> {
    Validation {
        issuer: Some("https://issuer.test"),
        audiences,
        clock_skew: 60,
        require_expiration: false,
        now: NOW,
    }
}

fn with(claims: &[(&str, Value)]) -> Value {
    let mut c = good_claims();
    for (k, v) in claims {
        c[*k] = v.clone();
    }
    c
}

#[test]
fn each_algorithm_accepts_a_good_token_and_returns_its_claims() {
    let aud = vec!["api".to_string()];
    for key in keys() {
        let set = parse_jwks(&[(&key, "k1")]);
        let claims = verify(&token(&key, "k1", &good_claims()), &set, &validation(&aud))
            .unwrap_or_else(|e| panic!("{}: {e}", key.alg()));
        assert_eq!(claims["sub"], "alice", "{}", key.alg());
    }
}

#[test]
fn each_algorithm_refuses_bad_claims() {
    let aud = vec!["api".to_string()];
    let cases = [
        (with(&[("exp", json!(NOW - 61))]), JwtError::Expired),
        (with(&[("nbf", json!(NOW + 61))]), JwtError::NotYetValid),
        (with(&[("aud", json!("other"))]), JwtError::BadAudience),
        (
            with(&[("iss", json!("https://evil.test"))]),
            JwtError::BadIssuer,
        ),
    ];
    for key in keys() {
        let set = parse_jwks(&[(&key, "k1")]);
        for (claims, want) in &cases {
            let got = verify(&token(&key, "k1", claims), &set, &validation(&aud));
            assert_eq!(got.as_ref().err(), Some(want), "{} {claims}", key.alg());
        }
    }
}

#[test]
fn clock_skew_tolerates_small_differences_both_ways() {
    let key = &keys()[2];
    let set = parse_jwks(&[(key, "k1")]);
    let aud = vec!["api".to_string()];
    let v = validation(&aud);
    for claims in [
        with(&[("exp", json!(NOW - 30))]),
        with(&[("nbf", json!(NOW + 30))]),
    ] {
        assert!(
            verify(&token(key, "k1", &claims), &set, &v).is_ok(),
            "{claims}"
        );
    }
    let strict = Validation {
        clock_skew: 0,
        ..validation(&aud)
    };
    let expired = with(&[("exp", json!(NOW))]);
    assert_eq!(
        verify(&token(key, "k1", &expired), &set, &strict),
        Err(JwtError::Expired)
    );
}

#[test]
fn each_algorithm_refuses_a_signature_from_another_key() {
    let others = [
        TestKey::Rsa(rsa_key(1)),
        TestKey::Ec(ec_key(9)),
        TestKey::Hmac(b"another-test-only-secret".to_vec()),
    ];
    let aud = vec!["api".to_string()];
    for (key, other) in keys().iter().zip(&others) {
        let set = parse_jwks(&[(key, "k1")]);
        let forged = token(other, "k1", &good_claims());
        assert_eq!(
            verify(&forged, &set, &validation(&aud)),
            Err(JwtError::BadSignature),
            "{}",
            key.alg()
        );
    }
}

#[test]
fn a_changed_payload_breaks_the_signature() {
    let key = TestKey::Ec(ec_key(7));
    let set = parse_jwks(&[(&key, "k1")]);
    let good = token(&key, "k1", &good_claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let evil =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&with(&[("sub", json!("root"))])).unwrap());
    parts[1] = &evil;
    assert_eq!(
        verify(&parts.join("."), &set, &Validation::default()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn alg_none_and_unsupported_algorithms_are_refused() {
    let key = TestKey::Hmac(b"test-only-hmac-secret-0123456789".to_vec());
    let set = parse_jwks(&[(&key, "k1")]);
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let unsigned = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&good_claims()));
    assert_eq!(
        verify(&unsigned, &set, &Validation::default()),
        Err(JwtError::UnsupportedAlg("none".into()))
    );
    for alg in ["HS512", "RS384", "PS256", "EdDSA"] {
        let t = token_with_header(&key, &json!({"alg": alg}), &good_claims());
        assert_eq!(
            verify(&t, &set, &Validation::default()),
            Err(JwtError::UnsupportedAlg(alg.into()))
        );
    }
}

#[test]
fn an_hs256_token_is_never_checked_against_an_rsa_public_key() {
    // The classic confusion: sign HS256 with the RSA public key's bytes as the secret.
    let rsa = TestKey::Rsa(rsa_key(0));
    let set = parse_jwks(&[(&rsa, "k1")]);
    let public = serde_json::to_vec(&rsa.jwk("k1")).unwrap();
    let confused = token(&TestKey::Hmac(public), "k1", &good_claims());
    assert_eq!(
        verify(&confused, &set, &Validation::default()),
        Err(JwtError::NoMatchingKey)
    );
}

#[test]
fn kid_selects_the_key_and_tokens_without_kid_try_every_key() {
    let a = TestKey::Rsa(rsa_key(0));
    let b = TestKey::Rsa(rsa_key(1));
    let set = parse_jwks(&[(&a, "a"), (&b, "b")]);
    let v = Validation {
        now: NOW,
        ..Validation::default()
    };
    assert!(verify(&token(&b, "b", &good_claims()), &set, &v).is_ok());
    // Signed by b but naming a: only a is tried.
    assert_eq!(
        verify(&token(&b, "a", &good_claims()), &set, &v),
        Err(JwtError::BadSignature)
    );
    assert_eq!(
        verify(&token(&b, "zzz", &good_claims()), &set, &v),
        Err(JwtError::NoMatchingKey)
    );
    let no_kid = token_with_header(&b, &json!({"alg": "RS256"}), &good_claims());
    assert!(verify(&no_kid, &set, &v).is_ok());
}

#[test]
fn audiences_may_be_a_list_and_any_configured_one_matches() {
    let key = TestKey::Ec(ec_key(7));
    let set = parse_jwks(&[(&key, "k1")]);
    let aud = vec!["other".to_string(), "api".to_string()];
    let listed = with(&[("aud", json!(["x", "api"]))]);
    assert!(verify(&token(&key, "k1", &listed), &set, &validation(&aud)).is_ok());
    let missing = {
        let mut c = good_claims();
        c.as_object_mut().unwrap().remove("aud");
        c
    };
    assert_eq!(
        verify(&token(&key, "k1", &missing), &set, &validation(&aud)),
        Err(JwtError::BadAudience)
    );
    // No audiences configured: aud is not checked.
    assert!(verify(&token(&key, "k1", &missing), &set, &validation(&[])).is_ok());
}

#[test]
fn malformed_tokens_crit_headers_and_missing_exp_are_refused() {
    let key = TestKey::Hmac(b"test-only-hmac-secret-0123456789".to_vec());
    let set = parse_jwks(&[(&key, "k1")]);
    let v = Validation {
        now: NOW,
        ..Validation::default()
    };
    for bad in ["", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.e30"] {
        assert!(
            matches!(
                verify(bad, &set, &v),
                Err(JwtError::Malformed(_) | JwtError::UnsupportedAlg(_))
            ),
            "{bad:?}"
        );
    }
    let crit = token_with_header(
        &key,
        &json!({"alg": "HS256", "crit": ["exp"]}),
        &good_claims(),
    );
    assert_eq!(verify(&crit, &set, &v), Err(JwtError::Crit));
    assert_eq!(
        verify(&"a".repeat(20_000), &set, &v),
        Err(JwtError::TooLong)
    );
    let no_exp = json!({"sub": "alice"});
    let must = Validation {
        require_expiration: true,
        ..Validation::default()
    };
    assert_eq!(
        verify(&token(&key, "k1", &no_exp), &set, &must),
        Err(JwtError::MissingExpiration)
    );
    assert!(verify(&token(&key, "k1", &no_exp), &set, &v).is_ok());
}

#[test]
fn claim_header_values_keep_strings_and_encode_the_rest() {
    use crate::jwt::claim_header_value;
    assert_eq!(
        claim_header_value(&json!("alice")).as_deref(),
        Some("alice")
    );
    assert_eq!(claim_header_value(&json!(42)).as_deref(), Some("42"));
    assert_eq!(
        claim_header_value(&json!(["a", "b"])).as_deref(),
        Some(r#"["a","b"]"#)
    );
    assert_eq!(claim_header_value(&json!("evil\r\nx-admin: 1")), None);
}

/// One RS256 verification, timed natively (reported in README.md; run with --nocapture).
#[test]
fn rs256_verify_time() {
    let key = TestKey::Rsa(rsa_key(0));
    let set = parse_jwks(&[(&key, "k1")]);
    let t = token(&key, "k1", &good_claims());
    let v = Validation {
        now: NOW,
        ..Validation::default()
    };
    let rounds = 50;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        verify(&t, &set, &v).unwrap();
    }
    eprintln!(
        "RS256 verify: {:?} each (this build's profile)",
        start.elapsed() / rounds
    );
}
