//! The response body type every handler returns, the request body type
//! every handler reads (hyper's or HTTP/3's, one type so that dispatch has
//! one implementation), and writing a body to an HTTP/1.1 connection by
//! hand.
//!
//! An enum rather than a boxed trait object so that the common cases (empty,
//! one buffer) cost no allocation; streams (large files, CGI output, proxied
//! bodies) are boxed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes};
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

pub enum Body {
    Empty,
    Full(Option<Bytes>),
    Stream(UnsyncBoxBody<Bytes, io::Error>),
}

impl Body {
    pub fn empty() -> Body {
        Body::Empty
    }

    pub fn full(bytes: impl Into<Bytes>) -> Body {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Body::Empty
        } else {
            Body::Full(Some(bytes))
        }
    }

    pub fn stream<B>(body: B) -> Body
    where
        B: http_body::Body<Data = Bytes, Error = io::Error> + Send + 'static,
    {
        Body::Stream(UnsyncBoxBody::new(body))
    }

    /// This body, calling `done` once with the number of data bytes it
    /// yielded, when it ends or is dropped (the client went away first):
    /// for what only the sent body tells, an access-log line's size.
    pub fn counted(self, done: impl FnOnce(u64) + Send + 'static) -> Body {
        Body::stream(Counted {
            inner: self,
            bytes: 0,
            done: Some(Box::new(done)),
        })
    }
}

/// See [`Body::counted`].
struct Counted {
    inner: Body,
    bytes: u64,
    done: Option<Box<dyn FnOnce(u64) + Send>>,
}

impl Counted {
    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            done(self.bytes);
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        match &frame {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.finish(),
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.finish();
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Body::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(data) => data.is_none(),
            Body::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Body::Stream(s) => s.size_hint(),
        }
    }
}

/// Writes `body`'s data to an HTTP/1.1 connection, as is (its length was
/// announced) or chunked, for the two places that frame a body themselves:
/// the proxy's request upload and `server::direct`'s responses. Chunk sizes
/// are in upper-case hex, as hyper writes them; trailers are not sent
/// (hyper's server does not send them either).
pub async fn write_http1<B, W>(io: &mut W, mut body: B, chunked: bool) -> io::Result<()>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    W: AsyncWrite + Unpin,
{
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame.map_err(io::Error::other)?.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            // One vectored write per chunk: size line, data, CRLF.
            let size = format!("{:X}\r\n", data.len());
            let mut chunk = size.as_bytes().chain(data).chain(&b"\r\n"[..]);
            io.write_all_buf(&mut chunk).await?;
        } else {
            io.write_all_buf(&mut data).await?;
        }
    }
    if chunked {
        io.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

/// A request body as handlers read it, from whichever connection it came
/// on: hyper's (HTTP/1.1, HTTP/2) or an HTTP/3 request stream.
///
/// An enum, not a boxed trait object, so that the HTTP/1 and HTTP/2 hot
/// path keeps hyper's `Incoming` as it is (no allocation, direct calls);
/// only the HTTP/3 body, which is a stream over a QUIC stream anyway, is
/// boxed.
pub enum RequestBody {
    Hyper(hyper::body::Incoming),
    Stream(UnsyncBoxBody<Bytes, io::Error>),
    /// No body: a request answered without hyper (`server::direct`).
    Empty,
}

/// Reading a request body failed: the client's framing was bad, or its
/// connection or stream ended early.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error("{0}")]
    Hyper(#[from] hyper::Error),
    #[error("{0}")]
    Stream(#[from] io::Error),
}

impl RequestBody {
    /// A request body read from any stream (the HTTP/3 side's).
    pub fn stream<B>(body: B) -> RequestBody
    where
        B: http_body::Body<Data = Bytes, Error = io::Error> + Send + 'static,
    {
        RequestBody::Stream(UnsyncBoxBody::new(body))
    }
}

impl From<hyper::body::Incoming> for RequestBody {
    fn from(body: hyper::body::Incoming) -> RequestBody {
        RequestBody::Hyper(body)
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        match self.get_mut() {
            RequestBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(RequestBodyError::Hyper),
            RequestBody::Stream(s) => Pin::new(s).poll_frame(cx).map_err(RequestBodyError::Stream),
            RequestBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Hyper(b) => b.is_end_stream(),
            RequestBody::Stream(s) => s.is_end_stream(),
            RequestBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Hyper(b) => b.size_hint(),
            RequestBody::Stream(s) => s.size_hint(),
            RequestBody::Empty => SizeHint::with_exact(0),
        }
    }
}
