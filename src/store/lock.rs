//! The write side of the store: read-modify-write under an exclusive
//! advisory lock on `sslcert.json.lock`, and the atomic replacement of the
//! file (through [`crate::atomic_file`]). Readers never come here; see the
//! parent module for why they need no lock.
//!
//! A replacement keeps the file's owner and mode, so `portshare http add …`
//! run by root leaves a store the server's own user can still read. Temp
//! files that a killed writer left behind are removed under the lock.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::PathBuf;

use super::schema::StoreData;
use super::{Store, StoreError, UpdateError, STORE_FILE_NAME};

impl Store {
    /// `sslcert.json.lock` next to the store.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| STORE_FILE_NAME.into());
        name.push(".lock");
        self.path.with_file_name(name)
    }

    /// Read-modify-write under the store lock. `change` sees the current data;
    /// if it returns `Ok` and the data changed (and still validates), the new
    /// data is written atomically. If it returns `Err`, nothing is written.
    pub fn update<T, E, F>(&self, change: F) -> Result<T, UpdateError<E>>
    where
        F: FnOnce(&mut StoreData) -> Result<T, E>,
    {
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            action: "creating the folder",
            source,
        })?;
        let lock_path = self.lock_path();
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StoreError::Io {
                path: lock_path.clone(),
                action: "opening the lock file",
                source,
            })?;
        // Blocks until no other writer holds the lock; released when `lock`
        // is dropped at the end of this function. (`File::lock` is std's
        // since Rust 1.89; Cargo.toml's rust-version is at least that.)
        lock.lock().map_err(|source| StoreError::Io {
            path: lock_path.clone(),
            action: "locking",
            source,
        })?;
        // Every writer holds the lock while its temp file exists, so any
        // temp file seen now was left by a writer that died.
        match crate::atomic_file::remove_temps(&self.path) {
            Ok(removed) => {
                for p in removed {
                    tracing::debug!(path = %p.display(), "removed a stale temporary file of the store");
                }
            }
            Err(e) => tracing::warn!(
                "{}: cannot remove stale temporary files beside it ({e}); they are harmless, delete them by hand",
                self.path.display()
            ),
        }

        let before = self.load()?;
        let mut data = before.clone();
        let value = change(&mut data).map_err(UpdateError::Rejected)?;
        if data != before {
            data.validate().map_err(|reason| StoreError::Invalid {
                path: self.path.clone(),
                reason: format!("refusing to write: {reason}"),
            })?;
            self.write_atomically(&data)?;
        }
        drop(lock);
        Ok(value)
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn write_atomically(&self, data: &StoreData) -> Result<(), StoreError> {
        let io_err = |action: &'static str| {
            let path = self.path.clone();
            move |source| StoreError::Io {
                path,
                action,
                source,
            }
        };
        let mut text = serde_json::to_vec_pretty(data)
            .map_err(|e| io_err("serialising")(io::Error::other(e)))?;
        text.push(b'\n');
        crate::atomic_file::replace_keeping_owner(&self.path, &text).map_err(|e| {
            // Keeps the kind: netsh maps PermissionDenied to "Access is denied".
            io_err("replacing")(io::Error::new(e.kind(), e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bump(store: &Store, secs: u32) {
        store
            .update(|d| {
                d.timeouts.idle_connection = Some(secs);
                Ok::<_, ()>(())
            })
            .unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn update_keeps_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_cert_dir(dir.path());
        bump(&store, 30);
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o640)).unwrap();
        bump(&store, 31);
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o640);
    }

    #[test]
    fn update_removes_stale_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_cert_dir(dir.path());
        let stale = dir.path().join(".sslcert.json.1.0.tmp");
        fs::write(&stale, b"{").unwrap();
        bump(&store, 30);
        assert!(!stale.exists());
        // Also when nothing changes (the lock is taken all the same).
        fs::write(&stale, b"{").unwrap();
        bump(&store, 30);
        assert!(!stale.exists());
    }
}
