//! TLS session resumption: session tickets (TLS 1.2, RFC 5077; TLS 1.3 PSK
//! tickets) and the session-ID cache, one of each for every binding, worker
//! and QUIC endpoint of the process.
//!
//! Why shared: a client resumes only if the server that gets its next
//! connection can read its ticket. rustls gives every `ServerConfig` its own
//! 256-entry session cache and no ticketer, so a TLS 1.2 client could never
//! use a ticket and a busy server forgot sessions quickly.
//!
//! Ticket keys rotate every [`ROTATE_EVERY`] (6 hours): a key encrypts new
//! tickets for 6 hours and is then kept 6 more hours to read the tickets it
//! made, then erased (a ticket therefore lives at most 12 hours, and a stolen
//! key exposes at most 12 hours of resumed sessions). `session_tickets=yes`
//! keeps the keys in memory (rustls's own rotating ticketer);
//! `session_tickets=shared` keeps them in `cert_dir/ticket-keys`, so every
//! server sharing `cert_dir` (instances behind a load balancer) reads every
//! other's tickets: the first server to find the newest key too old adds a
//! new one under a file lock, the others pick it up from the file.
//!
//! The shared ticketer is written here because rustls's (`TicketRotator`)
//! only takes keys it generates itself; the sealing is ring's AES-256-GCM,
//! as rustls's own uses ring's AEADs.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};

use crate::config::SessionTickets;

/// How long a ticket key encrypts new tickets; it reads them for as long again.
pub const ROTATE_EVERY: Duration = Duration::from_secs(6 * 60 * 60);

/// Sessions remembered by ID (TLS 1.2 clients without tickets), for all
/// bindings together: about 1 MiB at most.
const SESSION_CACHE_ENTRIES: usize = 4096;

/// The file of `session_tickets=shared`, in `cert_dir`.
pub const KEYS_FILE: &str = "ticket-keys";

/// How often, at most, the keys file is read again for a ticket whose key
/// this server does not know (another server may have just rotated).
const REREAD_AT_MOST: Duration = Duration::from_secs(1);

const KEY_ID_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// What every rustls `ServerConfig` of the process resumes with.
#[derive(Clone, Default)]
pub struct Resumption {
    /// `None`: no tickets.
    pub tickets: Option<Arc<dyn ProducesTickets>>,
    /// `None`: rustls's per-config default.
    pub cache: Option<Arc<dyn StoresServerSessions>>,
}

impl fmt::Debug for Resumption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resumption")
            .field("tickets", &self.tickets.is_some())
            .finish()
    }
}

/// Why session tickets cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("the system's random number generator failed")]
    Random,
    #[error("{}: {detail}; let the server's user write in the certificate folder, or set [param] session_tickets=yes to keep the keys in memory", path.display())]
    File { path: PathBuf, detail: String },
}

impl Resumption {
    /// The resumption state for `tickets`; `cert_dir` holds shared keys.
    pub fn new(tickets: SessionTickets, cert_dir: &Path) -> Result<Resumption, TicketError> {
        let tickets: Option<Arc<dyn ProducesTickets>> = match tickets {
            SessionTickets::Off => None,
            SessionTickets::Memory => {
                Some(rustls::crypto::ring::Ticketer::new().map_err(|_| TicketError::Random)?)
            }
            SessionTickets::Shared => Some(Arc::new(SharedTicketer::open(
                &cert_dir.join(KEYS_FILE),
                now(),
            )?)),
        };
        Ok(Resumption {
            tickets,
            cache: Some(ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES)),
        })
    }

    /// Puts this state into `config`, whose sessions resume only where the
    /// same `certificate` is served: a session made with a certificate
    /// that has since been replaced (renewed, rebound) starts afresh, so
    /// the client sees the new one, as it did when every config had its
    /// own cache.
    pub fn apply(&self, config: &mut rustls::ServerConfig, certificate: &[u8]) {
        if let Some(t) = &self.tickets {
            config.ticketer = Arc::new(Bound {
                inner: t.clone(),
                label: certificate.into(),
            });
        }
        if let Some(c) = &self.cache {
            config.session_storage = Arc::new(Bound {
                inner: c.clone(),
                label: certificate.into(),
            });
        }
    }
}

/// Tickets or cached sessions of one certificate: its label (thumbprint)
/// is sealed into the ticket or prefixed to the session ID.
struct Bound<T: ?Sized> {
    inner: Arc<T>,
    label: Box<[u8]>,
}

impl<T: ?Sized> fmt::Debug for Bound<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("label", &hex::encode(&self.label))
            .finish()
    }
}

impl<T: ?Sized> Bound<T> {
    fn key(&self, key: &[u8]) -> Vec<u8> {
        [&self.label[..], key].concat()
    }
}

impl ProducesTickets for Bound<dyn ProducesTickets> {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&self.key(plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let mut plain = self.inner.decrypt(cipher)?;
        if !plain.starts_with(&self.label) {
            return None;
        }
        plain.drain(..self.label.len());
        Some(plain)
    }
}

impl StoresServerSessions for Bound<dyn StoresServerSessions> {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(self.key(&key), value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(&self.key(key))
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.take(&self.key(key))
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One ticket key.
struct TicketKey {
    /// Unix seconds when it was made.
    created: u64,
    id: [u8; KEY_ID_LEN],
    key: LessSafeKey,
    raw: [u8; KEY_LEN],
}

impl TicketKey {
    fn generate(created: u64) -> Result<TicketKey, TicketError> {
        let rng = SystemRandom::new();
        let (mut id, mut raw) = ([0u8; KEY_ID_LEN], [0u8; KEY_LEN]);
        rng.fill(&mut id).map_err(|_| TicketError::Random)?;
        rng.fill(&mut raw).map_err(|_| TicketError::Random)?;
        TicketKey::from_parts(created, id, raw).ok_or(TicketError::Random)
    }

    fn from_parts(created: u64, id: [u8; KEY_ID_LEN], raw: [u8; KEY_LEN]) -> Option<TicketKey> {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &raw).ok()?);
        Some(TicketKey {
            created,
            id,
            key,
            raw,
        })
    }

    /// `created id key`, the last two in hex.
    fn line(&self) -> String {
        format!(
            "{} {} {}\n",
            self.created,
            hex::encode(self.id),
            hex::encode(self.raw)
        )
    }

    fn parse(line: &str) -> Option<TicketKey> {
        let mut parts = line.split_ascii_whitespace();
        let created = parts.next()?.parse().ok()?;
        let id = hex::decode(parts.next()?).ok()?.try_into().ok()?;
        let raw = hex::decode(parts.next()?).ok()?.try_into().ok()?;
        TicketKey::from_parts(created, id, raw)
    }

    /// Encrypts new tickets until then.
    fn fresh_at(&self, now: u64) -> bool {
        now < self.created.saturating_add(ROTATE_EVERY.as_secs())
    }

    /// Reads tickets until then.
    fn readable_at(&self, now: u64) -> bool {
        now < self.created.saturating_add(2 * ROTATE_EVERY.as_secs())
    }
}

/// Ticket keys kept in a file that several servers share.
pub struct SharedTicketer {
    path: PathBuf,
    /// Newest first; only readable ones.
    keys: RwLock<Vec<TicketKey>>,
    /// Unix milliseconds of the last read of the file for an unknown key.
    last_reread: AtomicU64,
}

impl fmt::Debug for SharedTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTicketer")
            .field("path", &self.path)
            .finish()
    }
}

impl SharedTicketer {
    /// Reads the keys file, adding a fresh key (and creating the file)
    /// when it has none that is fresh at `now`.
    pub fn open(path: &Path, now: u64) -> Result<SharedTicketer, TicketError> {
        let keys = rotate_file(path, now)?;
        Ok(SharedTicketer {
            path: path.to_path_buf(),
            keys: RwLock::new(keys),
            last_reread: AtomicU64::new(0),
        })
    }

    fn seal(&self, key: &TicketKey, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        // id | nonce | ciphertext | tag; the id is authenticated as well.
        let mut out = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = key
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.id),
                &mut out[KEY_ID_LEN + NONCE_LEN..],
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    /// Encrypts with the newest key, rotating first when it is no longer
    /// fresh; `None` (the handshake goes on without a ticket) when no key
    /// can be had.
    fn encrypt_at(&self, plain: &[u8], now: u64) -> Option<Vec<u8>> {
        {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            if let Some(key) = keys.first().filter(|k| k.fresh_at(now)) {
                return self.seal(key, plain);
            }
        }
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if !keys.first().is_some_and(|k| k.fresh_at(now)) {
            match rotate_file(&self.path, now) {
                Ok(new) => *keys = new,
                Err(e) => {
                    tracing::error!(
                        "TLS session tickets: {e}; no tickets are issued until it works"
                    );
                    return None;
                }
            }
        }
        keys.first().and_then(|key| self.seal(key, plain))
    }

    fn decrypt_at(&self, cipher: &[u8], now: u64) -> Option<Vec<u8>> {
        if cipher.len() < KEY_ID_LEN + NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let id: [u8; KEY_ID_LEN] = cipher[..KEY_ID_LEN].try_into().ok()?;
        if let Some(plain) = self.open_with(&id, cipher, now) {
            return plain;
        }
        // A key this server has not seen: another server may have rotated.
        let ms = now.saturating_mul(1000);
        let last = self.last_reread.load(Ordering::Relaxed);
        if ms.saturating_sub(last) < REREAD_AT_MOST.as_millis() as u64
            || self
                .last_reread
                .compare_exchange(last, ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        let read = read_keys(&self.path, now).ok()?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = read;
        self.open_with(&id, cipher, now).flatten()
    }

    /// `None` when no readable key has the id; `Some(None)` when it has but
    /// the ticket does not open.
    fn open_with(&self, id: &[u8; KEY_ID_LEN], cipher: &[u8], now: u64) -> Option<Option<Vec<u8>>> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let key = keys.iter().find(|k| k.id == *id && k.readable_at(now))?;
        let nonce = Nonce::try_assume_unique_for_key(&cipher[KEY_ID_LEN..KEY_ID_LEN + NONCE_LEN]);
        let Ok(nonce) = nonce else {
            return Some(None);
        };
        let mut buf = cipher[KEY_ID_LEN + NONCE_LEN..].to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(*id), &mut buf)
            .ok()
            .map(|p| p.to_vec());
        Some(plain)
    }
}

impl ProducesTickets for SharedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        // At most: a ticket made as its key is new is readable this long
        // (rustls's own rotator says the same).
        (2 * ROTATE_EVERY.as_secs()) as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.encrypt_at(plain, now())
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.decrypt_at(cipher, now())
    }
}

/// The readable keys in the file, newest first (none when it does not exist).
fn read_keys(path: &Path, now: u64) -> Result<Vec<TicketKey>, TicketError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(TicketError::File {
                path: path.to_path_buf(),
                detail: format!("cannot read it: {e}"),
            })
        }
    };
    // A line that does not parse (a hand edit) is dropped: rotating
    // rewrites the file without it.
    let mut keys: Vec<TicketKey> = text
        .lines()
        .filter_map(TicketKey::parse)
        .filter(|k| k.readable_at(now))
        .collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.created));
    Ok(keys)
}

/// Under the file's lock: the readable keys, with a fresh one added (and
/// the file rewritten atomically) when none is fresh at `now`.
fn rotate_file(path: &Path, now: u64) -> Result<Vec<TicketKey>, TicketError> {
    let err = |detail: String| TicketError::File {
        path: path.to_path_buf(),
        detail,
    };
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| err(format!("cannot open its lock {}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| err(format!("cannot lock {}: {e}", lock_path.display())))?;
    let mut keys = read_keys(path, now)?;
    if keys.first().is_some_and(|k| k.fresh_at(now)) {
        return Ok(keys);
    }
    keys.insert(0, TicketKey::generate(now)?);
    let text: String = keys.iter().map(TicketKey::line).collect();
    let tmp = path.with_extension("tmp");
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(true).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| err(format!("cannot write it: {e}")))?;
    tracing::info!(file = %path.display(), "TLS session tickets: a new ticket key");
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    #[test]
    fn two_servers_read_each_others_tickets_and_keys_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEYS_FILE);
        let a = SharedTicketer::open(&path, T0).unwrap();
        let b = SharedTicketer::open(&path, T0 + 1).unwrap();
        let ticket = a.encrypt_at(b"session", T0 + 2).unwrap();
        assert_eq!(b.decrypt_at(&ticket, T0 + 3).unwrap(), b"session");

        // b rotates after 6 hours; a learns the new key from the file.
        let later = T0 + ROTATE_EVERY.as_secs() + 10;
        let newer = b.encrypt_at(b"newer", later).unwrap();
        assert_ne!(newer[..KEY_ID_LEN], ticket[..KEY_ID_LEN]);
        assert_eq!(a.decrypt_at(&newer, later).unwrap(), b"newer");
        // The old key still reads its tickets, and a did not add a third.
        assert_eq!(a.decrypt_at(&ticket, later).unwrap(), b"session");
        assert_eq!(read_keys(&path, later).unwrap().len(), 2);

        // 12 hours on, the first key is gone.
        let gone = T0 + 2 * ROTATE_EVERY.as_secs() + 1;
        assert!(a.decrypt_at(&ticket, gone).is_none());
    }

    #[test]
    fn sessions_resume_only_with_the_certificate_they_were_made_with() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Resumption::new(SessionTickets::Memory, dir.path()).unwrap();
        let config = |label: &[u8]| {
            let mut c = crate::tls::config::refusing_config().as_ref().clone();
            shared.apply(&mut c, label);
            c
        };
        let (a, a2, b) = (config(b"cert-a"), config(b"cert-a"), config(b"cert-b"));
        let ticket = a.ticketer.encrypt(b"session").unwrap();
        assert_eq!(a2.ticketer.decrypt(&ticket).unwrap(), b"session");
        assert!(b.ticketer.decrypt(&ticket).is_none());
        assert!(a.session_storage.put(b"id".to_vec(), b"v".to_vec()));
        assert_eq!(a2.session_storage.get(b"id").unwrap(), b"v");
        assert!(b.session_storage.get(b"id").is_none());
    }

    #[test]
    fn tampered_or_short_tickets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = SharedTicketer::open(&dir.path().join(KEYS_FILE), T0).unwrap();
        let mut ticket = t.encrypt_at(b"session", T0).unwrap();
        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        assert!(t.decrypt_at(&ticket, T0).is_none());
        assert!(t.decrypt_at(&ticket[..20], T0).is_none());
        assert!(t.decrypt_at(&[], T0).is_none());
    }

    #[test]
    fn a_damaged_keys_file_is_replaced_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEYS_FILE);
        std::fs::write(&path, "garbage\n1 zz 00\n").unwrap();
        let t = SharedTicketer::open(&path, T0).unwrap();
        let ticket = t.encrypt_at(b"x", T0).unwrap();
        assert_eq!(t.decrypt_at(&ticket, T0).unwrap(), b"x");
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
