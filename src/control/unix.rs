//! The control channel on Unix: a Unix domain socket.
//!
//! * A socket file left behind by a crashed server is removed at start, but
//!   only when nothing accepts connections on it; if a server answers, start-up
//!   fails. A path that exists and is not a socket is never removed.
//! * Mode 0600 after bind (only the server's user — and root — can connect),
//!   or 0660 when the socket's folder has the set-group-ID bit: the usual
//!   shared-folder setup (`chgrp apps /run/portshare; chmod 2770 …`) lets that
//!   group's users connect, and URL reservations decide what they may register.
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
        let listener = UnixListener::bind(path).map_err(err)?;
        let shared_group = path
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .and_then(|d| std::fs::metadata(d).ok())
            .is_some_and(|m| m.mode() & 0o2000 != 0);
        let mode = if shared_group { 0o660 } else { 0o600 };
        let meta = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .and_then(|()| std::fs::symlink_metadata(path))
            .map_err(|e| {
                let _ = std::fs::remove_file(path);
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

pub async fn connect(path: &Path) -> io::Result<ClientStream> {
    UnixStream::connect(path).await
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

/// The name of `uid` in passwd(5) text (`name:x:uid:gid:…`).
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
}
