//! CGI/1.1 (RFC 3875) for scripts in `public_dir`.
//!
//! A file whose extension has a runner in `[cgi]` is run instead of being
//! sent. How a run goes:
//!
//! * **Finding the script** (`files::find_script`, on the blocking pool):
//!   walking the URL's segments from the left, the first one with a
//!   configured extension that is a regular file under the (canonical) root
//!   is the script; the segments after it are `PATH_INFO`.
//! * **Starting it**: `tokio::process::Command`, never a shell. The program
//!   is the script itself (`direct`; on Unix it must have an execute bit,
//!   else 403) or the configured interpreter with the script's path as its
//!   only argument. Nothing from the request becomes an argument (we never
//!   pass the RFC 3875 "search string" argv). The working directory is the
//!   script's folder.
//! * **Environment**: cleared, then only `PATH` (the server's own `PATH`,
//!   so an interpreter found in the shell that started the server is found
//!   by scripts too; `/usr/local/bin:/usr/bin:/bin` when the server has
//!   none), on Windows `SYSTEMROOT`, `WINDIR`, `COMSPEC`, `PATHEXT`, `TEMP`
//!   and `TMP`, the RFC 3875 meta-variables, `REQUEST_URI`, `DOCUMENT_ROOT`,
//!   `HTTPS=on` over TLS, `REDIRECT_STATUS=200` (php-cgi refuses to run
//!   without it), `PORTSHARE_LOG_DIR` when a log folder is configured, and
//!   `HTTP_*` for request headers. Not passed as `HTTP_*`: `Authorization`,
//!   `Proxy-Authorization` (credentials), `Content-Length`/`Content-Type`
//!   (they have their own variables), `Proxy` (it would become `HTTP_PROXY`,
//!   the "httpoxy" hole), and any header whose name contains `_` (it would
//!   be indistinguishable from the `-` spelling; nginx drops them too).
//! * **Request body**: copied frame by frame to the script's stdin while
//!   the script runs (never buffered whole); `CONTENT_LENGTH` is set when
//!   the request has a `Content-Length`. A chunked request body is streamed
//!   the same way but has no `CONTENT_LENGTH` (knowing it would mean
//!   buffering); the script reads stdin to end-of-file.
//! * **Response**: the header block (up to 64 KiB) is parsed: `Status:`
//!   sets the status (and reason phrase), `Location:` without `Status:`
//!   gives 302 — also for a local path (`Location: /other`), which RFC 3875
//!   would let the server follow internally; we answer it as a redirect to
//!   that path instead. Hop-by-hop headers from the script are dropped. The
//!   body is streamed as the script writes it; HEAD gets the headers only.
//! * **Framing** is ours (RFC 3875 scripts do not frame their output): a
//!   `Transfer-Encoding` from the script is dropped, or refused (502)
//!   alongside a `Content-Length`; a `Content-Length` that is not a plain
//!   decimal number, or two that differ, is 502. A body announced at up to
//!   64 KiB is read whole before the head is sent, so one that comes up
//!   short is still a 502; a longer one is streamed, and if it ends short
//!   the response is cut off (connection aborted) and logged. Output past
//!   the announced length is discarded (logged).
//! * **Failures**: a script that closes its output before the blank line
//!   ending the headers (typically: it exited with an error) or writes
//!   malformed headers → 502; no complete headers within `[cgi] timeout`
//!   → 504. The script is killed and reaped in both cases. The timeout
//!   bounds the whole run (wall clock): a script still running when it
//!   expires is killed, and if its headers were already sent the response
//!   is cut off (the connection is aborted, so the client can tell it is
//!   incomplete). The first 4 KiB of stderr are logged.
//! * **Known limits**: only the script's process is killed on timeout, not
//!   processes it started (write `exec cmd` for a long-running last
//!   command); `SERVER_PROTOCOL` is always `HTTP/1.1` and `SERVER_NAME` comes
//!   from the `Host` header (else the local address), because the site is
//!   not told the request's version or HTTP/2 `:authority`. NPH scripts are
//!   not supported.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::{Body as _, Frame};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::SiteRequest;
use crate::body::Body;
use crate::config::{CgiRunner, Settings};
use crate::headers::SERVER;

/// Largest header block a script may write.
const MAX_HEAD: usize = 64 * 1024;
/// How much of a script's stderr is logged.
const STDERR_LOGGED: usize = 4 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// A body announced (`Content-Length`) at up to this size is read before the
/// head is sent, so that a short one can still be answered with 502.
const CHECKED_BODY: usize = 64 * 1024;
/// `PATH` for scripts when the server itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Variables Windows programs need to start at all.
#[cfg(windows)]
const WINDOWS_VARS: &[&str] = &["SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT", "TEMP", "TMP"];

/// Why a script gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CgiError {
    #[error("{script}: the file is not executable; set its execute bit (chmod +x) or configure an interpreter for its extension in [cgi]")]
    NotExecutable { script: String },
    #[error("{script}: cannot start {program}: {source}")]
    Spawn {
        script: String,
        program: String,
        source: io::Error,
    },
    #[error("{script}: ended ({status}) before sending its headers")]
    Exited { script: String, status: String },
    #[error("{script}: malformed response headers: {reason}")]
    BadHeaders { script: String, reason: String },
    #[error(
        "{script}: no response headers within the CGI timeout of {secs} s; the script was stopped"
    )]
    Timeout { script: String, secs: u64 },
    #[error("{script}: {source}")]
    Io { script: String, source: io::Error },
}

/// A script located by the file resolver, ready to run.
#[derive(Debug)]
pub struct ScriptTarget {
    /// Canonical path of the script.
    pub file: PathBuf,
    /// Lowercase extension of the URL segment naming the script.
    pub extension: String,
    /// URL path of the script (decoded), including the registered prefix.
    pub script_name: String,
    /// Decoded rest of the path after the script, `""` when there is none.
    pub path_info: String,
    /// Unix: an execute bit is set. Elsewhere always true.
    pub executable: bool,
}

/// The configured runners and the environment every script gets.
pub struct Cgi {
    /// Extension → program and leading arguments (`None`: run the file).
    runners: BTreeMap<String, Option<Vec<String>>>,
    timeout: Duration,
    /// Variables that are the same for every request.
    base_env: Vec<(OsString, OsString)>,
    document_root: PathBuf,
}

impl Cgi {
    /// `root` is the canonical public folder.
    pub fn new(settings: &Settings, root: &Path) -> Cgi {
        let runners = settings
            .cgi
            .runners
            .iter()
            .map(|(ext, runner)| {
                let argv = match runner {
                    CgiRunner::Direct => None,
                    // A path to an existing program is taken whole (it may
                    // contain spaces: C:\Program Files\...); otherwise the
                    // value is split into program and arguments.
                    CgiRunner::Interpreter(line) if Path::new(line).is_file() => {
                        Some(vec![line.clone()])
                    }
                    CgiRunner::Interpreter(line) => {
                        Some(line.split_whitespace().map(str::to_owned).collect())
                    }
                };
                (ext.clone(), argv)
            })
            .collect();
        let mut base_env: Vec<(OsString, OsString)> = Vec::new();
        let path = std::env::var_os("PATH")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PATH.into());
        base_env.push(("PATH".into(), path));
        #[cfg(windows)]
        for name in WINDOWS_VARS {
            if let Some(v) = std::env::var_os(name) {
                base_env.push((OsString::from(*name), v));
            }
        }
        base_env.push(("GATEWAY_INTERFACE".into(), "CGI/1.1".into()));
        base_env.push((
            "SERVER_SOFTWARE".into(),
            concat!("portshare/", env!("CARGO_PKG_VERSION")).into(),
        ));
        base_env.push(("DOCUMENT_ROOT".into(), root.as_os_str().to_owned()));
        base_env.push(("REDIRECT_STATUS".into(), "200".into()));
        if let Some(dir) = &settings.log_dir {
            let dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
            base_env.push(("PORTSHARE_LOG_DIR".into(), dir.into_os_string()));
        }
        Cgi {
            runners,
            timeout: settings.cgi.timeout,
            base_env,
            document_root: root.to_path_buf(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.runners.is_empty()
    }

    /// The lowercase extension of a URL segment if it names a script type.
    pub fn script_extension(&self, segment: &str) -> Option<String> {
        let (stem, ext) = segment.rsplit_once('.')?;
        if stem.is_empty() {
            return None;
        }
        let ext = ext.to_ascii_lowercase();
        self.runners.contains_key(&ext).then_some(ext)
    }

    /// Runs the script and answers with what it writes.
    pub async fn run(
        &self,
        req: &SiteRequest<'_>,
        target: &ScriptTarget,
        body: Incoming,
    ) -> Result<Response<Body>, CgiError> {
        let script = target.script_name.clone();
        let argv = self
            .runners
            .get(&target.extension)
            .ok_or_else(|| CgiError::Io {
                script: script.clone(),
                source: io::Error::other("no runner for this extension"),
            })?;
        if argv.is_none() && !target.executable {
            return Err(CgiError::NotExecutable { script });
        }
        let (program, mut cmd) = match argv.as_deref() {
            None | Some([]) => (
                target.file.display().to_string(),
                Command::new(&target.file),
            ),
            Some([program, args @ ..]) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(&target.file);
                (program.clone(), cmd)
            }
        };
        let has_body = !body.is_end_stream();
        cmd.env_clear()
            .envs(self.environment(req, target))
            .stdin(if has_body {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = target.file.parent() {
            cmd.current_dir(dir);
        }
        let mut child = spawn(&mut cmd).await.map_err(|source| CgiError::Spawn {
            script: script.clone(),
            program,
            source,
        })?;
        let deadline = Instant::now() + self.timeout;
        let stdin_task = child
            .stdin
            .take()
            .map(|stdin| tokio::spawn(feed_stdin(body, stdin)));
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(stderr, script.clone()));
        }
        let Some(mut stdout) = child.stdout.take() else {
            stop(&mut child, stdin_task).await;
            return Err(CgiError::Io {
                script,
                source: io::Error::other("the script's output is not connected"),
            });
        };

        let head = tokio::time::timeout_at(deadline, read_head(&mut stdout)).await;
        let (head, rest) = match head {
            Ok(Ok(Head::Complete { head, rest })) => (head, rest),
            Ok(Ok(Head::Eof { empty })) => {
                if let Some(t) = &stdin_task {
                    t.abort();
                }
                // The script closed its output: find out how it ended.
                return Err(
                    match tokio::time::timeout_at(deadline, child.wait()).await {
                        Ok(Ok(status)) if !status.success() => CgiError::Exited {
                            script,
                            status: status.to_string(),
                        },
                        Ok(Ok(_)) => CgiError::BadHeaders {
                            script,
                            reason: if empty {
                                "the script wrote nothing".into()
                            } else {
                                "the output ended before the blank line after the headers".into()
                            },
                        },
                        Ok(Err(source)) => CgiError::Io { script, source },
                        Err(_) => {
                            stop(&mut child, None).await;
                            CgiError::Timeout {
                                script,
                                secs: self.timeout.as_secs(),
                            }
                        }
                    },
                );
            }
            Ok(Ok(Head::TooLarge)) => {
                stop(&mut child, stdin_task).await;
                return Err(CgiError::BadHeaders {
                    script,
                    reason: format!(
                        "no blank line after the headers in the first {MAX_HEAD} bytes"
                    ),
                });
            }
            Ok(Err(source)) => {
                stop(&mut child, stdin_task).await;
                return Err(CgiError::Io { script, source });
            }
            Err(_elapsed) => {
                stop(&mut child, stdin_task).await;
                return Err(CgiError::Timeout {
                    script,
                    secs: self.timeout.as_secs(),
                });
            }
        };
        let parsed = match parse_head(&head) {
            Ok(p) => p,
            Err(reason) => {
                stop(&mut child, stdin_task).await;
                return Err(CgiError::BadHeaders { script, reason });
            }
        };
        let head_only = *req.method == Method::HEAD;
        // 204 and 304 have no body; a 304's Content-Length describes the
        // representation, not this response.
        let length = parsed
            .length
            .filter(|_| !head_only && !matches!(parsed.status.as_u16(), 204 | 304));
        let mut rest = rest;
        if let Some(small) = length
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= CHECKED_BODY)
        {
            // Before the head is sent a short body can still become a 502;
            // afterwards only a cut-off response.
            match tokio::time::timeout_at(deadline, read_at_least(&mut stdout, rest, small)).await {
                Ok(Ok(body)) if body.len() >= small => rest = body,
                Ok(Ok(body)) => {
                    stop(&mut child, stdin_task).await;
                    return Err(CgiError::BadHeaders {
                        script,
                        reason: format!(
                            "Content-Length is {small} but the output ended after {} bytes",
                            body.len()
                        ),
                    });
                }
                Ok(Err(source)) => {
                    stop(&mut child, stdin_task).await;
                    return Err(CgiError::Io { script, source });
                }
                Err(_elapsed) => {
                    stop(&mut child, stdin_task).await;
                    return Err(CgiError::Timeout {
                        script,
                        secs: self.timeout.as_secs(),
                    });
                }
            }
        }

        let (abort_tx, abort_rx) = oneshot::channel();
        let mut guard = AbortGuard(Some(abort_tx));
        tokio::spawn(supervise(
            child,
            deadline,
            abort_rx,
            stdin_task,
            script.clone(),
        ));

        let mut res = Response::new(Body::empty());
        *res.status_mut() = parsed.status;
        if let Some(reason) = parsed.reason {
            res.extensions_mut().insert(reason);
        }
        *res.headers_mut() = parsed.headers;
        if !res.headers().contains_key(header::SERVER) {
            res.headers_mut().insert(header::SERVER, SERVER.clone());
        }
        if head_only {
            // The script runs to its end (or the timeout) on its own; its
            // further output is discarded.
            guard.finished();
            return Ok(res);
        }
        let output = Output {
            stdout,
            pending: Some(rest),
            guard,
            deadline,
            script,
            length,
            sent: 0,
        };
        *res.body_mut() = Body::stream(StreamBody::new(stream::unfold(Some(output), next_frame)));
        Ok(res)
    }

    /// The meta-variables of one request (RFC 3875 section 4.1).
    fn environment(
        &self,
        req: &SiteRequest<'_>,
        target: &ScriptTarget,
    ) -> Vec<(OsString, OsString)> {
        let mut env = self.base_env.clone();
        let mut set = |name: &str, value: OsString| env.push((name.into(), value));
        let conn = req.conn;
        set("REQUEST_METHOD", req.method.as_str().into());
        set("QUERY_STRING", req.query.unwrap_or("").into());
        let mut uri = req.raw_path.to_owned();
        if let Some(q) = req.query {
            uri.push('?');
            uri.push_str(q);
        }
        set("REQUEST_URI", uri.into());
        set("SCRIPT_NAME", target.script_name.clone().into());
        set("SCRIPT_FILENAME", target.file.clone().into_os_string());
        if !target.path_info.is_empty() {
            set("PATH_INFO", target.path_info.clone().into());
            let mut translated = self.document_root.clone().into_os_string();
            translated.push(&target.path_info);
            set("PATH_TRANSLATED", translated);
        }
        set("SERVER_PROTOCOL", "HTTP/1.1".into());
        let host = req
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(host_without_port)
            .filter(|h| !h.is_empty());
        let local_ip = conn.local.ip().to_canonical();
        set(
            "SERVER_NAME",
            host.map_or_else(|| local_ip.to_string(), str::to_owned)
                .into(),
        );
        set("SERVER_ADDR", local_ip.to_string().into());
        set("SERVER_PORT", conn.local.port().to_string().into());
        set(
            "REMOTE_ADDR",
            conn.peer.ip().to_canonical().to_string().into(),
        );
        set("REMOTE_PORT", conn.peer.port().to_string().into());
        set(
            "REQUEST_SCHEME",
            if conn.https { "https" } else { "http" }.into(),
        );
        if conn.https {
            set("HTTPS", "on".into());
        }
        if let Some(v) = req.headers.get(header::CONTENT_LENGTH) {
            set("CONTENT_LENGTH", env_value(v.as_bytes()));
        }
        if let Some(v) = req.headers.get(header::CONTENT_TYPE) {
            set("CONTENT_TYPE", env_value(v.as_bytes()));
        }
        for name in req.headers.keys() {
            let n = name.as_str();
            if n.contains('_')
                || matches!(
                    n,
                    "authorization"
                        | "proxy-authorization"
                        | "content-length"
                        | "content-type"
                        | "proxy"
                )
            {
                continue;
            }
            let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
            let mut value = Vec::new();
            for (i, v) in req.headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    value.extend_from_slice(separator);
                }
                value.extend_from_slice(v.as_bytes());
            }
            let var = format!("HTTP_{}", n.to_ascii_uppercase().replace('-', "_"));
            set(&var, env_value(&value));
        }
        env
    }
}

/// `host[:port]` or `[v6]:port` → the host part.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.split_once(':').map_or(host, |(h, _)| h)
}

/// A header value as an environment value: bytes as they are on Unix,
/// lossy UTF-8 on Windows (whose environment is UTF-16).
fn env_value(bytes: &[u8]) -> OsString {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(bytes.to_vec())
    }
    #[cfg(not(unix))]
    {
        String::from_utf8_lossy(bytes).into_owned().into()
    }
}

/// Starts the child, retrying briefly on ETXTBSY ("text file busy": the
/// script was being written a moment ago, e.g. an upload just finished).
async fn spawn(cmd: &mut Command) -> io::Result<Child> {
    const ETXTBSY: i32 = 26;
    let mut delay = Duration::from_millis(10);
    for _ in 0..5 {
        match cmd.spawn() {
            Err(e) if cfg!(unix) && e.raw_os_error() == Some(ETXTBSY) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    cmd.spawn()
}

/// Kills the child and reaps it, so no zombie is left.
async fn stop(child: &mut Child, stdin_task: Option<JoinHandle<()>>) {
    if let Some(t) = stdin_task {
        t.abort();
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Copies the request body to the script's stdin; closing stdin at the end
/// tells the script the body is complete.
async fn feed_stdin(mut body: Incoming, mut stdin: ChildStdin) {
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    // An error means the script stopped reading: fine.
                    if stdin.write_all(&data).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "request body for a CGI script ended early");
                return;
            }
        }
    }
    let _ = stdin.shutdown().await;
}

/// Logs the first [`STDERR_LOGGED`] bytes of the script's stderr and drains
/// the rest (a full pipe would block the script).
async fn log_stderr(mut stderr: ChildStderr, script: String) {
    let mut kept = Vec::new();
    let mut total = 0usize;
    let mut buf = vec![0u8; 8192];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n;
                let room = STDERR_LOGGED.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    if total > 0 {
        let text = String::from_utf8_lossy(&kept);
        tracing::warn!(
            script = %script,
            bytes = total,
            truncated = total > kept.len(),
            "CGI script wrote to stderr: {}",
            text.trim_end()
        );
    }
}

/// Waits for the script to end after its headers were sent; kills it at the
/// deadline or when the response is dropped before the end of its output
/// (the client went away).
async fn supervise(
    mut child: Child,
    deadline: Instant,
    mut abort: oneshot::Receiver<()>,
    stdin_task: Option<JoinHandle<()>>,
    script: String,
) {
    let mut abort_open = true;
    loop {
        tokio::select! {
            status = child.wait() => {
                match status {
                    Ok(s) if s.success() => {}
                    Ok(s) => tracing::warn!(script = %script, status = %s, "CGI script failed after sending its headers"),
                    Err(e) => tracing::warn!(script = %script, error = %e, "waiting for a CGI script failed"),
                }
                break;
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::error!(script = %script, "CGI script still running at the CGI timeout; stopping it");
                let _ = child.start_kill();
                let _ = child.wait().await;
                break;
            }
            r = &mut abort, if abort_open => match r {
                Ok(()) => {
                    tracing::debug!(script = %script, "response abandoned; stopping the CGI script");
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    break;
                }
                // The output was read to its end: let the script finish.
                Err(_) => abort_open = false,
            },
        }
    }
    if let Some(t) = stdin_task {
        t.abort();
    }
}

/// Tells the supervisor to kill the script when dropped, unless the output
/// was read to its end first.
struct AbortGuard(Option<oneshot::Sender<()>>);

impl AbortGuard {
    fn finished(&mut self) {
        self.0.take();
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// The script's stdout after the headers, as the response body.
struct Output {
    stdout: ChildStdout,
    pending: Option<Bytes>,
    guard: AbortGuard,
    deadline: Instant,
    script: String,
    /// The script's `Content-Length`, if the response has a body it frames.
    length: Option<u64>,
    /// Body bytes passed on so far.
    sent: u64,
}

/// Reads until `buf` (what followed the headers) holds at least `n` bytes
/// or the output ends.
async fn read_at_least(stdout: &mut ChildStdout, buf: Bytes, n: usize) -> io::Result<Bytes> {
    if buf.len() >= n {
        return Ok(buf);
    }
    let mut buf = BytesMut::from(&buf[..]);
    buf.reserve(n - buf.len());
    while buf.len() < n {
        if stdout.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(buf.freeze())
}

async fn next_frame(
    state: Option<Output>,
) -> Option<(Result<Frame<Bytes>, io::Error>, Option<Output>)> {
    let mut out = state?;
    let data = match out.pending.take().filter(|b| !b.is_empty()) {
        Some(first) => first,
        // Everything announced was sent: the response is complete whatever
        // the script does next.
        None if out.length.is_some_and(|n| out.sent >= n) => {
            out.guard.finished();
            return None;
        }
        None => {
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            let timed_out = |script: &str| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{script}: stopped at the CGI timeout; response cut off"),
                )
            };
            match tokio::time::timeout_at(out.deadline, out.stdout.read_buf(&mut buf)).await {
                // End of output because the supervisor killed the script at the
                // deadline: the response is incomplete and must not look complete.
                Ok(Ok(0)) if Instant::now() >= out.deadline => {
                    return Some((Err(timed_out(&out.script)), None))
                }
                Ok(Ok(0)) => {
                    // The script is done writing; let the supervisor see it end.
                    out.guard.finished();
                    return match out.length {
                        // The head promised more: an error aborts the
                        // connection (HTTP/2: resets the stream), so the
                        // client can tell the response is incomplete.
                        Some(n) if out.sent < n => {
                            tracing::warn!(
                                script = %out.script,
                                "CGI script's output ended after {} of the {n} bytes its Content-Length announced; response cut off",
                                out.sent
                            );
                            Some((
                                Err(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    format!(
                                        "{}: output ended after {} of {n} bytes",
                                        out.script, out.sent
                                    ),
                                )),
                                None,
                            ))
                        }
                        _ => None,
                    };
                }
                Ok(Ok(_)) => buf.freeze(),
                Ok(Err(e)) => return Some((Err(e), None)),
                Err(_) => return Some((Err(timed_out(&out.script)), None)),
            }
        }
    };
    let data = match out.length {
        Some(n) => {
            let left = n.saturating_sub(out.sent);
            let keep = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
            if keep < data.len() {
                tracing::warn!(
                    script = %out.script,
                    "CGI script wrote more than the {n} bytes its Content-Length announced; the rest is discarded"
                );
            }
            data.slice(..keep)
        }
        None => data,
    };
    if data.is_empty() {
        // Only output past the announced length was left.
        out.guard.finished();
        return None;
    }
    out.sent += data.len() as u64;
    Some((Ok(Frame::data(data)), Some(out)))
}

enum Head {
    /// The header block (without the blank line) and what followed it.
    Complete {
        head: Bytes,
        rest: Bytes,
    },
    /// Output ended before the blank line.
    Eof {
        empty: bool,
    },
    TooLarge,
}

/// Reads until the blank line that ends the headers.
async fn read_head(stdout: &mut ChildStdout) -> io::Result<Head> {
    let mut buf = BytesMut::with_capacity(8192);
    let mut scanned = 0;
    loop {
        if let Some((head_end, body_start)) = find_head_end(&buf, &mut scanned) {
            let mut all = buf.freeze();
            let rest = all.split_off(body_start);
            all.truncate(head_end);
            return Ok(Head::Complete { head: all, rest });
        }
        if buf.len() >= MAX_HEAD {
            return Ok(Head::TooLarge);
        }
        buf.reserve(8192);
        if stdout.read_buf(&mut buf).await? == 0 {
            return Ok(Head::Eof {
                empty: buf.is_empty(),
            });
        }
    }
}

/// Finds an empty line (`\n\n` or `\n\r\n`, or one at the very start).
/// `scanned` remembers where the last complete line started.
fn find_head_end(buf: &[u8], scanned: &mut usize) -> Option<(usize, usize)> {
    loop {
        let rest = buf.get(*scanned..)?;
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let line = &rest[..nl];
        if line.is_empty() || line == b"\r" {
            return Some((*scanned, *scanned + nl + 1));
        }
        *scanned += nl + 1;
    }
}

struct ParsedHead {
    status: StatusCode,
    reason: Option<hyper::ext::ReasonPhrase>,
    headers: HeaderMap,
    /// The `Content-Length` the script announced (at most one is kept).
    length: Option<u64>,
}

/// Headers a script may not set: they describe the connection, which is ours.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
    )
}

fn parse_head(head: &[u8]) -> Result<ParsedHead, String> {
    let shown = |b: &[u8]| {
        let s = String::from_utf8_lossy(&b[..b.len().min(80)]).into_owned();
        format!("{s:?}")
    };
    let mut headers = HeaderMap::new();
    let mut status = None;
    let mut location = false;
    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(format!("continuation line {}", shown(line)));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(format!("line without a colon: {}", shown(line)));
        };
        let name = HeaderName::from_bytes(&line[..colon])
            .map_err(|_| format!("invalid header name in {}", shown(line)))?;
        let value = line[colon + 1..].trim_ascii();
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| format!("invalid header value in {}", shown(line)))?;
        if name.as_str() == "status" {
            status = Some(parse_status(&value).ok_or_else(|| {
                format!(
                    "Status must be a code from 200 to 999 and an optional reason, not {}",
                    shown(value.as_bytes())
                )
            })?);
            continue;
        }
        if name == header::TRANSFER_ENCODING {
            // Dropped below (the server frames the body), but remembered:
            // next to a Content-Length it leaves the length in doubt.
            transfer_encoding = true;
        }
        if hop_by_hop(&name) {
            tracing::debug!(header = %name, "dropping a hop-by-hop header from a CGI script");
            continue;
        }
        if name == header::CONTENT_LENGTH {
            let n = decimal(value.as_bytes())
                .ok_or_else(|| format!("invalid Content-Length {}", shown(value.as_bytes())))?;
            match length {
                Some(first) if first != n => {
                    return Err(format!(
                        "two different Content-Length values: {first} and {n}"
                    ))
                }
                // A repeat of the same value says nothing new; one is sent.
                Some(_) => continue,
                None => length = Some(n),
            }
        }
        if name == header::LOCATION {
            location = true;
        }
        headers.append(name, value);
    }
    if transfer_encoding && length.is_some() {
        return Err(
            "both Content-Length and Transfer-Encoding (a CGI script does not frame its body)"
                .into(),
        );
    }
    if headers.is_empty() && status.is_none() {
        return Err("no headers".into());
    }
    let (status, reason) = match status {
        Some(s) => s,
        None if location => (StatusCode::FOUND, None),
        None => (StatusCode::OK, None),
    };
    Ok(ParsedHead {
        status,
        reason,
        headers,
        length,
    })
}

/// A plain decimal number (`1*DIGIT`, RFC 9110): no sign, space or list.
fn decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// `Status: 418 I'm a teapot` → code and, if not the standard one, reason.
fn parse_status(value: &HeaderValue) -> Option<(StatusCode, Option<hyper::ext::ReasonPhrase>)> {
    let text = value.to_str().ok()?.trim();
    let (code, reason) = text.split_once(' ').unwrap_or((text, ""));
    if code.len() != 3 {
        return None;
    }
    let status = StatusCode::from_u16(code.parse().ok()?).ok()?;
    if status.as_u16() < 200 {
        return None;
    }
    let reason = reason.trim();
    let custom = (!reason.is_empty() && status.canonical_reason() != Some(reason))
        .then(|| hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec()).ok())
        .flatten();
    Some((status, custom))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_blank_line() {
        let mut s = 0;
        assert_eq!(find_head_end(b"A: b\n\nbody", &mut s), Some((5, 6)));
        let mut s = 0;
        assert_eq!(find_head_end(b"A: b\r\n\r\nbody", &mut s), Some((6, 8)));
        let mut s = 0;
        assert_eq!(find_head_end(b"A: b\r\nC: d", &mut s), None);
        assert_eq!(s, 6);
        let mut s = 0;
        assert_eq!(find_head_end(b"\r\nbody", &mut s), Some((0, 2)));
    }

    #[test]
    fn parses_status_location_and_headers() {
        let p =
            parse_head(b"Status: 418 I'm a teapot\r\nContent-Type: text/plain\r\nX-A: 1\r\nX-A: 2")
                .unwrap();
        assert_eq!(p.status.as_u16(), 418);
        assert!(p.reason.is_none(), "canonical reason needs no override");
        assert_eq!(p.headers.get_all("x-a").iter().count(), 2);
        let p = parse_head(b"Location: https://example.com/\n").unwrap();
        assert_eq!(p.status, StatusCode::FOUND);
        let p = parse_head(b"Status: 299 Fine Thanks\nLocation: /x\n").unwrap();
        assert_eq!(p.status.as_u16(), 299);
        assert_eq!(p.reason.unwrap().as_bytes(), b"Fine Thanks");
        let p = parse_head(b"Content-Type: text/html\nTransfer-Encoding: chunked\n").unwrap();
        assert!(p.headers.get(header::TRANSFER_ENCODING).is_none());
    }

    #[test]
    fn refuses_malformed_heads() {
        for head in [
            &b"this is not a header"[..],
            b"Status: abc",
            b"Status: 100 Continue",
            b"Bad Name: x",
            b"Content-Type: a\n folded",
            b"Content-Length: ten",
            b"Content-Length: +5",
            b"Content-Length: 5, 5",
            b"Content-Length: 99999999999999999999999",
            b"Content-Length: 5\nContent-Length: 6",
            b"Content-Length: 5\nTransfer-Encoding: chunked",
            b"Transfer-Encoding: identity\nContent-Length: 5",
            b"",
        ] {
            assert!(
                parse_head(head).is_err(),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn content_length_is_kept_once() {
        let p = parse_head(b"Content-Length: 5\nContent-Length: 5\n").unwrap();
        assert_eq!(p.length, Some(5));
        assert_eq!(p.headers.get_all(header::CONTENT_LENGTH).iter().count(), 1);
        let p = parse_head(b"Content-Length: 007\n").unwrap();
        assert_eq!(p.length, Some(7));
        let p = parse_head(b"Content-Type: text/plain\n").unwrap();
        assert_eq!(p.length, None);
    }

    #[test]
    fn host_port_is_dropped() {
        assert_eq!(host_without_port("example.com:8080"), "example.com");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("example.com"), "example.com");
    }
}
