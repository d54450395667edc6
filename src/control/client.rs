//! The client end of the control channel.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};

use super::platform::{self, ClientStream};
use super::protocol::{OkBody, Request, Response, MAX_LINE};
use crate::netsh::{CacheEntryState, ServiceStateSnapshot};
use crate::winerror::{ERROR_ACCESS_DENIED, ERROR_GEN_FAILURE, ERROR_SERVICE_NOT_ACTIVE};

/// Why a control request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no portshare server is running for this configuration (nothing answers on the control socket {})", .0.display())]
    NotRunning(PathBuf),
    /// The socket's permissions keep this user out; `who` says who may connect.
    #[error("permission denied on the control socket {}: {who}", path.display())]
    Denied { path: PathBuf, who: String },
    #[error("cannot connect to the control socket {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the server closed the control connection")]
    Closed,
    #[error("control connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server sent something that is not a control response: {0}")]
    Protocol(String),
    /// The server refused: Windows error number and its sentence.
    #[error("{message}")]
    Refused { code: u32, message: String },
}

impl ClientError {
    /// The Windows error number to report (and exit with).
    pub fn code(&self) -> u32 {
        match self {
            ClientError::Refused { code, .. } => *code,
            ClientError::NotRunning(_) => ERROR_SERVICE_NOT_ACTIVE,
            ClientError::Denied { .. } => ERROR_ACCESS_DENIED,
            _ => ERROR_GEN_FAILURE,
        }
    }
}

/// One control connection.
pub struct Session {
    reader: BufReader<ReadHalf<ClientStream>>,
    writer: WriteHalf<ClientStream>,
}

impl Session {
    pub async fn connect(path: &Path) -> Result<Session, ClientError> {
        let stream = platform::connect(path).await.map_err(|source| {
            if platform::is_not_running(&source) {
                ClientError::NotRunning(path.to_path_buf())
            } else if source.kind() == std::io::ErrorKind::PermissionDenied {
                ClientError::Denied {
                    path: path.to_path_buf(),
                    who: platform::who_may_connect(path),
                }
            } else {
                ClientError::Connect {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let (read, writer) = tokio::io::split(stream);
        Ok(Session {
            reader: BufReader::new(read),
            writer,
        })
    }

    /// Sends one request and reads its response.
    pub async fn request(&mut self, req: &Request) -> Result<OkBody, ClientError> {
        let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        self.writer.flush().await?;
        let mut answer = Vec::new();
        let n = (&mut self.reader)
            .take(16 * MAX_LINE as u64)
            .read_until(b'\n', &mut answer)
            .await?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        match serde_json::from_slice::<Response>(&answer) {
            Ok(Response::Ok(body)) => Ok(body),
            Ok(Response::Error(e)) => Err(ClientError::Refused {
                code: e.code,
                message: e.message,
            }),
            Err(e) => Err(ClientError::Protocol(e.to_string())),
        }
    }

    /// Resolves when the server closes the connection (or it fails).
    pub async fn closed(&mut self) {
        let mut buf = [0u8; 256];
        loop {
            match self.reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // nothing unsolicited is expected; ignore
            }
        }
    }
}

/// One request on a fresh connection.
pub async fn request_once(path: &Path, req: &Request) -> Result<OkBody, ClientError> {
    Session::connect(path).await?.request(req).await
}

/// The live registrations of the server at `path`.
pub async fn service_state(path: &Path) -> Result<ServiceStateSnapshot, ClientError> {
    let body = request_once(path, &Request::ServiceState {}).await?;
    body.servicestate
        .map(Into::into)
        .ok_or_else(|| ClientError::Protocol("the answer carries no servicestate".into()))
}

/// Asks the server at `path` to run the daily maintenance now; its report.
pub async fn maintenance_run(path: &Path) -> Result<String, ClientError> {
    let body = request_once(path, &Request::MaintenanceRun {}).await?;
    Ok(body.output.unwrap_or_default())
}

/// The server's maintenance status report.
pub async fn maintenance_status(path: &Path) -> Result<String, ClientError> {
    let body = request_once(path, &Request::MaintenanceStatus {}).await?;
    Ok(body.output.unwrap_or_default())
}

/// Asks the server at `path` to write its access and httperr logs out now.
pub async fn flush_logs(path: &Path) -> Result<(), ClientError> {
    request_once(path, &Request::FlushLogs {}).await?;
    Ok(())
}

/// The ACME status report of the server at `path`.
pub async fn acme_status(path: &Path) -> Result<String, ClientError> {
    let body = request_once(path, &Request::AcmeStatus {}).await?;
    Ok(body.output.unwrap_or_default())
}

/// Asks the server at `path` to renew `names` (every ACME name when
/// empty) now; the outcome per name.
/// Asks the server at `path` to reload its configuration; the outcome.
pub async fn reload(path: &Path) -> Result<String, ClientError> {
    let body = request_once(path, &Request::Reload {}).await?;
    Ok(body.output.unwrap_or_default())
}

pub async fn acme_renew(path: &Path, names: Vec<String>) -> Result<String, ClientError> {
    let body = request_once(path, &Request::AcmeRenew { names }).await?;
    Ok(body.output.unwrap_or_default())
}

/// The in-memory file cache of the server at `path` (`netsh http show
/// cachestate`): every entry, or those under `url`.
pub async fn cache_state(
    path: &Path,
    url: Option<String>,
) -> Result<Vec<CacheEntryState>, ClientError> {
    let body = request_once(path, &Request::CacheState { url }).await?;
    body.cache
        .map(|c| c.entries.into_iter().map(Into::into).collect())
        .ok_or_else(|| ClientError::Protocol("the answer carries no cache state".into()))
}

/// Drops cache entries of the server at `path` (`netsh http delete
/// cache`); the URLs dropped.
pub async fn delete_cache(
    path: &Path,
    url: Option<String>,
    recursive: bool,
) -> Result<Vec<String>, ClientError> {
    let body = request_once(path, &Request::DeleteCache { url, recursive }).await?;
    Ok(body.cache.map(|c| c.dropped).unwrap_or_default())
}

/// Tells the server at `path` to apply the store's cache parameters now.
pub async fn store_settings_changed(path: &Path) -> Result<(), ClientError> {
    request_once(path, &Request::StoreSettings {}).await?;
    Ok(())
}
