//! JSON Web Key Sets (RFC 7517): parsing the keys this filter can verify with.
//!
//! Supported: `kty: RSA` (`n`, `e`) for RS256, `kty: EC` with `crv: P-256` (`x`, `y`) for
//! ES256, and `kty: oct` (`k`) for HS256. Keys of other types or curves, and keys whose
//! `use` is not `sig`, are skipped rather than failing the whole set, as identity providers
//! publish keys for other purposes in the same document.

use std::fmt;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

/// base64url that accepts both padded and unpadded input (some providers pad JWKS fields).
pub(crate) const B64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A JWS signature algorithm this filter verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Rs256,
    Es256,
}

impl Alg {
    /// The algorithm named by a JOSE `alg` value; `None` for anything unsupported, `none` included.
    pub fn from_name(name: &str) -> Option<Alg> {
        match name {
            "HS256" => Some(Alg::Hs256),
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }
}

/// The public (or, for HS256, shared) material of one key.
#[derive(Clone)]
pub enum KeyMaterial {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    Oct(Vec<u8>),
}

impl KeyMaterial {
    /// The one algorithm this key verifies.
    pub fn alg(&self) -> Alg {
        match self {
            KeyMaterial::Rsa(_) => Alg::Rs256,
            KeyMaterial::P256(_) => Alg::Es256,
            KeyMaterial::Oct(_) => Alg::Hs256,
        }
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print an HS256 secret.
        let kind = match self {
            KeyMaterial::Rsa(_) => "RSA",
            KeyMaterial::P256(_) => "EC P-256",
            KeyMaterial::Oct(_) => "oct",
        };
        f.write_str(kind)
    }
}

/// One usable key.
#[derive(Clone, Debug)]
pub struct Jwk {
    pub kid: Option<String>,
    pub material: KeyMaterial,
}

/// The usable keys of a set, in document order.
#[derive(Clone, Debug, Default)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// Why a key set could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// Not JSON, or not an object with a `keys` list.
    Malformed(String),
    /// Parsed, but no key in it is one this filter can verify with.
    NoUsableKeys { skipped: Vec<String> },
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::Malformed(why) => write!(f, "malformed JWKS: {why}"),
            JwksError::NoUsableKeys { skipped } if skipped.is_empty() => {
                f.write_str("the JWKS has no keys")
            }
            JwksError::NoUsableKeys { skipped } => {
                write!(f, "the JWKS has no usable key ({})", skipped.join("; "))
            }
        }
    }
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub fn parse(json: &[u8]) -> Result<Jwks, JwksError> {
        let set: RawSet =
            serde_json::from_slice(json).map_err(|e| JwksError::Malformed(e.to_string()))?;
        Self::from_keys(set.keys)
    }

    /// Parses a JWKS already read as JSON (inline in the filter config).
    pub fn from_value(value: &serde_json::Value) -> Result<Jwks, JwksError> {
        let set = RawSet::deserialize(value).map_err(|e| JwksError::Malformed(e.to_string()))?;
        Self::from_keys(set.keys)
    }

    fn from_keys(raw: Vec<serde_json::Value>) -> Result<Jwks, JwksError> {
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, value) in raw.into_iter().enumerate() {
            match parse_key(value) {
                Ok(key) => keys.push(key),
                Err(why) => skipped.push(format!("keys[{i}]: {why}")),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys { skipped });
        }
        Ok(Jwks { keys })
    }
}

fn parse_key(value: serde_json::Value) -> Result<Jwk, String> {
    let raw: RawKey = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if let Some(u) = &raw.use_
        && u != "sig"
    {
        return Err(format!("use is {u:?}, not \"sig\""));
    }
    let material = match raw.kty.as_str() {
        "RSA" => {
            let n = field(&raw.n, "n")?;
            let e = field(&raw.e, "e")?;
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&n),
                rsa::BigUint::from_bytes_be(&e),
            )
            .map_err(|e| format!("bad RSA key: {e}"))?;
            let bits = rsa::traits::PublicKeyParts::n(&key).bits();
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits, at least {MIN_RSA_BITS} needed"
                ));
            }
            KeyMaterial::Rsa(key)
        }
        "EC" => {
            if raw.crv.as_deref() != Some("P-256") {
                return Err(format!(
                    "EC curve {:?} is not supported (P-256 is)",
                    raw.crv
                ));
            }
            let x = field(&raw.x, "x")?;
            let y = field(&raw.y, "y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates must be 32 bytes".into());
            }
            let mut sec1 = Vec::with_capacity(65);
            sec1.push(0x04);
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                .map_err(|_| "the EC point is not on P-256".to_string())?;
            KeyMaterial::P256(key)
        }
        "oct" => {
            let k = field(&raw.k, "k")?;
            if k.is_empty() {
                return Err("empty oct key".into());
            }
            KeyMaterial::Oct(k)
        }
        other => return Err(format!("kty {other:?} is not supported")),
    };
    if let Some(alg) = &raw.alg
        && Alg::from_name(alg) != Some(material.alg())
    {
        return Err(format!("alg {alg:?} does not fit a {:?} key", material));
    }
    Ok(Jwk {
        kid: raw.kid,
        material,
    })
}

fn field(value: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let text = value
        .as_deref()
        .ok_or_else(|| format!("missing {name:?}"))?;
    B64URL_LENIENT
        .decode(text)
        .map_err(|e| format!("{name:?} is not base64url: {e}"))
}
