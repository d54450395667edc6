//! Binding listening sockets: one per address, IPv6 sockets IPv6-only so
//! `0.0.0.0:P` and `[::]:P` coexist on every platform.

use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use super::ServerError;

/// Binds `port` on each address, and returns each address's listener. An
/// IPv6 wildcard that the host cannot provide (IPv6 disabled, as in some
/// containers) is skipped with a warning when an IPv4 listener exists.
pub fn bind_port(addrs: &[IpAddr], port: u16) -> Result<Vec<(IpAddr, TcpListener)>, ServerError> {
    let mut out = Vec::new();
    let mut skipped_v6 = None;
    for ip in addrs {
        let addr = SocketAddr::new(*ip, port);
        match bind_one(addr) {
            Ok(l) => out.push((*ip, l)),
            Err(e) if ip.is_ipv6() && ip.is_unspecified() && is_unavailable(&e) => {
                skipped_v6 = Some((addr, e));
            }
            Err(source) => return Err(ServerError::Bind { addr, source }),
        }
    }
    if let Some((addr, source)) = skipped_v6 {
        if out.is_empty() {
            return Err(ServerError::Bind { addr, source });
        }
        tracing::warn!(%addr, error = %source, "IPv6 is not available here; listening on IPv4 only");
    }
    Ok(out)
}

fn is_unavailable(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported
    ) || e.raw_os_error() == Some(97) // EAFNOSUPPORT
}

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Lets a restarted server bind while old connections sit in TIME_WAIT.
    #[cfg(not(windows))]
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}
