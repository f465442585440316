//! Test-only keys and token minting.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use p256::ecdsa::SigningKey;
use rand::SeedableRng;
use rsa::RsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::jwk::Jwks;

/// Test-only RSA keys (2048 bits), generated once per test process from fixed seeds.
pub fn rsa_key(which: usize) -> &'static RsaPrivateKey {
    static KEYS: OnceLock<Vec<RsaPrivateKey>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..2u64)
            .map(|seed| {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 1000);
                RsaPrivateKey::new(&mut rng, 2048).expect("generate RSA key")
            })
            .collect()
    })[which]
}

/// A test-only P-256 key from a fixed scalar.
pub fn ec_key(seed: u8) -> SigningKey {
    let mut bytes = [seed; 32];
    bytes[0] = 1;
    SigningKey::from_bytes(&bytes.into()).expect("valid scalar")
}

/// A signing key of one of the three kinds.
#[derive(Clone)]
pub enum TestKey {
    Rsa(&'static RsaPrivateKey),
    Ec(SigningKey),
    Hmac(Vec<u8>),
}

impl TestKey {
    pub fn alg(&self) -> &'static str {
        match self {
            TestKey::Rsa(_) => "RS256",
            TestKey::Ec(_) => "ES256",
            TestKey::Hmac(_) => "HS256",
        }
    }

    /// The public JWK (for HMAC, the secret) with `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match self {
            TestKey::Rsa(key) => json!({
                "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be()),
            }),
            TestKey::Ec(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                json!({
                    "kty": "EC", "crv": "P-256", "kid": kid,
                    "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
                })
            }
            TestKey::Hmac(secret) => json!({"kty": "oct", "kid": kid, "k": b64(secret)}),
        }
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            TestKey::Rsa(key) => key
                .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message))
                .unwrap(),
            TestKey::Ec(key) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = key.sign(message);
                sig.to_bytes().to_vec()
            }
            TestKey::Hmac(secret) => {
                let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).unwrap();
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }
}

/// A compact JWS over `header` and `claims`.
pub fn token_with_header(key: &TestKey, header: &Value, claims: &Value) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let signed = format!("{}.{}", b64(header), b64(claims));
    let sig = URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()));
    format!("{signed}.{sig}")
}

/// A token with the usual header (`alg` of the key, `kid`).
pub fn token(key: &TestKey, kid: &str, claims: &Value) -> String {
    token_with_header(
        key,
        &json!({"alg": key.alg(), "typ": "JWT", "kid": kid}),
        claims,
    )
}

/// A key set of (key, kid) pairs.
pub fn jwks(keys: &[(&TestKey, &str)]) -> Value {
    json!({"keys": keys.iter().map(|(k, kid)| k.jwk(kid)).collect::<Vec<_>>()})
}

pub fn parse_jwks(keys: &[(&TestKey, &str)]) -> Jwks {
    Jwks::from_value(&jwks(keys)).expect("valid test JWKS")
}

/// The fixed "now" of the tests.
pub const NOW: u64 = 1_700_000_000;

/// Claims valid at [`NOW`] for issuer `https://issuer.test` and audience `api`.
pub fn good_claims() -> Value {
    json!({"iss": "https://issuer.test", "aud": "api", "sub": "alice",
           "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 600})
}
