//! Replacing a file so that readers see either the old or the new content,
//! never a half-written one: write a temp file in the same folder, fsync,
//! rename over the target, fsync the folder. A failure leaves the target as
//! it was and removes the temp file.
//!
//! Temp files are named `.<name>.<pid>.<random>.tmp` and created with
//! `create_new`, retrying with another name if one is taken: a temp file left
//! by a crash (whose pid may be reused) never makes a later write fail.
//! [`remove_temps`] clears such leftovers for writers that hold a lock.
//!
//! [`replace_keeping_owner`] also keeps the replaced file's owner and mode
//! (Unix): a file that root rewrites for a service user stays readable by it.

use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many taken temp names to skip before giving up (each is random, so
/// more than one collision means something else is wrong).
const NAME_ATTEMPTS: u32 = 16;

/// Why [`replace_keeping_owner`] failed. The target is unchanged either way.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error("{action} {} failed: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Only root (or the owner, for a group it belongs to) may give the new
    /// file the old one's owner; writing anyway could lock its readers out.
    #[error(
        "cannot give the new file the owner of the one it replaces (uid {uid}, gid {gid}): \
         {source}; the file was left unchanged: run this as root or as that user"
    )]
    Owner {
        uid: u32,
        gid: u32,
        #[source]
        source: io::Error,
    },
}

impl ReplaceError {
    /// The underlying I/O error's kind (e.g. `PermissionDenied`).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            ReplaceError::Io { source, .. } | ReplaceError::Owner { source, .. } => source.kind(),
        }
    }
}

/// Writes `data` to `path` atomically. `private` files (private keys, PFX)
/// are created 0600 on Unix, so they are never readable by others, even
/// briefly; on Windows they inherit the folder's access list (see README).
pub fn write_atomic(path: &Path, data: &[u8], private: bool) -> io::Result<()> {
    let mode = if private { 0o600 } else { 0o644 };
    match replace(path, data, Perms::New(mode)) {
        Ok(()) => Ok(()),
        // Callers name the file themselves: pass the bare I/O error on.
        Err(ReplaceError::Io { source, .. } | ReplaceError::Owner { source, .. }) => Err(source),
    }
}

/// Writes `data` to `path` atomically, keeping the owner (uid, gid) and the
/// permission bits of the file it replaces; a new file is created 0644
/// (minus the umask). Refuses, leaving the file as it was, when the owner
/// cannot be kept (see [`ReplaceError::Owner`]).
pub fn replace_keeping_owner(path: &Path, data: &[u8]) -> Result<(), ReplaceError> {
    replace(path, data, Perms::KeepOr(0o644))
}

/// Removes the temp files that writes to `path` leave if they are killed
/// mid-way (`.<name>.<digits and hex>.tmp` beside it, the old
/// `.<name>.<pid>.<n>.tmp` naming included). Only call this while holding a
/// lock every writer of `path` holds: then no temp file is in use.
/// Returns the files removed.
pub fn remove_temps(path: &Path) -> io::Result<Vec<PathBuf>> {
    let (dir, name) = split(path);
    let mut removed = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(candidate) = file_name.to_str() else {
            continue;
        };
        // Only regular files: never follow or delete anything else by name.
        if !is_temp_name(&name, candidate) || !entry.file_type()?.is_file() {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed.push(entry.path()),
            // Gone already (another cleaner): fine.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Whether `candidate` is a temp file name of a write to a file named `name`.
fn is_temp_name(name: &str, candidate: &str) -> bool {
    candidate
        .strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .is_some_and(|middle| {
            !middle.is_empty() && middle.chars().all(|c| c.is_ascii_hexdigit() || c == '.')
        })
}

enum Perms {
    /// Create with this mode (minus the umask), whatever was there before.
    New(u32),
    /// Keep the replaced file's owner and mode; this mode for a new file.
    KeepOr(u32),
}

/// The folder (`.` for a bare name) and the file name of `path`.
fn split(path: &Path) -> (PathBuf, String) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

/// 64 bits no other process will guess: std's per-process random hash keys
/// over the pid, a counter and the time.
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Owner and permission bits of the file `path` replaces, if any.
#[cfg(unix)]
type Kept = Option<(u32, u32, u32)>;
#[cfg(not(unix))]
type Kept = Option<()>;

fn existing_owner(path: &Path) -> Result<Kept, ReplaceError> {
    // Follows a symlink: the owner and mode that matter are the real file's.
    match fs::metadata(path) {
        #[cfg(unix)]
        Ok(meta) => {
            use std::os::unix::fs::MetadataExt;
            Ok(Some((meta.uid(), meta.gid(), meta.mode() & 0o7777)))
        }
        #[cfg(not(unix))]
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReplaceError::Io {
            action: "reading the owner and mode of",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates a temp file beside the target under a fresh random name.
fn create_temp(dir: &Path, name: &str, mode: u32) -> Result<(PathBuf, File), ReplaceError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut attempt = 0;
    loop {
        let tmp = dir.join(format!(
            ".{name}.{}.{:016x}.tmp",
            std::process::id(),
            random_u64()
        ));
        match opts.open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < NAME_ATTEMPTS => {
                attempt += 1;
            }
            Err(source) => {
                return Err(ReplaceError::Io {
                    action: "creating the temporary file",
                    path: tmp,
                    source,
                })
            }
        }
    }
}

fn replace(path: &Path, data: &[u8], perms: Perms) -> Result<(), ReplaceError> {
    let (dir, name) = split(path);
    let (kept, create_mode) = match perms {
        Perms::New(mode) => (None, mode),
        // 0600 until the write is done: the old mode is set just before the
        // rename, so the temp file is never more open than the final one.
        Perms::KeepOr(mode) => match existing_owner(path)? {
            Some(k) => (Some(k), 0o600),
            None => (None, mode),
        },
    };
    let (tmp, mut f) = create_temp(&dir, &name, create_mode)?;
    let io_err = |action: &'static str, p: &Path| {
        let path = p.to_path_buf();
        move |source| ReplaceError::Io {
            action,
            path,
            source,
        }
    };
    let result = (|| {
        f.write_all(data)
            .map_err(io_err("writing the temporary file", &tmp))?;
        if let Some(k) = kept {
            keep_owner(&f, k)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                // After fchown, which clears set-id bits.
                f.set_permissions(fs::Permissions::from_mode(k.2))
                    .map_err(io_err("setting the mode of the temporary file", &tmp))?;
            }
        }
        f.sync_all()
            .map_err(io_err("syncing the temporary file", &tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io_err("renaming the temporary file", &tmp))
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename durable. Folders can't be opened as files on Windows,
    // where the rename is durable enough already.
    #[cfg(unix)]
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(unix)]
fn keep_owner(f: &File, (uid, gid, _): (u32, u32, u32)) -> Result<(), ReplaceError> {
    use std::os::unix::fs::MetadataExt;
    let owner = |source| ReplaceError::Owner { uid, gid, source };
    let meta = f.metadata().map_err(owner)?;
    // fchown to oneself is a no-op anyway; skipping it spares a failure on
    // file systems without owners.
    if (meta.uid(), meta.gid()) != (uid, gid) {
        std::os::unix::fs::fchown(f, Some(uid), Some(gid)).map_err(owner)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn keep_owner(_: &File, _: ()) -> Result<(), ReplaceError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one", false).unwrap();
        write_atomic(&p, b"two", true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Replaced by a private write: the new file is 0600.
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // A failed write (folder missing) leaves nothing behind.
        assert!(write_atomic(&dir.path().join("no/such/f"), b"x", false).is_err());
    }

    #[test]
    fn temp_names_are_unique_and_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _fa) = create_temp(dir.path(), "s.json", 0o600).unwrap();
        let (b, _fb) = create_temp(dir.path(), "s.json", 0o600).unwrap();
        assert_ne!(a, b);
        for p in [&a, &b] {
            let n = p.file_name().unwrap().to_str().unwrap();
            assert!(is_temp_name("s.json", n), "{n}");
        }
        // The old naming, too; nothing else.
        assert!(is_temp_name("s.json", ".s.json.1234.0.tmp"));
        for other in [
            "s.json",
            ".s.json.tmp",
            ".s.json..tmp",
            ".s.json.backup.tmp",
            ".t.json.1.0.tmp",
            "s.json.1.0.tmp",
            ".s.json.1.0.tmp.x",
        ] {
            assert!(!is_temp_name("s.json", other), "{other}");
        }
    }

    #[test]
    fn a_taken_temp_name_is_skipped() {
        // A leftover whose name a new write could pick (same pid) must not
        // make it fail: create_new fails, and another name is tried.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        let stale = dir
            .path()
            .join(format!(".f.json.{}.0.tmp", std::process::id()));
        fs::write(&stale, b"stale").unwrap();
        write_atomic(&p, b"new", false).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");

        let removed = remove_temps(&p).unwrap();
        assert_eq!(removed, vec![stale.clone()]);
        assert!(!stale.exists());
        assert!(p.exists(), "the target itself is never removed");
    }

    #[cfg(unix)]
    #[test]
    fn keeps_mode_of_the_replaced_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        // New file: the default mode.
        replace_keeping_owner(&p, b"one").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        replace_keeping_owner(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
