//! One HTTP/1.1 connection to a backend: opening it, writing a request,
//! reading bytes into its buffer, and telling whether an idle one is still
//! usable.
//!
//! The stream is split into a read and a write half so that a request body
//! can be uploaded by its own task while the response is read (a backend may
//! echo a body as it reads it; doing one after the other would deadlock once
//! both socket buffers are full).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::ProxyError;
use crate::body::RequestBody;

/// Time allowed to open a connection to the backend.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Room made in the read buffer before each read.
const READ_SIZE: usize = 16 * 1024;

/// The read half of a backend stream.
pub(super) trait ReadHalf: AsyncRead + Send + Unpin {
    /// Whether an idle connection can still take a request: false once the
    /// backend closed it or sent bytes nobody asked for. Costs no system call
    /// unless the reactor saw the socket become readable.
    fn still_idle(&self) -> bool;
}

pub(super) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// Where the backend listens.
pub(super) enum Address {
    Tcp {
        host: Box<str>,
        port: u16,
    },
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

pub(super) struct Connection {
    pub(super) reader: Box<dyn ReadHalf>,
    /// `None` while an upload task has it.
    pub(super) writer: Option<WriteHalf>,
    /// Bytes read from the backend and not yet used.
    pub(super) buf: BytesMut,
    /// Taken from the pool rather than opened for this request.
    pub(super) reused: bool,
    /// Bounds the wait for a response head (the backend's timeout). Kept
    /// with the connection and moved for each request: tokio moves a
    /// registered timer to a later deadline almost for free, whereas a
    /// timer per request is put into the timer wheel and taken out again.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Connection {
    pub(super) async fn open(address: &Address) -> Result<Connection, ProxyError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, address.connect()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(ProxyError::Unreachable(e.to_string())),
            Err(_) => Err(ProxyError::Unreachable(format!(
                "no connection within {CONNECT_TIMEOUT:?}"
            ))),
        }
    }

    fn new(reader: Box<dyn ReadHalf>, writer: WriteHalf) -> Connection {
        Connection {
            reader,
            writer: Some(writer),
            buf: BytesMut::new(),
            reused: false,
            timer: None,
        }
    }

    /// The connection's timer, set to `deadline`, lent out while the
    /// connection itself is in use ([`Connection::return_timer`]).
    pub(super) fn take_timer(&mut self, deadline: Instant) -> Pin<Box<Sleep>> {
        match self.timer.take() {
            Some(mut timer) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    pub(super) fn return_timer(&mut self, timer: Pin<Box<Sleep>>) {
        self.timer = Some(timer);
    }

    pub(super) async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(io::Error::other("the connection is uploading a body"));
        };
        writer.write_all(bytes).await?;
        writer.flush().await
    }

    /// Reads more bytes into `buf`; `Ok(0)` at end of stream.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.reader), cx, &mut self.buf)
    }

    pub(super) async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// The connection taken apart for a protocol switch: the bytes already
    /// read (they come before the rest of the read half), and both halves.
    pub(super) fn into_parts(self) -> (Bytes, Box<dyn ReadHalf>, Option<WriteHalf>) {
        (self.buf.freeze(), self.reader, self.writer)
    }
}

impl Address {
    async fn connect(&self) -> io::Result<Connection> {
        match self {
            Address::Tcp { host, port } => {
                let stream = match host.parse::<IpAddr>() {
                    Ok(ip) => TcpStream::connect(SocketAddr::new(ip, *port)).await?,
                    // A name: every address it resolves to, in order.
                    Err(_) => TcpStream::connect((&**host, *port)).await?,
                };
                stream.set_nodelay(true)?;
                let (r, w) = stream.into_split();
                Ok(Connection::new(Box::new(r), Box::new(w)))
            }
            #[cfg(unix)]
            Address::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                let (r, w) = stream.into_split();
                Ok(Connection::new(Box::new(r), Box::new(w)))
            }
        }
    }
}

/// `readable` resolves at once if the reactor has seen data or end of
/// stream; only then is the socket asked (a would-block answer also clears
/// the stale readiness).
fn still_idle<F>(readable: F, try_read: impl FnOnce(&mut [u8]) -> io::Result<usize>) -> bool
where
    F: std::future::Future<Output = io::Result<()>>,
{
    match readable.now_or_never() {
        None => true,
        Some(Err(_)) => false,
        Some(Ok(())) => {
            matches!(try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        }
    }
}

impl ReadHalf for tokio::net::tcp::OwnedReadHalf {
    fn still_idle(&self) -> bool {
        still_idle(self.readable(), |b| self.try_read(b))
    }
}

#[cfg(unix)]
impl ReadHalf for tokio::net::unix::OwnedReadHalf {
    fn still_idle(&self) -> bool {
        still_idle(self.readable(), |b| self.try_read(b))
    }
}

/// A request body being sent to the backend by its own task; dropping it
/// stops the upload.
pub(super) struct Upload {
    task: tokio::task::JoinHandle<io::Result<WriteHalf>>,
    /// Reading the client's body failed (malformed, or cut short). Set
    /// before the upload lets go of the backend connection, so whoever
    /// sees the backend give up can tell whose fault it was.
    client_failed: Arc<AtomicBool>,
}

impl Upload {
    pub(super) fn start(writer: WriteHalf, body: RequestBody, chunked: bool) -> Upload {
        let client_failed = Arc::new(AtomicBool::new(false));
        let failed = client_failed.clone();
        let body = body.map_err(move |e| {
            failed.store(true, Ordering::SeqCst);
            e
        });
        Upload {
            task: tokio::spawn(upload(writer, body, chunked)),
            client_failed,
        }
    }

    /// The client's body could not be read to its end.
    pub(super) fn client_failed(&self) -> bool {
        self.client_failed.load(Ordering::SeqCst)
    }

    /// The write half back, if the whole body has been sent.
    pub(super) fn finished(mut self) -> Option<WriteHalf> {
        match (&mut self.task).now_or_never() {
            Some(Ok(Ok(writer))) => Some(writer),
            _ => None,
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends a request body, as is (the request has a `Content-Length`) or
/// chunked, and gives the write half back when done. Trailers are not
/// forwarded.
async fn upload<B>(mut writer: WriteHalf, body: B, chunked: bool) -> io::Result<WriteHalf>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    crate::body::write_http1(&mut writer, body, chunked).await?;
    writer.flush().await?;
    Ok(writer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[tokio::test]
    async fn idle_check_sees_close_and_stray_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = Address::Tcp {
            host: "127.0.0.1".into(),
            port: listener.local_addr().expect("addr").port(),
        };
        let mut conn = Connection::open(&address).await.expect("connect");
        let (mut peer, _) = listener.accept().await.expect("accept");
        assert!(conn.reader.still_idle());

        // A full exchange leaves it idle.
        conn.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        peer.read_exact(&mut got).await.expect("read");
        peer.write_all(b"pong").await.expect("answer");
        while conn.buf.len() < 4 {
            conn.fill().await.expect("fill");
        }
        assert!(conn.reader.still_idle());

        // Bytes nobody asked for: not reusable.
        peer.write_all(b"x").await.expect("stray");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while conn.reader.still_idle() {
            assert!(std::time::Instant::now() < deadline, "stray byte not seen");
            tokio::task::yield_now().await;
        }

        // Closed by the backend: not reusable.
        let mut conn = Connection::open(&address).await.expect("connect");
        let (peer, _) = listener.accept().await.expect("accept");
        drop(peer);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while conn.reader.still_idle() {
            assert!(std::time::Instant::now() < deadline, "close not seen");
            tokio::task::yield_now().await;
        }
        assert_eq!(conn.fill().await.expect("eof"), 0);
    }
}
