//! JSON Web Tokens (RFC 7519) in JWS compact form: signature check with a key set, then
//! the registered claims (`exp`, `nbf`, `iss`, `aud`) against a provider's settings.
//!
//! Only HS256, RS256 and ES256 are accepted; `alg: none` and every other algorithm are
//! refused. A key is only tried for the algorithm of its type, so a public RSA key can
//! never be used as an HMAC secret.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::jwk::{Alg, Jwks, KeyMaterial};

/// Tokens longer than this are refused before any decoding (bounds the work per request).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The claims checked besides the signature.
#[derive(Clone, Debug, Default)]
pub struct Validation<'a> {
    /// `iss` must equal this when given.
    pub issuer: Option<&'a str>,
    /// `aud` (a string or a list) must contain one of these when the list is not empty.
    pub audiences: &'a [String],
    /// Seconds of tolerance for `exp` and `nbf`.
    pub clock_skew: u64,
    /// Refuse tokens without `exp`.
    pub require_expiration: bool,
    /// Seconds since the Unix epoch.
    pub now: u64,
}

/// Why a token was refused. The `Display` text is what goes into `error_description`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtError {
    TooLong,
    Malformed(&'static str),
    UnsupportedAlg(String),
    Crit,
    NoMatchingKey,
    BadSignature,
    Expired,
    NotYetValid,
    MissingExpiration,
    BadIssuer,
    BadAudience,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::TooLong => f.write_str("the token is too long"),
            JwtError::Malformed(what) => write!(f, "malformed token: {what}"),
            JwtError::UnsupportedAlg(alg) => write!(f, "the token algorithm {alg} is not allowed"),
            JwtError::Crit => f.write_str("the token has critical header parameters"),
            JwtError::NoMatchingKey => f.write_str("no key matches the token"),
            JwtError::BadSignature => f.write_str("the token signature is invalid"),
            JwtError::Expired => f.write_str("the token is expired"),
            JwtError::NotYetValid => f.write_str("the token is not valid yet"),
            JwtError::MissingExpiration => f.write_str("the token has no expiration"),
            JwtError::BadIssuer => f.write_str("the token issuer is not allowed"),
            JwtError::BadAudience => f.write_str("the token audience is not allowed"),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// Verifies `token` with `jwks` and checks its claims; returns the payload's claims.
pub fn verify(
    token: &str,
    jwks: &Jwks,
    v: &Validation<'_>,
) -> Result<Map<String, Value>, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("not three dot-separated parts"));
    };
    let header: Header = decode_json(h64).ok_or(JwtError::Malformed("bad header"))?;
    let alg =
        Alg::from_name(&header.alg).ok_or_else(|| JwtError::UnsupportedAlg(header.alg.clone()))?;
    if header.crit.is_some() {
        return Err(JwtError::Crit);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s64)
        .map_err(|_| JwtError::Malformed("bad signature encoding"))?;
    let signed = &token.as_bytes()[..h64.len() + 1 + p64.len()];
    check_signature(alg, header.kid.as_deref(), signed, &signature, jwks)?;
    let claims: Map<String, Value> = decode_json(p64).ok_or(JwtError::Malformed("bad payload"))?;
    check_claims(&claims, v)?;
    Ok(claims)
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Tries every key of the right type (and `kid`, when both name one) until one verifies.
fn check_signature(
    alg: Alg,
    kid: Option<&str>,
    signed: &[u8],
    signature: &[u8],
    jwks: &Jwks,
) -> Result<(), JwtError> {
    let mut candidates = jwks.keys.iter().filter(|k| {
        k.material.alg() == alg
            && match (kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    });
    let mut tried = false;
    for key in &mut candidates {
        tried = true;
        if verify_with(&key.material, signed, signature) {
            return Ok(());
        }
    }
    if tried {
        Err(JwtError::BadSignature)
    } else {
        Err(JwtError::NoMatchingKey)
    }
}

fn verify_with(key: &KeyMaterial, signed: &[u8], signature: &[u8]) -> bool {
    match key {
        KeyMaterial::Oct(secret) => {
            let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
                return false;
            };
            mac.update(signed);
            // Constant-time comparison.
            mac.verify_slice(signature).is_ok()
        }
        KeyMaterial::Rsa(key) => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(signed);
            key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, signature)
                .is_ok()
        }
        KeyMaterial::P256(key) => {
            use p256::ecdsa::signature::Verifier;
            // JWS carries r || s (64 bytes), not DER.
            let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
                return false;
            };
            key.verify(signed, &sig).is_ok()
        }
    }
}

fn check_claims(claims: &Map<String, Value>, v: &Validation<'_>) -> Result<(), JwtError> {
    let now = v.now as f64;
    let skew = v.clock_skew as f64;
    match claims.get("exp") {
        Some(exp) => {
            let exp = exp
                .as_f64()
                .ok_or(JwtError::Malformed("exp is not a number"))?;
            if now >= exp + skew {
                return Err(JwtError::Expired);
            }
        }
        None if v.require_expiration => return Err(JwtError::MissingExpiration),
        None => {}
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf
            .as_f64()
            .ok_or(JwtError::Malformed("nbf is not a number"))?;
        if now + skew < nbf {
            return Err(JwtError::NotYetValid);
        }
    }
    if let Some(issuer) = v.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(issuer)
    {
        return Err(JwtError::BadIssuer);
    }
    if !v.audiences.is_empty() {
        let allowed = |a: &Value| {
            a.as_str()
                .is_some_and(|a| v.audiences.iter().any(|w| w == a))
        };
        let ok = match claims.get("aud") {
            Some(Value::Array(list)) => list.iter().any(allowed),
            Some(one) => allowed(one),
            None => false,
        };
        if !ok {
            return Err(JwtError::BadAudience);
        }
    }
    Ok(())
}

/// A claim as a header value: strings as they are, anything else as compact JSON.
/// `None` when the value cannot be a header value (control characters).
pub fn claim_header_value(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    (!text.chars().any(char::is_control)).then_some(text)
}
