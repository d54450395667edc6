//! Hot reload: the certificate folder is watched (notify, non-recursive — a Kubernetes
//! Secret's `..data` symlink swap is a rename inside it), polled once a second as a
//! fallback (names, sizes, mtimes, inodes and symlink targets of its entries), and
//! `SIGHUP` forces a reload. Events are debounced for 200 ms (at most 1 s).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::snapshot::{build, Snapshot};

/// How often the folder is compared with its last fingerprint.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Quiet time after a change event before rebuilding.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Longest a stream of events can delay a rebuild.
const DEBOUNCE_MAX: Duration = Duration::from_secs(1);

/// Owns the current snapshot and rebuilds it.
pub(crate) struct Reloader {
    pub cert_dir: PathBuf,
    pub snapshot: ArcSwap<Snapshot>,
    /// Serialises rebuilds (watch task and explicit reloads).
    building: Mutex<()>,
    /// A failed reload was logged; the same failure every second (an
    /// unreadable store, say) is not logged again until a reload works.
    failing: std::sync::atomic::AtomicBool,
}

impl Reloader {
    pub(crate) fn new(cert_dir: PathBuf, first: Snapshot) -> Reloader {
        Reloader {
            cert_dir,
            snapshot: ArcSwap::from_pointee(first),
            building: Mutex::new(()),
            failing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Rebuilds the snapshot now (blocking file I/O). On failure the old one stays.
    pub(crate) fn reload_now(&self, why: &str) -> bool {
        let _guard = self.building.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot.load_full();
        match build(&self.cert_dir, &old) {
            Ok(new) => {
                let (before, after) = (old.describe(), new.describe());
                if before != after {
                    tracing::info!(reason = why, bindings = ?after, "SSL bindings reloaded");
                }
                crate::metrics::set_bound_certificates(new.bound_certificates());
                self.snapshot.store(Arc::new(new));
                self.failing
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                true
            }
            Err(e) => {
                if !self
                    .failing
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::error!(
                        reason = why,
                        "cannot reload the SSL bindings: {e}; the previous bindings stay in force"
                    );
                }
                false
            }
        }
    }
}

/// A cheap summary of the folder's entries; changes when any file is added, removed,
/// rewritten, renamed over, or a symlink is retargeted.
pub(crate) fn fingerprint(dir: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    let mut items = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let path = e.path();
            let link = std::fs::read_link(&path).ok();
            let meta = std::fs::metadata(&path)
                .ok()
                .map(|m| (m.len(), m.modified().ok(), inode(&m)));
            items.push((e.file_name(), link, meta));
        }
    } else {
        "missing".hash(&mut h);
    }
    items.sort();
    items.hash(&mut h);
    h.finish()
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino()
}

#[cfg(not(unix))]
fn inode(_m: &std::fs::Metadata) -> u64 {
    0
}

/// Whether an event can change what the folder holds. Opening and reading
/// (access events) can't — and must not count: the fallback poll and every
/// rebuild read the folder, and would otherwise trigger the next rebuild.
fn is_change(kind: &notify::EventKind) -> bool {
    !matches!(kind, notify::EventKind::Access(_))
}

/// Starts the notify watcher; its events go to `tx`. `None` (with a warning) when the
/// platform refuses; polling still works then.
pub(crate) fn watcher(
    dir: &Path,
    tx: mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let handler = move |res: notify::Result<notify::Event>| {
        if res.is_ok_and(|ev| is_change(&ev.kind)) {
            let _ = tx.send(());
        }
    };
    let mut w = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(
                "cannot watch {}: {e}; polling it every second instead",
                dir.display()
            );
            return None;
        }
    };
    if let Err(e) = w.watch(dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(
            "cannot watch {}: {e}; polling it every second instead",
            dir.display()
        );
        return None;
    }
    Some(w)
}

/// The reload loop. Ends when every sender of `rx` is gone (the `Tls` was dropped).
pub(crate) async fn run(
    reloader: Arc<Reloader>,
    mut rx: mpsc::UnboundedReceiver<()>,
    watching: Option<oneshot::Sender<()>>,
) {
    let dir = reloader.cert_dir.clone();
    let mut last = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || fingerprint(&dir))
            .await
            .unwrap_or(0)
    };
    // The first fingerprint is taken: changes from now on are seen.
    if let Some(watching) = watching {
        let _ = watching.send(());
    }
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hup = hangup_signal();
    loop {
        let why = tokio::select! {
            ev = rx.recv() => {
                if ev.is_none() {
                    return;
                }
                // Debounce: wait for a quiet period, bounded.
                let start = Instant::now();
                loop {
                    let quiet_until = (Instant::now() + DEBOUNCE).min(start + DEBOUNCE_MAX);
                    match tokio::time::timeout_at(quiet_until, rx.recv()).await {
                        Ok(Some(())) if Instant::now() < start + DEBOUNCE_MAX => continue,
                        Ok(None) => return,
                        _ => break,
                    }
                }
                "change in the certificate folder"
            }
            _ = tick.tick() => {
                let d = dir.clone();
                let fp = tokio::task::spawn_blocking(move || fingerprint(&d)).await.unwrap_or(last);
                if fp == last {
                    continue;
                }
                "change found by polling"
            }
            _ = next_hangup(&mut hup) => "SIGHUP",
        };
        let r = reloader.clone();
        let why = why.to_owned();
        if let Ok(fp) = tokio::task::spawn_blocking(move || {
            // Fingerprint first: a change during the rebuild is seen next time.
            let fp = fingerprint(&r.cert_dir);
            r.reload_now(&why);
            fp
        })
        .await
        {
            last = fp;
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
/// No SIGHUP off Unix (never `Some`; not `()`, which clippy flags at `let mut hup`).
#[cfg(not(unix))]
type Hangup = Option<std::convert::Infallible>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP: {e}");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn next_hangup(sig: &mut Hangup) {
    match sig {
        Some(s) => {
            if s.recv().await.is_none() {
                *sig = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_sig: &mut Hangup) {
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{new_self_signed, CertStore};
    use crate::store::{BindingFlags, BindingKey, SslBinding, Store};

    #[test]
    fn reading_the_folder_is_not_a_change() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode,
        };
        use notify::EventKind;
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Read)));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::Both
        ))));
        assert!(is_change(&EventKind::Remove(RemoveKind::Any)));
        assert!(is_change(&EventKind::Any));
    }

    #[test]
    fn fingerprint_sees_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let f0 = fingerprint(d);
        std::fs::write(d.join("a.pem"), "x").unwrap();
        let f1 = fingerprint(d);
        assert_ne!(f0, f1);
        assert_eq!(f1, fingerprint(d));
        // Same size, replaced by rename: the inode differs.
        std::fs::write(d.join(".tmp"), "y").unwrap();
        std::fs::rename(d.join(".tmp"), d.join("a.pem")).unwrap();
        assert_ne!(f1, fingerprint(d));
        assert_ne!(fingerprint(&d.join("missing")), fingerprint(d));
    }

    /// No notify events at all: polling alone picks up a change within 2 s.
    #[tokio::test]
    async fn polling_alone_reloads() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        let reloader = Arc::new(Reloader::new(d.clone(), Snapshot::default()));
        let (_tx, rx) = mpsc::unbounded_channel();
        let (watching, started) = oneshot::channel();
        let task = tokio::spawn(run(reloader.clone(), rx, Some(watching)));
        started
            .await
            .expect("the watch task took its first fingerprint");
        let c = new_self_signed(&["a.test".into()], 30).unwrap();
        CertStore::save(&d, &c).unwrap();
        Store::in_cert_dir(&d)
            .update(|data| {
                data.sslcert.push(SslBinding {
                    key: BindingKey::Ccs(443),
                    certhash: String::new(),
                    appid: "{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}".into(),
                    certstorename: String::new(),
                    flags: BindingFlags::default(),
                });
                Ok::<_, ()>(())
            })
            .unwrap();
        let start = Instant::now();
        while reloader.snapshot.load().describe().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(2), "not reloaded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
    }
}
