//! Remembered successful logins, so a browser's requests skip bcrypt.
//!
//! A browser sends the same `Authorization` header with every request; a
//! bcrypt check per request would cost ~50 ms of CPU each time. A success is
//! remembered for [`CACHE_TTL`] under a salted SHA-256 of the user name and
//! password (the password itself is never kept), so a cache hit costs one
//! hash. Bounded: at [`MAX_ENTRIES`] expired entries go, and if none have
//! expired the whole cache is cleared (the next requests pay bcrypt again;
//! only a flood of distinct valid logins gets there). Cleared whenever the
//! users file changes, so a changed or deleted password stops working at
//! once.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a successful check is remembered.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// Logins remembered at most (per realm).
const MAX_ENTRIES: usize = 4096;

pub type Key = [u8; 32];

#[derive(Debug)]
pub struct CredentialCache {
    /// Random per process, so the keys are not the password's plain hash.
    salt: [u8; 32],
    entries: Mutex<HashMap<Key, Instant>>,
}

impl CredentialCache {
    pub fn new() -> CredentialCache {
        let mut salt = [0u8; 32];
        for chunk in salt.chunks_mut(8) {
            // RandomState is seeded from the OS's randomness: good enough
            // for a salt that only has to be unknown outside the process.
            let n = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            chunk.copy_from_slice(&n.to_le_bytes());
        }
        CredentialCache {
            salt,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Instant>> {
        // Single inserts and removes only: a poisoned map is consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn key(&self, user: &str, password: &str) -> Key {
        let mut h = Sha256::new();
        h.update(self.salt);
        // The length keeps "ab"+"c" and "a"+"bc" apart.
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    pub fn hit(&self, key: &Key, now: Instant) -> bool {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(expires) if *expires > now => true,
            Some(_) => {
                entries.remove(key);
                false
            }
            None => false,
        }
    }

    pub fn insert(&self, key: Key, now: Instant) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, expires| *expires > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, now + CACHE_TTL);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_for_the_ttl_only() {
        let c = CredentialCache::new();
        let t0 = Instant::now();
        let k = c.key("ann", "secret");
        assert!(!c.hit(&k, t0));
        c.insert(k, t0);
        assert!(c.hit(&k, t0 + CACHE_TTL / 2));
        assert!(!c.hit(&c.key("ann", "other"), t0));
        assert!(!c.hit(&c.key("an", "nsecret"), t0));
        assert!(!c.hit(&k, t0 + CACHE_TTL));
        c.insert(k, t0);
        c.clear();
        assert!(!c.hit(&k, t0));
    }

    #[test]
    fn stays_bounded() {
        let c = CredentialCache::new();
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES + 10 {
            c.insert(c.key(&i.to_string(), "x"), t0);
        }
        assert!(c.lock().len() <= MAX_ENTRIES);
    }
}
