//! Following the client's byte stream phase by phase: a head (checked by
//! [`super::head`]), then its body by Content-Length or chunked framing,
//! trailers included, so that the next pipelined head is found where hyper
//! will find it. Split from the I/O in `mod.rs`: this is the state machine
//! over bytes already read, and the strict chunk-line syntax it relies on.

use bytes::{Buf, Bytes};

use super::head::{
    check_head, escape_target, find_head_end, first_line, has_control, is_token,
    partial_head_error, RequestLine, TOKEN_BYTES,
};
use super::{Guarded, Phase};
use crate::errors::HttpSysError;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Longest chunk-size line accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Chunk extensions allowed in one body, all lines together (hyper's
/// limit: past it, hyper fails the body, so the guard refuses it first).
const MAX_CHUNK_EXTENSIONS: usize = 16 * 1024;

impl<S> Guarded<S> {
    fn fail(&mut self, err: HttpSysError, head: Option<&RequestLine<'_>>) {
        self.ctx.log(Some(err), err.reason(), head);
        // In a body, the request is hyper's already: it gets end-of-stream
        // mid-body (its application sees the body fail), and the page goes
        // out unless a response has begun.
        self.failed_in_body = self.phase != Phase::Head;
        self.error_out = if self.failed_in_body && self.answered {
            Bytes::new()
        } else {
            err.raw_response()
        };
        self.ready_out = Bytes::new();
        self.pending.clear();
        self.phase = Phase::Failing;
    }

    /// Hands up to `n` pending body bytes to hyper; the phase becomes
    /// `more(left)` or, when all `n` are through, `done`. False when no
    /// bytes are pending.
    fn pass_body(&mut self, n: u64, more: fn(u64) -> Phase, done: Phase) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        let take = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(self.pending.len());
        self.ready_out = self.pending.split_to(take).freeze();
        let left = n - take as u64;
        self.phase = if left == 0 { done } else { more(left) };
        true
    }

    /// Moves checked bytes from `pending` to `ready_out`, advancing the
    /// phase; returns false when more input is needed.
    pub(super) fn advance(&mut self) -> bool {
        loop {
            if !self.ready_out.is_empty() {
                return true;
            }
            self.head_ready = false;
            match self.phase {
                Phase::H2 | Phase::Tunnel => {
                    if self.pending.is_empty() {
                        return false;
                    }
                    self.ready_out = self.pending.split().freeze();
                    return true;
                }
                Phase::Failing | Phase::Closed => return true,
                // Held until the response is seen (`poll_write`).
                Phase::AwaitSwitch { .. } => return false,
                Phase::Head => {
                    if self.pending.is_empty() {
                        return false;
                    }
                    if self.first_exchange
                        && H2_PREFACE
                            .starts_with(&self.pending[..self.pending.len().min(H2_PREFACE.len())])
                    {
                        if self.pending.len() < H2_PREFACE.len() {
                            return false;
                        }
                        self.phase = Phase::H2;
                        // From now on the idle timer only (see `poll_read_h2`).
                        self.arm(self.ctx.limits.idle_connection_timeout);
                        continue;
                    }
                    // Tolerate blank lines before a request (RFC 9112 2.2).
                    while self.pending.starts_with(b"\r\n") {
                        self.pending.advance(2);
                    }
                    match find_head_end(&self.pending) {
                        None => {
                            if let Some(err) = partial_head_error(&self.pending, &self.ctx.limits) {
                                let line =
                                    String::from_utf8_lossy(first_line(&self.pending)).into_owned();
                                let head = RequestLine::parse(&line);
                                self.fail(err, head.as_ref());
                            }
                            return matches!(self.phase, Phase::Failing);
                        }
                        Some(end) => {
                            let head = self.pending.split_to(end);
                            match check_head(&head, &self.ctx.limits) {
                                Ok(next) => {
                                    self.first_exchange = false;
                                    self.chunk_ext_bytes = 0;
                                    self.phase = next;
                                    self.ready_out = escape_target(head);
                                    self.head_ready = true;
                                    self.answered = false;
                                }
                                Err(err) => {
                                    let line =
                                        String::from_utf8_lossy(first_line(&head)).into_owned();
                                    let parsed = RequestLine::parse(&line);
                                    self.fail(err, parsed.as_ref());
                                }
                            }
                        }
                    }
                }
                Phase::Body(n) => {
                    if !self.pass_body(n, Phase::Body, Phase::Head) {
                        return false;
                    }
                }
                Phase::ChunkSize => {
                    let Some(eol) = find_crlf(&self.pending) else {
                        if self.pending.len() > MAX_CHUNK_LINE {
                            self.fail(HttpSysError::BadRequest, None);
                            return true;
                        }
                        return false;
                    };
                    let Some((size, ext)) = parse_chunk_line(&self.pending[..eol]) else {
                        self.fail(HttpSysError::BadRequest, None);
                        return true;
                    };
                    // hyper refuses a body whose extensions add up to more.
                    self.chunk_ext_bytes += ext;
                    if self.chunk_ext_bytes > MAX_CHUNK_EXTENSIONS {
                        self.fail(HttpSysError::BadRequest, None);
                        return true;
                    }
                    self.ready_out = self.pending.split_to(eol + 2).freeze();
                    self.phase = if size == 0 {
                        Phase::Trailers
                    } else {
                        Phase::ChunkData(size)
                    };
                }
                Phase::ChunkData(n) => {
                    if !self.pass_body(n, Phase::ChunkData, Phase::ChunkEnd) {
                        return false;
                    }
                }
                Phase::ChunkEnd => {
                    if self.pending.len() < 2 {
                        return false;
                    }
                    if !self.pending.starts_with(b"\r\n") {
                        self.fail(HttpSysError::BadRequest, None);
                        return true;
                    }
                    self.ready_out = self.pending.split_to(2).freeze();
                    self.phase = Phase::ChunkSize;
                }
                Phase::Trailers => {
                    let Some(eol) = find_crlf(&self.pending) else {
                        if self.pending.len() > self.ctx.limits.max_request_bytes {
                            self.fail(HttpSysError::RequestTooLong, None);
                            return true;
                        }
                        return false;
                    };
                    let empty = eol == 0;
                    if !empty && !is_field_line(&self.pending[..eol]) {
                        self.fail(HttpSysError::BadRequest, None);
                        return true;
                    }
                    self.ready_out = self.pending.split_to(eol + 2).freeze();
                    if empty {
                        self.phase = Phase::Head;
                    }
                }
            }
        }
    }
}

/// A chunk-size line without its CRLF (RFC 9112 §7.1): the size and the
/// length of its extensions, or `None` when it is malformed. Strict, so
/// that nothing the guard passes is refused by hyper's decoder afterwards
/// (which would turn a client's bad request into an application failure):
/// hex digits only (no sign, no leading space), then
/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn parse_chunk_line(line: &[u8]) -> Option<(u64, usize)> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let size = u64::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()?;
    let ext = &line[digits..];
    let mut rest = ext;
    let skip_ws =
        |b: &[u8]| -> usize { b.iter().take_while(|c| matches!(c, b' ' | b'\t')).count() };
    let token_len = |b: &[u8]| -> usize {
        b.iter()
            .take_while(|&&c| TOKEN_BYTES[usize::from(c)])
            .count()
    };
    loop {
        rest = &rest[skip_ws(rest)..];
        if rest.is_empty() {
            return Some((size, ext.len()));
        }
        rest = rest.strip_prefix(b";")?;
        rest = &rest[skip_ws(rest)..];
        let name = token_len(rest);
        if name == 0 {
            return None;
        }
        rest = &rest[name..];
        let after = &rest[skip_ws(rest)..];
        if let Some(value) = after.strip_prefix(b"=") {
            let value = &value[skip_ws(value)..];
            let len = if value.first() == Some(&b'"') {
                quoted_string_len(value)?
            } else {
                token_len(value)
            };
            if len == 0 {
                return None;
            }
            rest = &value[len..];
        }
    }
}

/// Length of the quoted-string at the start of `b` (RFC 9110 §5.6.4).
fn quoted_string_len(b: &[u8]) -> Option<usize> {
    let mut i = 1;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *b.get(i + 1)?;
                if has_control(&[escaped]) {
                    return None;
                }
                i += 2;
            }
            c if has_control(&[c]) => return None,
            _ => i += 1,
        }
    }
    None
}

/// A header field line (a trailer): a token, `:`, a value without
/// control characters.
fn is_field_line(line: &[u8]) -> bool {
    memchr::memchr(b':', line)
        .is_some_and(|colon| is_token(&line[..colon]) && !has_control(&line[colon + 1..]))
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}
