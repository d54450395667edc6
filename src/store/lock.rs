//! The write side of the store: read-modify-write under an exclusive
//! advisory lock on `sslcert.json.lock`, and the atomic replacement of the
//! file (through [`crate::atomic_file`]). Readers never come here; see the
//! parent module for why they need no lock.

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
        crate::atomic_file::write_atomic(&self.path, &text, false).map_err(io_err("replacing"))
    }
}
