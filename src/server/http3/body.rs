//! An HTTP/3 request stream's body as an `http_body::Body`, so that it can
//! become a `RequestBody` and go through the same handlers (proxy upload,
//! CGI stdin) as hyper's bodies.
//!
//! It also does the two things hyper does for an HTTP/1 or HTTP/2 body and
//! h3 does not: it holds the client to its `Content-Length` (a body longer
//! or shorter than announced is an error, never extra bytes in a proxied
//! request), and it tells whether the body is empty when the client sent
//! the end of the stream with the head, so that a bodiless request is
//! forwarded as one.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::FutureExt as _;
use h3::server::RequestStream;
use http_body::{Frame, SizeHint};

type RecvStream = RequestStream<h3_quinn::RecvStream, Bytes>;

pub(super) struct H3Body {
    stream: RecvStream,
    /// Data read ahead (see [`H3Body::new`]), not yet given out.
    first: Option<Bytes>,
    /// Bytes the client's `Content-Length` still owes, if it sent one.
    remaining: Option<u64>,
    /// The stream's end has been read.
    ended: bool,
}

impl H3Body {
    /// The body of a request whose head said `content_length`. What has
    /// already arrived is looked at without waiting: a request whose
    /// stream ended with its head (a GET, typically) is known to have no
    /// body, as hyper knows for HTTP/2's END_STREAM.
    pub(super) fn new(mut stream: RecvStream, content_length: Option<u64>) -> H3Body {
        let mut first = None;
        let mut ended = false;
        if let Some(Ok(read)) = poll_fn(|cx| stream.poll_recv_data(cx)).now_or_never() {
            match read {
                Some(mut data) => first = Some(data.copy_to_bytes(data.remaining())),
                None => ended = true,
            }
        }
        // An error is left for the first read to find again.
        H3Body {
            stream,
            first,
            remaining: content_length,
            ended,
        }
    }

    /// Counts `data` against the `Content-Length`.
    fn account(&mut self, data: Bytes) -> Result<Frame<Bytes>, io::Error> {
        if let Some(remaining) = &mut self.remaining {
            let len = data.len() as u64;
            if len > *remaining {
                self.ended = true;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the request body is longer than its Content-Length",
                ));
            }
            *remaining -= len;
        }
        Ok(Frame::data(data))
    }
}

impl http_body::Body for H3Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(data) = this.first.take() {
            return Poll::Ready(Some(this.account(data)));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            match ready!(this.stream.poll_recv_data(cx)) {
                Ok(Some(mut data)) => {
                    let data = data.copy_to_bytes(data.remaining());
                    if data.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(this.account(data)));
                }
                Ok(None) => {
                    this.ended = true;
                    if this.remaining.is_some_and(|r| r > 0) {
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the request body is shorter than its Content-Length",
                        ))));
                    }
                    return Poll::Ready(None);
                }
                Err(e) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(io::Error::other(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && (self.ended || self.remaining == Some(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None if self.is_end_stream() => SizeHint::with_exact(0),
            None => SizeHint::default(),
        }
    }
}
