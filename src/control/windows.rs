//! The control channel on Windows: a named pipe (`\\.\pipe\portshare-…`).
//!
//! The pipe is created with the default security descriptor, whose DACL
//! grants full access to the creator (the server's user), Administrators and
//! SYSTEM only, and with remote clients rejected. Users other than those
//! cannot connect at all, so every peer is treated as the server's own user
//! (URL reservations never need consulting; Administrators may register any
//! URL on Windows anyway). The peer's process ID is not read from the pipe
//! (that needs `GetNamedPipeClientProcessId`); the `pid` a client sends is
//! shown instead.
//!
//! `first_pipe_instance` makes a second server on the same pipe name fail at
//! start-up instead of silently sharing connections.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::windows::named_pipe::{
    ClientOptions, NamedPipeClient, NamedPipeServer, ServerOptions,
};

use super::acl::PeerUser;
use super::ControlError;
use crate::winerror::{ERROR_ACCESS_DENIED, ERROR_PIPE_BUSY};

pub type ServerStream = NamedPipeServer;
pub type ClientStream = NamedPipeClient;

#[derive(Debug, Clone)]
pub struct Peer {
    pub user: PeerUser,
    pub pid: Option<u32>,
}

pub struct Listener {
    next: NamedPipeServer,
    path: PathBuf,
    server_user: PeerUser,
}

fn current_user() -> PeerUser {
    let name = std::env::var("USERNAME").unwrap_or_default();
    let name = match std::env::var("USERDOMAIN") {
        Ok(d) if !d.is_empty() && !name.is_empty() => format!("{d}\\{name}"),
        _ => name,
    };
    PeerUser { uid: None, name }
}

impl Listener {
    pub fn bind(path: &Path) -> Result<Listener, ControlError> {
        let next = ServerOptions::new()
            .first_pipe_instance(true)
            .reject_remote_clients(true)
            .create(path)
            .map_err(|source| {
                // Access denied on the first instance: the name is taken.
                if source.raw_os_error() == Some(ERROR_ACCESS_DENIED as i32) {
                    ControlError::InUse(path.to_path_buf())
                } else {
                    ControlError::Bind {
                        path: path.to_path_buf(),
                        source,
                    }
                }
            })?;
        Ok(Listener {
            next,
            path: path.to_path_buf(),
            server_user: current_user(),
        })
    }

    pub fn server_user(&self) -> PeerUser {
        self.server_user.clone()
    }

    pub async fn accept(&mut self) -> io::Result<(ServerStream, Peer)> {
        self.next.connect().await?;
        let fresh = ServerOptions::new()
            .reject_remote_clients(true)
            .create(&self.path)?;
        let connected = std::mem::replace(&mut self.next, fresh);
        let peer = Peer {
            user: self.server_user.clone(),
            pid: None,
        };
        Ok((connected, peer))
    }

    /// Nothing to remove: a pipe goes away with its last handle.
    pub fn cleanup(_path: &Path, _ident: (u64, u64)) {}

    pub fn cleanup_token(&self) -> (PathBuf, (u64, u64)) {
        (self.path.clone(), (0, 0))
    }
}

pub async fn connect(path: &Path) -> io::Result<ClientStream> {
    let mut tries = 0;
    loop {
        match ClientOptions::new().open(path) {
            // Every instance is connected: retry shortly.
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) && tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// Who may connect to the pipe, for a user who was refused (the pipe has the
/// default security descriptor, see the module doc).
pub fn who_may_connect(_path: &Path) -> String {
    "only the server's user, Administrators and SYSTEM may connect; run the command as the \
     server's user or from an elevated prompt (Run as administrator)"
        .to_owned()
}

/// Connection failures that mean "no server is running there".
pub fn is_not_running(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}
