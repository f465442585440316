//! The per-VM state shared by the root context and the request contexts: the checked
//! config, the remote key sets fetched so far, and the basic-auth pairs that verified.
//!
//! Remote key sets are also written to proxy-wasm shared data (`<fetched-at secs>\n<JWKS>`)
//! under [`RemoteJwks::shared_key`], so a worker whose VM has none yet takes the document
//! another worker fetched instead of fetching it again.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use crate::config::{Config, KeySource, RemoteJwks};
use crate::engine::RemoteKeys;
use crate::jwk::{Jwks, JwksError};
use crate::request::Needs;

/// Basic-auth pairs remembered per VM before the set is cleared (bounds memory).
const REMEMBER_MAX: usize = 4096;

/// One provider's remote key set.
#[derive(Debug, Default)]
pub struct CachedKeys {
    pub jwks: Option<Rc<Jwks>>,
    /// When the document was fetched (seconds since the epoch).
    pub fetched_at: u64,
    /// The root context's refresh call in flight.
    pub refreshing: Option<u32>,
}

/// The state of one VM.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    /// What a request's decision reads of it.
    pub needs: Needs,
    /// Indexed like `config.providers`; inline providers keep an empty entry.
    pub keys: RefCell<Vec<CachedKeys>>,
    remembered: RefCell<HashSet<[u8; 32]>>,
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        let keys = config
            .providers
            .iter()
            .map(|_| CachedKeys::default())
            .collect();
        Shared {
            needs: Needs::of(&config),
            config,
            keys: RefCell::new(keys),
            remembered: RefCell::new(HashSet::new()),
        }
    }

    /// The remote providers, with their index.
    pub fn remote_providers(&self) -> impl Iterator<Item = (usize, &RemoteJwks)> {
        self.config
            .providers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match &p.keys {
                KeySource::Remote(r) => Some((i, r)),
                KeySource::Inline(_) => None,
            })
    }

    /// What a request may use: keys past their cache duration are still used until the
    /// root context's refresh replaces them.
    pub fn remote_keys(&self, provider: usize) -> RemoteKeys {
        match &self.keys.borrow()[provider].jwks {
            Some(jwks) => RemoteKeys::Ready(jwks.clone()),
            None => RemoteKeys::Missing,
        }
    }

    /// Whether the provider's keys should be (re)fetched at `now`.
    pub fn needs_refresh(&self, provider: usize, remote: &RemoteJwks, now: u64) -> bool {
        let keys = &self.keys.borrow()[provider];
        keys.refreshing.is_none()
            && (keys.jwks.is_none() || now >= keys.fetched_at + remote.cache_duration.as_secs())
    }

    /// Stores a fetched document; on a parse failure the keys held so far are kept.
    pub fn store(&self, provider: usize, body: &[u8], fetched_at: u64) -> Result<(), JwksError> {
        let jwks = Jwks::parse(body)?;
        let mut keys = self.keys.borrow_mut();
        let entry = &mut keys[provider];
        if fetched_at >= entry.fetched_at || entry.jwks.is_none() {
            entry.jwks = Some(Rc::new(jwks));
            entry.fetched_at = fetched_at;
        }
        Ok(())
    }

    /// Takes a document from shared data when it is newer than what this VM has.
    /// Returns whether the VM now holds keys at least as fresh as `not_before`.
    pub fn adopt_shared(&self, provider: usize, shared: Option<&[u8]>, not_before: u64) -> bool {
        let Some((fetched_at, body)) = shared.and_then(decode_shared) else {
            return false;
        };
        let have = self.keys.borrow()[provider].fetched_at;
        let ours = self.keys.borrow()[provider].jwks.is_some();
        if (fetched_at > have || !ours) && self.store(provider, body, fetched_at).is_err() {
            return false;
        }
        fetched_at >= not_before
    }

    pub fn remembered(&self, digest: &[u8; 32]) -> bool {
        self.remembered.borrow().contains(digest)
    }

    pub fn remember(&self, digest: [u8; 32]) {
        let mut set = self.remembered.borrow_mut();
        if set.len() >= REMEMBER_MAX {
            set.clear();
        }
        set.insert(digest);
    }
}

/// The shared-data value for a document fetched at `fetched_at`.
pub fn encode_shared(fetched_at: u64, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{fetched_at}\n").into_bytes();
    out.extend_from_slice(body);
    out
}

fn decode_shared(value: &[u8]) -> Option<(u64, &[u8])> {
    let newline = value.iter().position(|&b| b == b'\n')?;
    let at = std::str::from_utf8(&value[..newline]).ok()?.parse().ok()?;
    Some((at, &value[newline + 1..]))
}
