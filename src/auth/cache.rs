//! Remembered successful logins, so a browser's requests skip bcrypt.
//!
//! A browser sends the same `Authorization` header with every request; a
//! bcrypt check per request would cost ~50 ms of CPU each time. A success is
//! remembered for [`CACHE_TTL`] under a keyed 128-bit hash of the user name
//! and password (two SipHash-1-3 with secret random keys; the password
//! itself is never kept), so a cache hit costs one short hash. (It was a
//! salted SHA-256: ~6,900 instructions a request, a quarter of what a
//! protected request cost, for no protection the keyed hash lacks — both
//! are fast hashes; the secret keys are what keep the entries from being
//! matched outside the process.) Bounded: at [`MAX_ENTRIES`] expired entries go, and if none have
//! expired the whole cache is cleared (the next requests pay bcrypt again;
//! only a flood of distinct valid logins gets there). Cleared whenever the
//! users file changes, so a changed or deleted password stops working at
//! once.
//!
//! Each worker thread also keeps the last few hits of its own (a browser's
//! connection stays on one worker and repeats one header), so most
//! protected requests touch no shared lock; a generation number, bumped by
//! [`CredentialCache::clear`], makes those stale at once too.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use std::collections::hash_map::RandomState;

/// How long a successful check is remembered.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// Logins remembered at most (per realm).
const MAX_ENTRIES: usize = 4096;
/// Hits each worker thread keeps of its own.
const RECENT: usize = 8;

/// Tells caches apart in the per-thread list.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// (cache id, generation, key, expiry) of this thread's latest hits.
    static RECENT_HITS: RefCell<Vec<(u64, u64, Key, Instant)>> =
        const { RefCell::new(Vec::new()) };
}

pub type Key = [u8; 16];

#[derive(Debug)]
pub struct CredentialCache {
    /// Secret random keys per process, so an entry is not the password's
    /// plain hash.
    keys: (RandomState, RandomState),
    /// Read on every protected request by every worker, written only on a
    /// miss: a read-write lock lets the hits run side by side.
    entries: RwLock<HashMap<Key, Instant>>,
    id: u64,
    /// Bumped by `clear`: per-thread hits of an older generation are void.
    generation: AtomicU64,
}

impl CredentialCache {
    pub fn new() -> CredentialCache {
        CredentialCache {
            // RandomState is seeded from the OS's randomness: keys that
            // only have to be unknown outside the process.
            keys: (RandomState::new(), RandomState::new()),
            entries: RwLock::new(HashMap::new()),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, Instant>> {
        // Single inserts and removes only: a poisoned map is consistent.
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn key(&self, user: &str, password: &str) -> Key {
        let half = |state: &RandomState| {
            let mut h = state.build_hasher();
            // The length keeps "ab"+"c" and "a"+"bc" apart.
            h.write_u64(user.len() as u64);
            h.write(user.as_bytes());
            h.write(password.as_bytes());
            h.finish().to_le_bytes()
        };
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&half(&self.keys.0));
        key[8..].copy_from_slice(&half(&self.keys.1));
        key
    }

    /// Whether `key` was checked within the TTL. An expired entry stays
    /// until the next insert's sweep (or is overwritten by its re-check).
    pub fn hit(&self, key: &Key, now: Instant) -> bool {
        let generation = self.generation.load(Ordering::Acquire);
        let mine = RECENT_HITS.with_borrow(|recent| {
            recent.iter().any(|(id, g, k, expires)| {
                *id == self.id && *g == generation && k == key && *expires > now
            })
        });
        if mine {
            return true;
        }
        let expires = {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            entries.get(key).copied().filter(|expires| *expires > now)
        };
        match expires {
            Some(expires) => {
                self.remember_here(generation, *key, expires);
                true
            }
            None => false,
        }
    }

    /// Keeps a hit in this thread's own short list (the oldest goes).
    fn remember_here(&self, generation: u64, key: Key, expires: Instant) {
        RECENT_HITS.with_borrow_mut(|recent| {
            if recent.len() >= RECENT {
                recent.remove(0);
            }
            recent.push((self.id, generation, key, expires));
        });
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
        drop(entries);
        self.remember_here(
            self.generation.load(Ordering::Acquire),
            key,
            now + CACHE_TTL,
        );
    }

    pub fn clear(&self) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
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
