//! Finding and checking credentials: where a JWT is carried, API keys, basic-auth users.

use std::cell::OnceCell;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::basic::{self, PasswordHash};
use crate::config::{RawApiKey, lower_header};
use crate::request::RequestView;

/// Where a provider looks for its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// A header; the value must start with `prefix` (compared case-insensitively), which is
    /// cut off.
    Header { name: String, prefix: String },
    /// A query parameter.
    Param(String),
}

/// A credential found in the request, and where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    pub source: TokenSource,
}

/// The first token any source yields.
pub fn find_token(req: &RequestView, sources: &[TokenSource]) -> Option<Found> {
    sources.iter().find_map(|source| {
        let value = match source {
            TokenSource::Header { name, prefix } => {
                let value = req.header(name)?;
                let head = value.get(..prefix.len())?;
                if !head.eq_ignore_ascii_case(prefix) {
                    return None;
                }
                value[prefix.len()..].trim().to_string()
            }
            TokenSource::Param(name) => req.query_param(name)?,
        };
        (!value.is_empty()).then(|| Found {
            value,
            source: source.clone(),
        })
    })
}

// === impl ApiKeys ===

/// The configured API keys.
///
/// A request's key is compared with every configured key, in constant time: the time
/// depends on the lengths of the configured keys and of the presented key, never on their
/// bytes or on where they differ. A key given as `key` is compared as it is (no hashing
/// per request). A key given as `key_sha256` is compared by hashing the presented key
/// once and comparing digests; once a request has presented it, the VM keeps that key
/// (the only preimage of the digest) and compares it directly from then on. So SHA-256
/// runs only while some `key_sha256` key has not been seen by this VM; what is kept is
/// bounded by the configured keys (one per `key_sha256` key), and it lives only in the
/// VM's memory, which also holds every request's headers.
#[derive(Debug)]
pub struct ApiKeys {
    pub sources: Vec<TokenSource>,
    keys: Vec<ApiKey>,
    pub forward: bool,
}

/// One configured key.
#[derive(Debug)]
struct ApiKey {
    /// The key itself: from the config, or learnt from a request that presented it.
    plain: OnceCell<Box<[u8]>>,
    /// Its SHA-256 digest (`key_sha256`), to learn it by.
    digest: [u8; 32],
    consumer: String,
}

impl ApiKeys {
    pub fn from_raw(raw: RawApiKey) -> Result<ApiKeys, String> {
        let mut sources = Vec::new();
        if let Some(h) = raw.header {
            sources.push(TokenSource::Header {
                name: lower_header(&h, "header")?,
                prefix: String::new(),
            });
        }
        if let Some(q) = raw.query {
            sources.push(TokenSource::Param(q));
        }
        if sources.is_empty() {
            return Err("needs `header` or `query` (or both)".into());
        }
        let mut keys = Vec::new();
        for (i, k) in raw.keys.into_iter().enumerate() {
            let key = match (k.key, k.key_sha256) {
                (Some(key), None) if !key.is_empty() => ApiKey {
                    digest: Sha256::digest(key.as_bytes()).into(),
                    plain: OnceCell::from(key.into_bytes().into_boxed_slice()),
                    consumer: k.consumer,
                },
                (None, Some(hex)) => ApiKey {
                    digest: decode_digest(&hex)
                        .ok_or_else(|| format!("keys[{i}].key_sha256: needs 64 hex digits"))?,
                    plain: OnceCell::new(),
                    consumer: k.consumer,
                },
                _ => {
                    return Err(format!(
                        "keys[{i}]: exactly one of `key` and `key_sha256` is needed"
                    ));
                }
            };
            keys.push(key);
        }
        Ok(ApiKeys {
            sources,
            keys,
            forward: raw.forward,
        })
    }

    /// The consumer owning `key` (the first configured one, when several match). Every
    /// key is compared, in constant time, whatever matches.
    pub fn lookup(&self, key: &str) -> Option<&str> {
        let presented = key.as_bytes();
        let mut digest: Option<[u8; 32]> = None;
        let mut found = None;
        for k in &self.keys {
            let matched = match k.plain.get() {
                Some(plain) => same_key(plain, presented),
                None => {
                    let digest = digest.get_or_insert_with(|| Sha256::digest(presented).into());
                    let matched = bool::from(digest.as_slice().ct_eq(&k.digest));
                    if matched {
                        let _ = k.plain.set(presented.into());
                    }
                    matched
                }
            };
            if matched && found.is_none() {
                found = Some(k.consumer.as_str());
            }
        }
        found
    }

    /// How many `key_sha256` keys this VM has learnt (for tests).
    pub fn learnt(&self) -> usize {
        self.keys.iter().filter(|k| k.plain.get().is_some()).count()
    }
}

/// Whether `presented` is `secret`, in time that depends on the two lengths only: every
/// byte of `secret` is compared (with a byte of `presented`, wrapping around), and the
/// differences and the length check are combined without branching.
fn same_key(secret: &[u8], presented: &[u8]) -> bool {
    if presented.is_empty() {
        return secret.is_empty();
    }
    let mut diff = 0u8;
    for (i, s) in secret.iter().enumerate() {
        diff |= s ^ presented[i % presented.len()];
    }
    let same_len = (secret.len() as u64).ct_eq(&(presented.len() as u64));
    bool::from(diff.ct_eq(&0) & same_len)
}

fn decode_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

// === impl BasicUsers ===

/// The configured basic-auth users.
#[derive(Debug)]
pub struct BasicUsers {
    pub realm: String,
    pub users: Vec<(String, PasswordHash)>,
    pub forward: bool,
}

/// The outcome of checking an `Authorization` header for basic auth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BasicOutcome {
    /// No `Authorization: Basic` header.
    Missing,
    Invalid,
    /// The user name.
    Valid(String),
}

impl BasicUsers {
    /// Checks the request's basic credentials. `remembered` says whether this exact
    /// user/password pair was verified before (see [`credential_digest`]), to skip bcrypt.
    pub fn check(
        &self,
        req: &RequestView,
        remembered: &dyn Fn(&[u8; 32]) -> bool,
    ) -> (BasicOutcome, Option<[u8; 32]>) {
        let Some((user, password)) = req
            .header("authorization")
            .and_then(basic::parse_authorization)
        else {
            return (BasicOutcome::Missing, None);
        };
        let Some((_, hash)) = self.users.iter().find(|(u, _)| *u == user) else {
            return (BasicOutcome::Invalid, None);
        };
        let digest = credential_digest(&user, &password);
        if remembered(&digest) || hash.verify(&password) {
            (BasicOutcome::Valid(user), Some(digest))
        } else {
            (BasicOutcome::Invalid, None)
        }
    }
}

/// A digest of a user/password pair, for remembering pairs that verified.
pub fn credential_digest(user: &str, password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(user.as_bytes());
    h.update([0]);
    h.update(password);
    h.finalize().into()
}
