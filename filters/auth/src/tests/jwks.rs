//! JWKS parsing: RSA and EC keys, and the keys that are skipped.

use serde_json::json;

use super::support::*;
use crate::jwk::{Alg, Jwks, JwksError, KeyMaterial};

#[test]
fn rsa_ec_and_oct_keys_parse_with_their_kids() {
    let rsa = TestKey::Rsa(rsa_key(0));
    let ec = TestKey::Ec(ec_key(3));
    let oct = TestKey::Hmac(b"test-only".to_vec());
    let set = parse_jwks(&[(&rsa, "r"), (&ec, "e"), (&oct, "o")]);
    let kinds: Vec<(Option<&str>, Alg)> = set
        .keys
        .iter()
        .map(|k| (k.kid.as_deref(), k.material.alg()))
        .collect();
    assert_eq!(
        kinds,
        [
            (Some("r"), Alg::Rs256),
            (Some("e"), Alg::Es256),
            (Some("o"), Alg::Hs256)
        ]
    );
    assert!(matches!(set.keys[1].material, KeyMaterial::P256(_)));
}

#[test]
fn padded_base64_and_extra_members_are_accepted() {
    let mut jwk = TestKey::Rsa(rsa_key(0)).jwk("r");
    let n = jwk["n"].as_str().unwrap().to_string();
    assert_ne!(n.len() % 4, 0, "a modulus whose encoding needs padding");
    jwk["n"] = json!(format!("{n}{}", "=".repeat(4 - n.len() % 4)));
    jwk["x5c"] = json!(["MIIB..."]);
    let set = Jwks::parse(
        serde_json::to_vec(&json!({"keys": [jwk]}))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    assert_eq!(set.keys.len(), 1);
}

#[test]
fn unusable_keys_are_skipped_and_a_set_of_none_is_an_error() {
    let ec = TestKey::Ec(ec_key(3)).jwk("e");
    let mut wrong_curve = ec.clone();
    wrong_curve["crv"] = json!("P-384");
    let mut encryption = ec.clone();
    encryption["use"] = json!("enc");
    let mut wrong_alg = ec.clone();
    wrong_alg["alg"] = json!("RS256");
    let mut off_curve = ec.clone();
    off_curve["y"] = off_curve["x"].clone();
    let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": "AA"});
    let mut small_rsa = TestKey::Rsa(rsa_key(0)).jwk("r");
    small_rsa["n"] = json!("AQAB");
    let bad = vec![
        wrong_curve,
        encryption,
        wrong_alg,
        off_curve,
        okp,
        small_rsa,
    ];
    let all = [bad.clone(), vec![ec]].concat();
    let set = Jwks::from_value(&json!({ "keys": all })).unwrap();
    assert_eq!(set.keys.len(), 1, "only the good EC key is kept");
    match Jwks::from_value(&json!({ "keys": bad })) {
        Err(JwksError::NoUsableKeys { skipped }) => assert_eq!(skipped.len(), 6, "{skipped:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_documents_are_errors() {
    for doc in [&b"not json"[..], b"{}", b"{\"keys\": 3}", b"[]"] {
        assert!(
            matches!(Jwks::parse(doc), Err(JwksError::Malformed(_))),
            "{doc:?}"
        );
    }
    assert!(matches!(
        Jwks::parse(b"{\"keys\": []}"),
        Err(JwksError::NoUsableKeys { .. })
    ));
}

#[test]
fn an_hmac_secret_is_never_printed() {
    let set = parse_jwks(&[(&TestKey::Hmac(b"s3cr3t-test-only".to_vec()), "o")]);
    assert!(!format!("{set:?}").contains("s3cr3t"));
}
