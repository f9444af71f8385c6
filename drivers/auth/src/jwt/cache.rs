//! Remembers tokens whose signature and claims were verified, so a client sending the same
//! token on every request pays for the signature check once (an RS256/ES256 check costs tens
//! of microseconds even with aws-lc-rs, a hit about 1 µs; docs/benchmarks.md). Keys are SHA-256 digests, so the cache holds no token;
//! a hit still re-checks `exp`. The map is cleared when full (bounded, no bookkeeping per hit)
//! and when the key set is reloaded (a removed key must stop working at once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::VerifiedToken;

type Digest32 = [u8; 32];

/// A bounded map from token digest to its verified claims.
pub(crate) struct TokenCache {
    capacity: usize,
    map: Mutex<HashMap<Digest32, Arc<VerifiedToken>>>,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn digest(token: &str) -> Digest32 {
        Sha256::digest(token.as_bytes()).into()
    }

    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    pub(crate) fn get(&self, digest: &Digest32) -> Option<Arc<VerifiedToken>> {
        self.lock().get(digest).cloned()
    }

    pub(crate) fn insert(&self, digest: Digest32, token: Arc<VerifiedToken>) {
        if !self.enabled() {
            return;
        }
        let mut map = self.lock();
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(digest, token);
    }

    pub(crate) fn remove(&self, digest: &Digest32) {
        self.lock().remove(digest);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest32, Arc<VerifiedToken>>> {
        // A panic while holding the lock cannot leave the map inconsistent for our uses.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}
