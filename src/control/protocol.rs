//! The control protocol: newline-delimited JSON, one request line → one
//! response line, in order, over one stream.
//!
//! ```text
//! → {"register": {"prefixes": ["http://+:8080/api/"], "backend": "http://127.0.0.1:3000", "pid": 123}}
//! ← {"ok": {"id": 7}}
//! → {"attach": {"id": 7, "pid": 124}}
//! ← {"ok": {}}
//! → {"servicestate": {}}
//! ← {"ok": {"servicestate": {"timeouts": {…}, "registrations": [{"urls": […], "pids": […], "queue_name": null}]}}}
//! → {"maintenance_run": {}}
//! ← {"ok": {"output": "…"}}
//! → {"acme_renew": {"names": ["www.example.net"]}}
//! ← {"ok": {"output": "…"}}
//! ← {"error": {"code": 183, "message": "…"}}
//! ```
//!
//! Every registration made on a connection lives until that connection
//! closes (EOF or error) or is `unregister`ed on it. `code` is the Windows
//! error number netsh would print (5, 87, 183, 50 for "not supported").

use serde::{Deserialize, Serialize};

use crate::netsh::{RegistrationState, ServiceStateSnapshot};
use crate::store::Timeouts;

/// Longest request line the server reads (bytes, newline included).
pub const MAX_LINE: usize = 64 * 1024;

/// A client request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Registers URL prefixes (all or none) for a backend.
    Register(RegisterRequest),
    /// Adds a process ID to a registration's request queue (shown by
    /// `show servicestate`); e.g. `portshare run` attaches its child.
    Attach { id: u64, pid: u32 },
    /// Drops a registration made on this connection.
    Unregister { id: u64 },
    /// The live registrations for `http show servicestate`.
    #[serde(rename = "servicestate")]
    ServiceState {},
    /// Runs the daily maintenance now.
    MaintenanceRun {},
    /// Last and next maintenance run.
    MaintenanceStatus {},
    /// The names ACME looks after: certificate, renewal, last result.
    AcmeStatus {},
    /// Writes the access and httperr logs out now (`netsh http flush logbuffer`).
    FlushLogs {},
    /// Renews the named ACME certificates now (every one when empty).
    AcmeRenew {
        #[serde(default)]
        names: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub prefixes: Vec<String>,
    /// Where requests go, e.g. `http://127.0.0.1:3000`.
    pub backend: String,
    /// The application's process ID (informational); the peer's own PID
    /// (from the socket) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Request queue name; unnamed when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

/// A response line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(OkBody),
    Error(ErrorBody),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OkBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servicestate: Option<WireServiceState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Windows error number (netsh's `Error: N`).
    pub code: u32,
    /// One plain-language sentence.
    pub message: String,
}

impl Response {
    pub fn error(code: u32, message: impl Into<String>) -> Response {
        Response::Error(ErrorBody {
            code,
            message: message.into(),
        })
    }
}

/// [`ServiceStateSnapshot`] on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireServiceState {
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub registrations: Vec<WireRegistration>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRegistration {
    pub urls: Vec<String>,
    #[serde(default)]
    pub pids: Vec<u32>,
    #[serde(default)]
    pub queue_name: Option<String>,
}

impl From<WireServiceState> for ServiceStateSnapshot {
    fn from(w: WireServiceState) -> Self {
        ServiceStateSnapshot {
            timeouts: w.timeouts,
            registrations: w
                .registrations
                .into_iter()
                .map(|r| RegistrationState {
                    urls: r.urls,
                    pids: r.pids,
                    queue_name: r.queue_name,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        let req: Request = serde_json::from_str(
            r#"{"register": {"prefixes": ["http://+:80/api/"], "backend": "http://127.0.0.1:3000", "pid": 123}}"#,
        )
        .unwrap();
        assert_eq!(
            req,
            Request::Register(RegisterRequest {
                prefixes: vec!["http://+:80/api/".into()],
                backend: "http://127.0.0.1:3000".into(),
                pid: Some(123),
                queue: None,
            })
        );
        assert_eq!(
            serde_json::to_string(&Request::ServiceState {}).unwrap(),
            r#"{"servicestate":{}}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::MaintenanceRun {}).unwrap(),
            r#"{"maintenance_run":{}}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::FlushLogs {}).unwrap(),
            r#"{"flush_logs":{}}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::Ok(OkBody {
                id: Some(4),
                ..OkBody::default()
            }))
            .unwrap(),
            r#"{"ok":{"id":4}}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::error(183, "taken")).unwrap(),
            r#"{"error":{"code":183,"message":"taken"}}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::AcmeRenew {
                names: vec!["a.example.net".into()]
            })
            .unwrap(),
            r#"{"acme_renew":{"names":["a.example.net"]}}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"acme_renew": {}}"#).unwrap(),
            Request::AcmeRenew { names: vec![] }
        );
        assert!(serde_json::from_str::<Request>(r#"{"frob": {}}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"register": {"prefixes": []}}"#).is_err());
    }
}
