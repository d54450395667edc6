//! The streaming response body: the script's stdout after the head,
//! passed on as it is written, held to the announced `Content-Length`, and
//! cut off (an error, so the connection is aborted) when the script stops
//! early or runs into the CGI timeout.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream;
use http_body::Frame;
use http_body_util::StreamBody;
use tokio::io::AsyncReadExt;
use tokio::process::ChildStdout;
use tokio::time::Instant;

use super::process::AbortGuard;
use crate::body::Body;

const READ_CHUNK: usize = 64 * 1024;
/// How long a response at the CGI timeout waits for the script's output to
/// close (the supervisor kills the script's group at the same deadline).
const KILL_WAIT: Duration = Duration::from_secs(2);

/// The script's stdout after the headers, as the response body.
pub(super) struct Output {
    pub(super) stdout: ChildStdout,
    pub(super) pending: Option<Bytes>,
    pub(super) guard: AbortGuard,
    pub(super) deadline: Instant,
    pub(super) script: String,
    /// The script's `Content-Length`, if the response has a body it frames.
    pub(super) length: Option<u64>,
    /// Body bytes passed on so far.
    pub(super) sent: u64,
}

impl Output {
    /// The response body reading this output.
    pub(super) fn into_body(self) -> Body {
        Body::stream(StreamBody::new(stream::unfold(Some(self), next_frame)))
    }
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
                Err(_) => {
                    // Cut the response off only once the output has closed,
                    // i.e. the supervisor's kill has taken effect: by then
                    // the script and whatever held its output are gone.
                    let drain = async {
                        while matches!(out.stdout.read_buf(&mut buf).await, Ok(n) if n > 0) {
                            buf.clear();
                        }
                    };
                    let _ = tokio::time::timeout(KILL_WAIT, drain).await;
                    return Some((Err(timed_out(&out.script)), None));
                }
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
