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
//! * **Processes the script starts**: on Unix the script runs in its own
//!   process group, which is killed with it (timeout, abandoned response,
//!   server shutdown) and as soon as the script exits, so a background
//!   child still holding its output does not keep the response open: the
//!   response ends with what the script wrote (see `group`).
//! * **Known limits**: on Windows only the script's own process is killed,
//!   not processes it started (that would take a job object); on Unix a
//!   process that leaves the group (`setsid`) escapes; `SERVER_PROTOCOL` is
//!   always `HTTP/1.1` and `SERVER_NAME` comes from the `Host` header (else
//!   the local address), because the site is not told the request's
//!   version or HTTP/2 `:authority`. NPH scripts are not supported.

mod env;
mod group;
mod output;
mod process;
mod response;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use http::header;
use http::{Method, Response};
use http_body::Body as _;
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::SiteRequest;
use crate::body::{Body, RequestBody};
use crate::config::{CgiRunner, Settings};
use crate::headers::SERVER;
use group::{own_group, Script};
use output::Output;
use process::{feed_stdin, log_stderr, read_output, spawn, stop, supervise, AbortGuard};
use response::{parse_head, read_at_least, read_head, Head, CHECKED_BODY, MAX_HEAD};

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
        let base_env = env::base_env(settings, root);
        Cgi {
            runners,
            timeout: settings.cgi.timeout,
            base_env,
            document_root: root.to_path_buf(),
        }
    }

    /// The script ran out of `[cgi] timeout`.
    fn timed_out(&self, script: &str) -> CgiError {
        crate::metrics::cgi_timeout();
        CgiError::Timeout {
            script: script.to_owned(),
            secs: self.timeout.as_secs(),
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
        body: RequestBody,
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
        own_group(&mut cmd);
        if let Some(dir) = target.file.parent() {
            cmd.current_dir(dir);
        }
        let mut child = spawn(&mut cmd).await.map_err(|source| CgiError::Spawn {
            script: script.clone(),
            program,
            source,
        })?;
        crate::metrics::cgi_run();
        let deadline = Instant::now() + self.timeout;
        let stdin_task = child
            .stdin
            .take()
            .map(|stdin| tokio::spawn(feed_stdin(body, stdin)));
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(stderr, script.clone()));
        }
        let stdout = child.stdout.take();
        // From here on, dropping `child` kills the script's whole group.
        let mut child = Script::new(child);
        let Some(mut stdout) = stdout else {
            stop(&mut child, stdin_task).await;
            return Err(CgiError::Io {
                script,
                source: io::Error::other("the script's output is not connected"),
            });
        };

        let head =
            tokio::time::timeout_at(deadline, read_output(&mut child, read_head(&mut stdout)))
                .await;
        let head = match head {
            Ok(Ok(Head::Complete { head, rest })) => Ok((head, rest)),
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
                            self.timed_out(&script)
                        }
                    },
                );
            }
            Ok(Ok(Head::TooLarge)) => Err(CgiError::BadHeaders {
                script: script.clone(),
                reason: format!("no blank line after the headers in the first {MAX_HEAD} bytes"),
            }),
            Ok(Err(source)) => Err(CgiError::Io {
                script: script.clone(),
                source,
            }),
            Err(_elapsed) => Err(self.timed_out(&script)),
        };
        let head_only = *req.method == Method::HEAD;
        // Everything up to the response head; on failure the script (and its
        // group) is stopped once, below.
        let checked = async {
            let (head, rest) = head?;
            let parsed = parse_head(&head).map_err(|reason| CgiError::BadHeaders {
                script: script.clone(),
                reason,
            })?;
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
                // Before the head is sent a short body can still become a
                // 502; afterwards only a cut-off response.
                let read = read_output(&mut child, read_at_least(&mut stdout, rest, small));
                rest = match tokio::time::timeout_at(deadline, read).await {
                    Ok(Ok(body)) if body.len() >= small => body,
                    Ok(Ok(body)) => {
                        return Err(CgiError::BadHeaders {
                            script: script.clone(),
                            reason: format!(
                                "Content-Length is {small} but the output ended after {} bytes",
                                body.len()
                            ),
                        })
                    }
                    Ok(Err(source)) => {
                        return Err(CgiError::Io {
                            script: script.clone(),
                            source,
                        })
                    }
                    Err(_elapsed) => return Err(self.timed_out(&script)),
                };
            }
            Ok((parsed, rest, length))
        }
        .await;
        let (parsed, rest, length) = match checked {
            Ok(checked) => checked,
            Err(e) => {
                stop(&mut child, stdin_task).await;
                return Err(e);
            }
        };

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
        *res.body_mut() = output.into_body();
        Ok(res)
    }
}
