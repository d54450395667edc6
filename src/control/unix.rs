//! The control channel on Unix: a Unix domain socket.
//!
//! * A socket file left behind by a crashed server is removed at start, but
//!   only when nothing accepts connections on it; if a server answers, start-up
//!   fails. A path that exists and is not a socket is never removed.
//! * Mode 0600 (only the server's user — and root — can connect), or 0660
//!   when the socket's folder has the set-group-ID bit: the usual
//!   shared-folder setup (`chgrp apps /run/portshare; chmod 2770 …`) lets that
//!   group's users connect, and URL reservations decide what they may register.
//! * The mode is right from the moment the socket has its name: bind() makes
//!   the file with the umask's mode (0777 under umask 000), so the socket is
//!   bound in a private 0700 folder beside the target, given its mode there,
//!   and then hard-linked into place (which, unlike rename, never replaces a
//!   socket another server put there meanwhile). Setting the umask instead
//!   would race with every other thread creating files.
//! * Peer identity from `SO_PEERCRED` ([`UnixStream::peer_cred`]); user names
//!   from `/etc/passwd` (the numeric uid when it has no entry).

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use super::acl::PeerUser;
use super::ControlError;

pub type ServerStream = UnixStream;
pub type ClientStream = UnixStream;

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub user: PeerUser,
    pub pid: Option<u32>,
}

pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file we created, so cleanup never
    /// removes a socket another server put there since.
    ident: (u64, u64),
    server_user: PeerUser,
}

impl Listener {
    pub fn bind(path: &Path) -> Result<Listener, ControlError> {
        let err = |source: io::Error| ControlError::Bind {
            path: path.to_path_buf(),
            source,
        };
        // sun_path holds 108 bytes including the terminating NUL.
        if path.as_os_str().len() > 107 {
            return Err(err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path is longer than the 107 bytes a Unix socket path may have; set a shorter control_socket",
            )));
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => return Err(ControlError::InUse(path.to_path_buf())),
                    Err(_) => {
                        tracing::info!(path = %path.display(), "removing a stale control socket");
                        std::fs::remove_file(path).map_err(err)?;
                    }
                }
            }
            Ok(_) => {
                return Err(err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is in the way; remove it or set another control_socket",
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let shared_group = std::fs::metadata(dir).is_ok_and(|m| m.mode() & 0o2000 != 0);
        let mode = if shared_group { 0o660 } else { 0o600 };
        let (listener, meta) = bind_privately(path, dir, mode)?;
        listener.set_nonblocking(true).map_err(|e| {
            Listener::cleanup(path, (meta.dev(), meta.ino()));
            err(e)
        })?;
        let listener = UnixListener::from_std(listener).map_err(|e| {
            Listener::cleanup(path, (meta.dev(), meta.ino()));
            err(e)
        })?;
        // The socket file is owned by our effective uid: that is the server's user.
        let server_user = user_for_uid(meta.uid());
        Ok(Listener {
            listener,
            path: path.to_path_buf(),
            ident: (meta.dev(), meta.ino()),
            server_user,
        })
    }

    pub fn server_user(&self) -> PeerUser {
        self.server_user.clone()
    }

    pub async fn accept(&mut self) -> io::Result<(ServerStream, Peer)> {
        let (stream, _) = self.listener.accept().await?;
        let cred = stream.peer_cred()?;
        let peer = Peer {
            user: user_for_uid(cred.uid()),
            pid: cred.pid().and_then(|p| u32::try_from(p).ok()),
        };
        Ok((stream, peer))
    }

    /// Removes the socket file if it is still the one we created.
    pub fn cleanup(path: &Path, ident: (u64, u64)) {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if (meta.dev(), meta.ino()) == ident {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    pub fn cleanup_token(&self) -> (PathBuf, (u64, u64)) {
        (self.path.clone(), self.ident)
    }
}

/// Binds a socket at `path` whose mode is `mode` before it appears there (see
/// the module doc). Returns the listener and the socket file's metadata.
fn bind_privately(
    path: &Path,
    dir: &Path,
    mode: u32,
) -> Result<(std::os::unix::net::UnixListener, std::fs::Metadata), ControlError> {
    let err = |source: io::Error| ControlError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let private = create_private_dir(dir).map_err(|e| {
        err(io::Error::new(
            e.kind(),
            format!(
                "cannot create a private temporary folder in {} to bind the socket in: {e}; \
                 the server's user needs write access to that folder",
                dir.display()
            ),
        ))
    })?;
    let tmp = private.join("s");
    let result = (|| {
        if tmp.as_os_str().len() > 107 {
            return Err(err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the socket is first bound at {}, which is longer than the 107 bytes a Unix \
                     socket path may have; set a shorter control_socket",
                    tmp.display()
                ),
            )));
        }
        let listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(err)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(err)?;
        let meta = std::fs::symlink_metadata(&tmp).map_err(err)?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {}
            // Another server started since the stale-socket check.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => ControlError::InUse(path.to_path_buf()),
                    Err(_) => err(e),
                });
            }
            // A file system without hard links: rename still keeps the mode.
            Err(_) => std::fs::rename(&tmp, path).map_err(err)?,
        }
        Ok((listener, meta))
    })();
    // The listener stays bound to the inode, whichever names it has.
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&private);
    result
}

/// A new folder `.psXXXXXX` in `dir` that only our user may enter. Short, as
/// the socket path inside it must fit in 107 bytes.
fn create_private_dir(dir: &Path) -> io::Result<PathBuf> {
    use std::hash::{BuildHasher, Hasher};
    use std::os::unix::fs::DirBuilderExt;
    let mut attempts = 0;
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u32(attempts);
        let candidate = dir.join(format!(".ps{:06x}", h.finish() & 0xff_ffff));
        match std::fs::DirBuilder::new().mode(0o700).create(&candidate) {
            Ok(()) => {
                // A umask with owner bits (e.g. 0700) would leave it unusable;
                // keep the set-group-ID bit inherited from a shared folder, so
                // the socket gets that folder's group.
                let m = std::fs::metadata(&candidate)?.mode();
                if m & 0o777 != 0o700 {
                    std::fs::set_permissions(
                        &candidate,
                        std::fs::Permissions::from_mode(0o700 | (m & 0o2000)),
                    )?;
                }
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

pub async fn connect(path: &Path) -> io::Result<ClientStream> {
    UnixStream::connect(path).await
}

/// Who may connect to the socket at `path`, for a user who was refused:
/// its owner (the server's user), root, and its group when the mode lets the
/// group in — with what to do about it.
pub fn who_may_connect(path: &Path) -> String {
    let Ok(meta) = std::fs::metadata(path) else {
        // The folder itself keeps this user out (stat needs search permission).
        let dir = path.parent().unwrap_or(Path::new("."));
        return format!(
            "this user may not enter its folder {}; run the command as the server's user, \
             or give this user access to that folder",
            dir.display()
        );
    };
    let owner = user_for_uid(meta.uid()).name;
    if meta.mode() & 0o060 == 0o060 {
        let group = group_name(meta.gid());
        format!(
            "only its owner {owner} (the server's user), root and members of group {group} may \
             connect; run the command as {owner} (sudo -u {owner} portshare …), or join the \
             group (sudo usermod -aG {group} $USER, then log in again)"
        )
    } else {
        format!(
            "only its owner {owner} (the server's user) and root may connect; run the command \
             as {owner} (sudo -u {owner} portshare …), or let a group in: put the socket in a \
             folder with the set-group-ID bit (chgrp GROUP DIR; chmod 2770 DIR; \
             control_socket=DIR/portshare.sock)"
        )
    }
}

/// The name of group `gid` from `/etc/group`, else the number.
fn group_name(gid: u32) -> String {
    std::fs::read("/etc/group")
        .ok()
        .and_then(|bytes| passwd_name(&String::from_utf8_lossy(&bytes), gid))
        .unwrap_or_else(|| gid.to_string())
}

/// Connection failures that mean "no server is running there".
pub fn is_not_running(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// The account for `uid`: its name from `/etc/passwd`, else the number.
pub fn user_for_uid(uid: u32) -> PeerUser {
    let name = std::fs::read("/etc/passwd")
        .ok()
        .and_then(|bytes| passwd_name(&String::from_utf8_lossy(&bytes), uid))
        .unwrap_or_else(|| uid.to_string());
    PeerUser {
        uid: Some(uid),
        name,
    }
}

/// The name of `uid` in passwd(5) text (`name:x:uid:gid:…`); group(5) text
/// (`name:x:gid:members`) has the same first three fields.
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let id: u32 = fields.next()?.trim().parse().ok()?;
        (id == uid && !name.is_empty() && !name.starts_with('#')).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_parsing() {
        let text = "# comment\nroot:x:0:0:root:/root:/bin/bash\n\nbroken\nalice:x:1000:1000::/home/alice:/bin/sh\nbad:x:notanumber:1::/:/\n";
        assert_eq!(passwd_name(text, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(text, 1000).as_deref(), Some("alice"));
        assert_eq!(passwd_name(text, 4242), None);
        assert_eq!(user_for_uid(4_000_000_000).name, "4000000000");
    }

    /// Names in `dir` other than `keep`.
    fn others(dir: &Path, keep: &str) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != keep)
            .collect()
    }

    #[tokio::test]
    async fn binds_with_its_mode_and_leaves_no_temp_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let listener = Listener::bind(&path).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(listener.cleanup_token().1, (meta.dev(), meta.ino()));
        assert_eq!(others(dir.path(), "c.sock"), Vec::<String>::new());
        // The hard-linked name reaches the listener.
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        // A second server finds it answering.
        assert!(matches!(Listener::bind(&path), Err(ControlError::InUse(_))));
        let (p, ident) = listener.cleanup_token();
        drop(listener);
        Listener::cleanup(&p, ident);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_shared_folder_gives_group_access_and_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        // As root, give the folder a group we are not in (a numeric gid
        // without an entry), as `chgrp apps` would.
        let gid = 3_999_000 + std::process::id() % 900;
        let root = std::fs::metadata(dir.path()).unwrap().uid() == 0;
        if root {
            std::os::unix::fs::chown(&shared, None, Some(gid)).unwrap();
        }
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o2770)).unwrap();
        let want_gid = std::fs::metadata(&shared).unwrap().gid();
        let path = shared.join("c.sock");
        let listener = Listener::bind(&path).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), want_gid, "the shared folder's group");
        if root {
            assert_eq!(meta.gid(), gid);
        }
        assert_eq!(others(&shared, "c.sock"), Vec::<String>::new());
        drop(listener);
    }

    #[tokio::test]
    async fn a_path_too_long_for_the_temp_folder_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        // Fits in 107 bytes itself, but its temp folder's path does not.
        let base = dir.path().as_os_str().len() + 1;
        let deep = dir.path().join("d".repeat(107 - base - 2));
        std::fs::create_dir(&deep).unwrap();
        let path = deep.join("s");
        assert!(path.as_os_str().len() <= 107);
        let e = Listener::bind(&path).err().expect("too long");
        assert!(
            e.to_string().contains("set a shorter control_socket"),
            "{e}"
        );
        assert_eq!(others(&deep, ""), Vec::<String>::new());
    }
}
