//! What a handler knows about the connection a request came on: shared by
//! the server, the router and every handler, so it sits below all of them.

use std::net::SocketAddr;

/// What a handler knows about the connection a request came on.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
    /// The peer's IP address as the logs and `X-Forwarded-For` give it
    /// (an IPv4-mapped IPv6 address in its IPv4 form), formatted once per
    /// connection rather than once per request.
    pub client_ip: Box<str>,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, local: SocketAddr, https: bool) -> ConnInfo {
        ConnInfo {
            peer,
            local,
            https,
            client_ip: peer.ip().to_canonical().to_string().into(),
        }
    }
}
