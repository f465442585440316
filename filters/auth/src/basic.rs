//! HTTP Basic authentication (RFC 7617): the `Authorization` header and the password hash
//! formats accepted in the config.
//!
//! Hash formats:
//! - bcrypt, `$2a$`, `$2b$` or `$2y$` (what `htpasswd -B` writes). Slow by design: the
//!   cost is limited (see [`MAX_BCRYPT_COST`]) so one check fits a wasm callback deadline.
//! - `sha256:<64 hex digits>`: unsalted SHA-256 of the password. Fast; only for long random
//!   passwords (service credentials), never for passwords people choose.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// bcrypt's own base64 (`./A-Za-z0-9`, no padding); other tools may leave the unused low
/// bits of the salt's last character set.
const BCRYPT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::BCRYPT,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// The highest bcrypt cost accepted (2^cost rounds). Measured: cost 5 takes about 1.7 ms
/// (native release build and in weft's wasm alike), cost 6 about 3.3 ms, cost 8 about
/// 13 ms, past weft's default 10 ms callback deadline.
pub const MAX_BCRYPT_COST: u32 = 6;

/// A stored password hash.
#[derive(Clone)]
pub enum PasswordHash {
    Bcrypt {
        cost: u32,
        salt: [u8; 16],
        hash: [u8; 23],
    },
    Sha256([u8; 32]),
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Bcrypt { cost, .. } => write!(f, "bcrypt(cost {cost})"),
            PasswordHash::Sha256(_) => f.write_str("sha256"),
        }
    }
}

impl PasswordHash {
    /// Parses a hash as written in the config.
    pub fn parse(text: &str) -> Result<PasswordHash, String> {
        if let Some(hex) = text.strip_prefix("sha256:") {
            let bytes = decode_hex(hex).ok_or("sha256: needs 64 hex digits")?;
            let digest: [u8; 32] = bytes
                .try_into()
                .map_err(|_| "sha256: needs 64 hex digits")?;
            return Ok(PasswordHash::Sha256(digest));
        }
        if text.starts_with("$2") {
            return parse_bcrypt(text);
        }
        Err("unknown password hash format (expected bcrypt `$2b$...` or `sha256:<hex>`)".into())
    }

    /// Whether `password` matches.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Sha256(want) => Sha256::digest(password).as_slice().ct_eq(want).into(),
            PasswordHash::Bcrypt { cost, salt, hash } => {
                if password.is_empty() {
                    return false;
                }
                // bcrypt hashes the password NUL-terminated, truncated to 72 bytes.
                let mut key = [0u8; 72];
                let len = password.len().min(72);
                key[..len].copy_from_slice(&password[..len]);
                let used = (len + 1).min(72);
                let out = bcrypt::bcrypt(*cost, *salt, &key[..used]);
                out[..23].ct_eq(hash).into()
            }
        }
    }
}

fn parse_bcrypt(text: &str) -> Result<PasswordHash, String> {
    // $2b$10$<22 chars salt><31 chars hash>
    let bad = || "malformed bcrypt hash".to_string();
    let rest = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|p| text.strip_prefix(p))
        .ok_or_else(|| "unknown bcrypt version (expected $2a$, $2b$ or $2y$)".to_string())?;
    let (cost, tail) = rest.split_once('$').ok_or_else(bad)?;
    let cost: u32 = cost.parse().map_err(|_| bad())?;
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(format!(
            "bcrypt cost {cost} is outside 4..={MAX_BCRYPT_COST} (higher costs do not fit the wasm callback deadline)"
        ));
    }
    if tail.len() != 53 || !tail.is_ascii() {
        return Err(bad());
    }
    let salt = BCRYPT_B64.decode(&tail[..22]).map_err(|_| bad())?;
    let hash = BCRYPT_B64.decode(&tail[22..]).map_err(|_| bad())?;
    Ok(PasswordHash::Bcrypt {
        cost,
        salt: salt.try_into().map_err(|_| bad())?,
        hash: hash.try_into().map_err(|_| bad())?,
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The user and password of an `Authorization: Basic ...` value.
pub fn parse_authorization(value: &str) -> Option<(String, Vec<u8>)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}
