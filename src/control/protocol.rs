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
//! → {"cachestate": {"url": "http://+:8080/docs/"}}
//! ← {"ok": {"cache": {"entries": [{"url": "http://+:8080/docs/a.html", "content_length": 120, …}]}}}
//! → {"delete_cache": {"url": "http://+:8080/docs/", "recursive": true}}
//! ← {"ok": {"cache": {"dropped": ["http://+:8080/docs/a.html"]}}}
//! → {"store_settings": {}}
//! ← {"ok": {}}
//! ← {"error": {"code": 183, "message": "…"}}
//! ```
//!
//! Every registration made on a connection lives until that connection
//! closes (EOF or error) or is `unregister`ed on it. `code` is the Windows
//! error number netsh would print (5, 87, 183, 50 for "not supported").

use serde::{Deserialize, Serialize};

use crate::netsh::{CacheEntryState, RegistrationState, ServiceStateSnapshot};
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
    /// Re-reads GLOBAL.INI and puts it in force (`portshare reload`).
    Reload {},
    /// Renews the named ACME certificates now (every one when empty).
    AcmeRenew {
        #[serde(default)]
        names: Vec<String>,
    },
    /// The in-memory file cache (`netsh http show cachestate [url=…]`):
    /// every entry, or those under `url`.
    #[serde(rename = "cachestate")]
    CacheState {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    /// Drops cache entries (`netsh http delete cache [url=…]
    /// [recursive=yes]`): all, the one for `url`, or (recursive) every one
    /// under `url`.
    DeleteCache {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default)]
        recursive: bool,
    },
    /// Re-reads what the running server takes from the store besides the
    /// SSL bindings (after `netsh http add cacheparam` or `add|delete
    /// iplisten`): the cache parameters and the IP listen list, so the
    /// cache and the listeners follow them at once.
    #[serde(rename = "store_settings")]
    StoreSettings {},
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
    /// The answer to `cachestate` and `delete_cache` (boxed: rarely sent,
    /// and it keeps every response small).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Box<WireCache>>,
}

/// The file cache on the wire: the entries shown (`cachestate`) or the URLs
/// dropped (`delete_cache`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCache {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<WireCacheEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
}

/// One cached response on the wire (see [`crate::netsh::CacheEntryState`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCacheEntry {
    pub url: String,
    pub content_length: u64,
    #[serde(default)]
    pub cached_bytes: u64,
    #[serde(default)]
    pub content_type: String,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub created_ms: u64,
    #[serde(default)]
    pub hits: u64,
    #[serde(default)]
    pub queue_name: Option<String>,
}

impl From<WireCacheEntry> for CacheEntryState {
    fn from(w: WireCacheEntry) -> Self {
        CacheEntryState {
            url: w.url,
            content_length: w.content_length,
            cached_bytes: w.cached_bytes,
            content_type: w.content_type,
            created: std::time::UNIX_EPOCH + std::time::Duration::from_millis(w.created_ms),
            hits: w.hits,
            queue_name: w.queue_name,
        }
    }
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
    /// Requests in the queue now (absent from an older server: 0).
    #[serde(default)]
    pub queue_length: u64,
    /// The queue's limit (absent from an older server: HTTP.sys's 1000).
    #[serde(default = "default_queue_limit")]
    pub queue_limit: u64,
}

fn default_queue_limit() -> u64 {
    1000
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
                    queue_length: r.queue_length,
                    queue_limit: r.queue_limit,
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
        assert_eq!(
            serde_json::to_string(&Request::CacheState { url: None }).unwrap(),
            r#"{"cachestate":{}}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"delete_cache": {"url": "http://+:80/a/"}}"#)
                .unwrap(),
            Request::DeleteCache {
                url: Some("http://+:80/a/".into()),
                recursive: false
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::StoreSettings {}).unwrap(),
            r#"{"store_settings":{}}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"frob": {}}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"register": {"prefixes": []}}"#).is_err());
    }
}
