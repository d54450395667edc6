//! A backend's response body as it streams to the client, and the end of
//! the exchange: the connection goes back to the pool once the body has been
//! read to its end, nothing else was sent, and any request body upload has
//! finished.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::connection::{Connection, Upload};
use super::head::Framing;
use super::pool::Pool;

/// Largest chunk-size line or trailer section accepted in a chunked body.
const MAX_CHUNK_META: usize = 16 * 1024;

/// A connection in use for one request.
pub(super) struct Exchange {
    pub(super) conn: Connection,
    /// The request body still being sent, if there is one.
    pub(super) upload: Option<Upload>,
}

impl Exchange {
    /// The response has been read completely: keep the connection if
    /// `keep_alive` and the backend sent nothing more, and the upload is
    /// done (else it is closed, and an unfinished upload stopped).
    pub(super) fn finish(mut self, pool: &Arc<Pool>, keep_alive: bool) {
        if let Some(upload) = self.upload.take() {
            match upload.finished() {
                Some(writer) => self.conn.writer = Some(writer),
                None => return,
            }
        }
        if keep_alive && self.conn.buf.is_empty() {
            pool.checkin(self.conn);
        }
    }
}

enum State {
    /// Bytes left of a `Content-Length` body or of the current chunk.
    Length(u64),
    ChunkSize,
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Trailers,
    UntilClose,
    Done,
}

pub(super) struct ResponseBody {
    exchange: Option<Exchange>,
    /// Where the connection goes back to.
    pool: Arc<Pool>,
    state: State,
    chunked: bool,
    keep_alive: bool,
}

impl ResponseBody {
    pub(super) fn new(
        exchange: Exchange,
        pool: Arc<Pool>,
        framing: Framing,
        keep_alive: bool,
    ) -> ResponseBody {
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        ResponseBody {
            exchange: Some(exchange),
            pool,
            state,
            chunked: framing == Framing::Chunked,
            keep_alive,
        }
    }

    /// The next data frame, `None` at the end of the body.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        let Some(exchange) = self.exchange.as_mut() else {
            return Poll::Ready(Ok(None));
        };
        let conn = &mut exchange.conn;
        loop {
            let buffered = conn.buf.len();
            match self.state {
                State::Done => {
                    if let Some(exchange) = self.exchange.take() {
                        exchange.finish(&self.pool, self.keep_alive);
                    }
                    return Poll::Ready(Ok(None));
                }
                State::Length(left) if buffered > 0 => {
                    let n = usize::try_from(left).map_or(buffered, |l| l.min(buffered));
                    let left = left - n as u64;
                    self.state = match (left, self.chunked) {
                        (0, true) => State::ChunkEnd,
                        (0, false) => State::Done,
                        (left, _) => State::Length(left),
                    };
                    return Poll::Ready(Ok(Some(conn.buf.split_to(n).freeze())));
                }
                State::UntilClose if buffered > 0 => {
                    return Poll::Ready(Ok(Some(conn.buf.split().freeze())));
                }
                State::ChunkSize if buffered > 0 => match httparse::parse_chunk_size(&conn.buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        let _ = conn.buf.split_to(used);
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::Length(size)
                        };
                        continue;
                    }
                    Ok(httparse::Status::Partial) if buffered <= MAX_CHUNK_META => {}
                    _ => return Poll::Ready(Err(bad_chunk("a chunk size line"))),
                },
                State::ChunkEnd if buffered >= 2 => {
                    if &conn.buf[..2] != b"\r\n" {
                        return Poll::Ready(Err(bad_chunk("the end of a chunk")));
                    }
                    let _ = conn.buf.split_to(2);
                    self.state = State::ChunkSize;
                    continue;
                }
                State::Trailers if buffered >= 2 => {
                    // Trailer fields are not forwarded: skip to the empty line.
                    let end = if conn.buf.starts_with(b"\r\n") {
                        Some(2)
                    } else {
                        conn.buf
                            .windows(4)
                            .position(|w| w == b"\r\n\r\n")
                            .map(|p| p + 4)
                    };
                    match end {
                        Some(end) => {
                            let _ = conn.buf.split_to(end);
                            self.state = State::Done;
                            continue;
                        }
                        None if buffered > MAX_CHUNK_META => {
                            return Poll::Ready(Err(bad_chunk("the trailer section")))
                        }
                        None => {}
                    }
                }
                _ => {}
            }
            // More bytes are needed.
            let n = ready!(conn.poll_fill(cx))?;
            if n == 0 {
                if matches!(self.state, State::UntilClose) {
                    self.state = State::Done;
                    self.keep_alive = false;
                    continue;
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the backend closed the connection before the end of the response body",
                )));
            }
        }
    }
}

fn bad_chunk(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the backend's chunked body has an invalid {what}"),
    )
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match ready!(this.poll_data(cx)) {
            Ok(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => {
                // The connection is in an unknown state: close it.
                this.exchange = None;
                this.state = State::Done;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.exchange.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) if !self.chunked => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
