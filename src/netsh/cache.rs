//! `http show cachestate`, `http delete cache`, `http add|show cacheparam`:
//! HTTP.sys's kernel response cache, mapped onto portshare's in-memory file
//! cache of the built-in site (`crate::site::files`).
//!
//! - `show cachestate [url=URL]` lists the cached files of the running
//!   server (all, or those whose URL starts with `URL`), asked over the
//!   control socket; without a server it fails as the other live commands
//!   do, saying the server is not running.
//! - `delete cache [url=URL] [recursive=yes|no]` drops every entry, the one
//!   for `URL`, or (recursive) all under it; the next request reads the
//!   file again. A `URL` with nothing cached is error 2.
//! - `add cacheparam type=maxcacheresponsesize|cacherangechunksize
//!   value=N` (bytes, decimal or `0x` hex, as netsh's help says) is kept in
//!   the store; `maxcacheresponsesize` is the largest file kept in memory
//!   (the running server applies it at once, and at start),
//!   `cacherangechunksize` is kept and shown only (portshare cuts ranges
//!   from the cached bytes). `show cacheparam` prints both.
//!
//! The `show cachestate` entry layout is netsh's (Windows Vista and later,
//! as quoted in docs/httpsys.md#netsh-cache): `URL:`, `Status code:`, `HTTP
//! verb:`, `Cache policy type:`, `Creation time:` (netsh's
//! `YYYY.M.D:H.M.S:MS`, local time), `Request queue name:`, `Content
//! length:`, `Hit count:`, `Force disconnect after serving:`; `Headers
//! length:` is left out (portshare caches no headers). The empty answer is
//! netsh's `There were no cache entries corresponding to the provided URL`.
//! The success and failure lines of `delete cache` / `add cacheparam` and
//! the `show cacheparam` layout follow netsh's pattern and are unverified.

use std::time::SystemTime;

use super::params::{parse_yes_no, Params};
use super::servicestate::no_server;
use super::{success, Failure, NetshContext, NetshOutput};
use crate::store::{CacheParams, Store};

const SHOW_STATE_USAGE: &str = "Usage: http show cachestate [url=URL]";
const DELETE_USAGE: &str = "Usage: http delete cache [url=URL] [recursive=yes|no]";
const ADD_PARAM_USAGE: &str =
    "Usage: http add cacheparam type=cacherangechunksize|maxcacheresponsesize value=BYTES";
const SHOW_PARAM_USAGE: &str = "Usage: http show cacheparam";

/// One cached response as `show cachestate` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntryState {
    /// The URL under the site's first prefix (`http://+:8080/docs/a.html`).
    pub url: String,
    pub content_length: u64,
    /// Bytes held in memory (0: the file is larger than
    /// `maxcacheresponsesize` and is read from disk each time).
    pub cached_bytes: u64,
    pub content_type: String,
    pub created: SystemTime,
    pub hits: u64,
    pub queue_name: Option<String>,
}

pub(crate) fn show_state(args: &[String], ctx: &NetshContext<'_>) -> NetshOutput {
    let params = match Params::parse(args, &["url"], SHOW_STATE_USAGE) {
        Ok(p) => p,
        Err(f) => return f.render(None),
    };
    let answer = match ctx.service_state {
        Some(live) => live.cache_state(params.get("url")),
        None => Err(no_server()),
    };
    match answer {
        Ok(entries) => NetshOutput {
            stdout: format_cache_state(&entries),
            exit_code: 0,
        },
        Err((code, explain)) => Failure::new(code, explain).render(None),
    }
}

/// The `netsh http show cachestate` text.
pub fn format_cache_state(entries: &[CacheEntryState]) -> String {
    if entries.is_empty() {
        return "\nThere were no cache entries corresponding to the provided URL\n\n".to_owned();
    }
    let mut out = String::from(
        "\nSnapshot of HTTP response cache:\n\
         --------------------------------\n\n",
    );
    for e in entries {
        out.push_str(&format!(
            "URL: {}\n\
             Status code: 200\n\
             HTTP verb: GET\n\
             Cache policy type: User invalidates\n\
             Creation time: {}\n\
             Request queue name: {}\n\
             Content length: {}\n\
             Hit count: {}\n\
             Force disconnect after serving: FALSE\n\n",
            e.url,
            creation_time(e.created),
            e.queue_name
                .as_deref()
                .unwrap_or("Request queue is unnamed."),
            e.content_length,
            e.hits,
        ));
    }
    out
}

/// netsh's creation time: `2006.3.21:23.30.16:0` (no zero padding,
/// milliseconds last), local time.
fn creation_time(t: SystemTime) -> String {
    use chrono::{Datelike, Timelike};
    let t: chrono::DateTime<chrono::Local> = t.into();
    format!(
        "{}.{}.{}:{}.{}.{}:{}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.timestamp_subsec_millis()
    )
}

pub(crate) fn delete(args: &[String], ctx: &NetshContext<'_>) -> NetshOutput {
    let result = (|| {
        let params = Params::parse(args, &["url", "recursive"], DELETE_USAGE)?;
        let recursive = match params.get("recursive") {
            Some(v) => parse_yes_no("recursive", v).map_err(|e| Failure::param(e, DELETE_USAGE))?,
            None => false,
        };
        if recursive && params.get("url").is_none() {
            return Err(Failure::param(
                "recursive=yes needs url=; without url= every entry is deleted anyway.",
                DELETE_USAGE,
            ));
        }
        let live = ctx.service_state.ok_or_else(|| {
            let (code, explain) = no_server();
            Failure::new(code, explain)
        })?;
        live.delete_cache(params.get("url"), recursive)
            .map_err(|(code, explain)| Failure::new(code, explain))
    })();
    match result {
        Ok(_) => success("Cache entries successfully deleted"),
        Err(f) => f.render(Some("Cache delete failed")),
    }
}

#[derive(Clone, Copy)]
enum ParamType {
    MaxResponseSize,
    RangeChunkSize,
}

/// A ULONG, decimal or `0x` hex (netsh's help: "If value is in hex, then
/// add the prefix 0x").
fn parse_ulong(value: &str) -> Result<u64, String> {
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|c| c.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None if !value.is_empty() && value.bytes().all(|c| c.is_ascii_digit()) => {
            value.parse::<u32>().ok()
        }
        None => None,
    };
    parsed.map(u64::from).ok_or_else(|| {
        format!("value must be a number of bytes from 0 to 4294967295 (decimal, or hex with 0x), not '{value}'.")
    })
}

pub(crate) fn add_param(args: &[String], store: &Store, ctx: &NetshContext<'_>) -> NetshOutput {
    let result = (|| {
        let params = Params::parse(args, &["type", "value"], ADD_PARAM_USAGE)?;
        let kind = match params.get("type").map(str::to_ascii_lowercase).as_deref() {
            Some("maxcacheresponsesize") => ParamType::MaxResponseSize,
            Some("cacherangechunksize") => ParamType::RangeChunkSize,
            Some(other) => {
                return Err(Failure::param(
                    format!("type '{other}' is not a cache parameter; give maxcacheresponsesize or cacherangechunksize."),
                    ADD_PARAM_USAGE,
                ))
            }
            None => {
                return Err(Failure::param(
                    "type= is missing; give maxcacheresponsesize or cacherangechunksize.",
                    ADD_PARAM_USAGE,
                ))
            }
        };
        let value = params.get("value").ok_or_else(|| {
            Failure::param(
                "value= is missing; give the size in bytes.",
                ADD_PARAM_USAGE,
            )
        })?;
        let value = parse_ulong(value).map_err(|e| Failure::param(e, ADD_PARAM_USAGE))?;
        store
            .update(|data| {
                let slot = match kind {
                    ParamType::MaxResponseSize => &mut data.cacheparam.max_response_size,
                    ParamType::RangeChunkSize => &mut data.cacheparam.range_chunk_size,
                };
                *slot = Some(value);
                Ok::<_, Failure>(())
            })
            .map_err(Failure::from_update)
    })();
    match result {
        Ok(()) => {
            // The running server applies it now; a server that is not
            // running reads the store when it starts, so a failure to
            // reach one is no failure of the command.
            if let Some(live) = ctx.service_state {
                if let Err((code, why)) = live.store_settings_changed() {
                    tracing::debug!(code, why, "running server not told of the cache parameters");
                }
            }
            success("Cache parameter successfully added")
        }
        Err(f) => f.render(Some("Cache parameter add failed")),
    }
}

pub(crate) fn show_param(args: &[String], store: &Store) -> NetshOutput {
    super::show_stored(args, store, SHOW_PARAM_USAGE, |d| {
        format_cache_params(&d.cacheparam)
    })
}

/// The `netsh http show cacheparam` text: the values in effect (the
/// built-in maximum response size when none was set; no range chunks).
pub fn format_cache_params(p: &CacheParams) -> String {
    format!(
        "\nCache Parameters:\n-----------------\n\n\
         Max cache response size (bytes) : {}\n\
         Cache range chunk size (bytes)  : {}\n\n",
        p.max_response_size
            .unwrap_or(crate::site::files::DEFAULT_MAX_CACHE_RESPONSE_SIZE),
        p.range_chunk_size.unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{ServiceStateSnapshot, ServiceStateSource};
    use super::*;
    use std::cell::RefCell;

    /// A server whose cache holds `entries`; records deletes.
    struct Live {
        entries: Vec<CacheEntryState>,
        deleted: RefCell<Vec<(Option<String>, bool)>>,
        told: RefCell<u32>,
    }

    impl ServiceStateSource for Live {
        fn snapshot(&self) -> ServiceStateSnapshot {
            ServiceStateSnapshot::default()
        }
        fn cache_state(&self, url: Option<&str>) -> Result<Vec<CacheEntryState>, (u32, String)> {
            Ok(self
                .entries
                .iter()
                .filter(|e| url.is_none_or(|u| e.url.starts_with(u)))
                .cloned()
                .collect())
        }
        fn delete_cache(&self, url: Option<&str>, recursive: bool) -> Result<usize, (u32, String)> {
            if url == Some("http://+:80/none") {
                return Err((2, "nothing is cached for http://+:80/none".into()));
            }
            self.deleted
                .borrow_mut()
                .push((url.map(str::to_owned), recursive));
            Ok(1)
        }
        fn store_settings_changed(&self) -> Result<(), (u32, String)> {
            *self.told.borrow_mut() += 1;
            Ok(())
        }
    }

    fn live() -> Live {
        Live {
            entries: vec![CacheEntryState {
                url: "http://+:80/a.txt".into(),
                content_length: 6,
                cached_bytes: 6,
                content_type: "text/plain".into(),
                created: SystemTime::UNIX_EPOCH,
                hits: 3,
                queue_name: Some("site".into()),
            }],
            deleted: RefCell::new(Vec::new()),
            told: RefCell::new(0),
        }
    }

    #[test]
    fn show_cachestate_lists_entries_in_netsh_layout() {
        let env = Env::new();
        let live = live();
        let out = env.run_live(&live, "http show cachestate");
        assert_eq!(out.exit_code, 0, "{}", out.stdout);
        assert!(out.stdout.starts_with(
            "\nSnapshot of HTTP response cache:\n--------------------------------\n\nURL: http://+:80/a.txt\nStatus code: 200\nHTTP verb: GET\n"
        ), "{}", out.stdout);
        assert!(out.stdout.contains("\nRequest queue name: site\nContent length: 6\nHit count: 3\nForce disconnect after serving: FALSE\n\n"), "{}", out.stdout);
        let out = env.run_live(&live, "http show cachestate url=http://+:80/b");
        assert_eq!(
            out.stdout,
            "\nThere were no cache entries corresponding to the provided URL\n\n"
        );
        // No server: the live commands say so.
        let out = env.run("http show cachestate");
        assert_eq!(out.exit_code, 50, "{}", out.stdout);
        assert!(out.stdout.contains("no running server"), "{}", out.stdout);
    }

    #[test]
    fn delete_cache_passes_url_and_recursive() {
        let env = Env::new();
        let live = live();
        let out = env.run_live(&live, "http delete cache url=http://+:80/ recursive=yes");
        assert_eq!(out.stdout, "\nCache entries successfully deleted\n\n");
        assert_eq!(env.run_live(&live, "http delete cache").exit_code, 0);
        assert_eq!(
            *live.deleted.borrow(),
            [(Some("http://+:80/".to_owned()), true), (None, false)]
        );
        let out = env.run_live(&live, "http delete cache url=http://+:80/none");
        assert_eq!(out.exit_code, 2);
        assert!(
            out.stdout.starts_with("\nCache delete failed, Error: 2\n"),
            "{}",
            out.stdout
        );
        assert_eq!(
            env.run_live(&live, "http delete cache recursive=yes")
                .exit_code,
            87
        );
        assert_eq!(
            env.run_live(&live, "http delete cache recursive=maybe url=x")
                .exit_code,
            87
        );
    }

    #[test]
    fn cacheparam_is_stored_and_shown() {
        let env = Env::new();
        let default = env.run("http show cacheparam");
        assert_eq!(
            default.stdout,
            format!(
                "\nCache Parameters:\n-----------------\n\nMax cache response size (bytes) : {}\nCache range chunk size (bytes)  : 0\n\n",
                crate::site::files::DEFAULT_MAX_CACHE_RESPONSE_SIZE
            )
        );
        let live = live();
        let out = env.run_live(
            &live,
            "http add cacheparam type=maxcacheresponsesize value=524288",
        );
        assert_eq!(out.stdout, "\nCache parameter successfully added\n\n");
        assert_eq!(*live.told.borrow(), 1);
        // Without a server it is stored all the same.
        assert_eq!(
            env.run("http add cacheparam type=CacheRangeChunkSize value=0x20000")
                .exit_code,
            0
        );
        let out = env.run("http show cacheparam");
        assert!(
            out.stdout
                .contains("Max cache response size (bytes) : 524288\n"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout
                .contains("Cache range chunk size (bytes)  : 131072\n"),
            "{}",
            out.stdout
        );
        for bad in [
            "http add cacheparam value=5",
            "http add cacheparam type=size value=5",
            "http add cacheparam type=maxcacheresponsesize",
            "http add cacheparam type=maxcacheresponsesize value=-1",
            "http add cacheparam type=maxcacheresponsesize value=0x",
            "http add cacheparam type=maxcacheresponsesize value=4294967296",
        ] {
            let out = env.run(bad);
            assert_eq!(out.exit_code, 87, "{bad}: {}", out.stdout);
            assert!(
                out.stdout
                    .starts_with("\nCache parameter add failed, Error: 87\n"),
                "{}",
                out.stdout
            );
        }
    }
}
