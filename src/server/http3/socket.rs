//! The UDP socket of a QUIC endpoint, with buffers for bursts.
//!
//! Why: one UDP socket carries every QUIC connection of a port, and the
//! kernel's default receive buffer (208 KiB on Linux) overflows when a
//! hundred clients send at once (`bench/h3.sh` measured 40,000+ datagrams
//! dropped in a few seconds at -c100 -m20); a dropped QUIC packet costs a
//! retransmission timeout, so p99 latency went to a second. quic-go (Caddy)
//! asks for 4 MiB as well.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// The receive and send buffer asked for.
const BUFFER: usize = 4 << 20;

/// A bound, non-blocking UDP socket for `addr`, as a quinn endpoint.
pub(super) fn bind(addr: SocketAddr, config: quinn::ServerConfig) -> io::Result<quinn::Endpoint> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    grow_buffers(&socket, addr);
    socket.bind(&addr.into())?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| io::Error::other("no async runtime for the QUIC endpoint"))?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket.into(),
        runtime,
    )
}

/// Asks for [`BUFFER`]; the kernel caps it at `net.core.rmem_max` /
/// `wmem_max` unless the process may exceed them (root: `SO_RCVBUFFORCE`).
/// A smaller buffer still works, so that is one log line, not an error.
fn grow_buffers(socket: &Socket, addr: SocketAddr) {
    let _ = socket.set_recv_buffer_size(BUFFER);
    let _ = socket.set_send_buffer_size(BUFFER);
    force(socket);
    let got = socket.recv_buffer_size().unwrap_or(0);
    // Linux reports twice the size asked for (its bookkeeping overhead).
    if got < BUFFER {
        tracing::info!(
            %addr,
            receive_buffer = got,
            "the QUIC socket's receive buffer is smaller than {BUFFER} bytes; \
             bursts may drop packets (raise sysctl net.core.rmem_max)"
        );
    }
}

#[cfg(target_os = "linux")]
fn force(socket: &Socket) {
    use std::os::fd::AsRawFd;
    if socket.recv_buffer_size().unwrap_or(0) >= BUFFER {
        return;
    }
    let size = libc::c_int::try_from(BUFFER).unwrap_or(libc::c_int::MAX);
    for option in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: a valid socket and a c_int option value of the right size;
        // a refusal (no CAP_NET_ADMIN) only returns an error, ignored.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn force(_socket: &Socket) {}
