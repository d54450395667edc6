//! What a control peer that is not the server's own user (or root) may ask
//! the server to do on its behalf: only what the peer could do itself.
//!
//! The server relays requests with its own privileges, so a backend named
//! by such a peer must be one the peer can reach with its own: a Unix socket
//! the peer's user and groups may open (search on every folder of the path,
//! write on the socket), or a TCP port on this machine's loopback that the
//! peer's own user listens on (Linux: `/proc/net/tcp{,6}`; elsewhere TCP
//! backends are for privileged peers only). Process IDs a peer names (for
//! `show servicestate`) must be its own processes.
//!
//! Checked against the peer's credentials from the socket, never the
//! server's. Unix only: the Windows control pipe admits only the server's
//! own user and Administrators.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use super::acl::PeerUser;

/// The peer's groups: the primary group from the password database and
/// every group that lists the user as a member.
pub fn groups_of(user: &PeerUser) -> Vec<u32> {
    let mut gids = Vec::new();
    let Some(uid) = user.uid else {
        return gids;
    };
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
        gids.extend(passwd.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let gid: Option<u32> = f.get(3).and_then(|g| g.parse().ok());
            (f.get(2)?.parse::<u32>().ok()? == uid).then_some(gid)?
        }));
    }
    if let Ok(group) = std::fs::read_to_string("/etc/group") {
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            let (Some(gid), Some(members)) = (f.get(2).and_then(|g| g.parse().ok()), f.get(3))
            else {
                continue;
            };
            if members.split(',').any(|m| m.trim() == user.name) && !gids.contains(&gid) {
                gids.push(gid);
            }
        }
    }
    gids
}

/// Whether `uid` (in `gids`) has the `want` permission bits (4 r, 2 w, 1 x)
/// on a file with this metadata, by owner, group, other — the first class
/// that applies decides, as the kernel checks.
fn permits(meta: &std::fs::Metadata, uid: u32, gids: &[u32], want: u32) -> bool {
    let mode = meta.mode();
    let bits = if meta.uid() == uid {
        mode >> 6
    } else if gids.contains(&meta.gid()) {
        mode >> 3
    } else {
        mode
    };
    bits & want == want
}

/// `Ok` with the socket's real path (links resolved: the server then
/// connects there, so a link changed later cannot redirect it) when the
/// peer could connect to the Unix socket at `path` itself.
pub fn may_connect_unix(path: &Path, user: &PeerUser) -> Result<std::path::PathBuf, String> {
    let Some(uid) = user.uid else {
        return Err("the peer's user ID is unknown".into());
    };
    let gids = groups_of(user);
    let denied = |what: &Path| {
        format!(
            "user {} may not open {} (checked with that user's permissions: the server relays requests only to backends its caller can reach)",
            user.name,
            what.display()
        )
    };
    // The folders as written (the peer must get through them) and, after
    // links are resolved, the folders the kernel really goes through.
    let resolved = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for dir in path.ancestors().skip(1).chain(resolved.ancestors().skip(1)) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !permits(&meta, uid, &gids, 1) {
            return Err(denied(dir));
        }
    }
    let meta = std::fs::metadata(&resolved).map_err(|e| format!("{}: {e}", path.display()))?;
    if !permits(&meta, uid, &gids, 2) {
        return Err(denied(path));
    }
    Ok(resolved)
}

/// `Ok` when a TCP backend at `host:port` is a socket the peer's own user
/// listens on, on this machine's loopback.
pub fn may_use_tcp(host: &str, port: u16, user: &PeerUser) -> Result<(), String> {
    let wanted: Vec<IpAddr> = if host.eq_ignore_ascii_case("localhost") {
        vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ]
    } else {
        host.parse::<IpAddr>()
            .map(|ip| vec![ip.to_canonical()])
            .unwrap_or_default()
    };
    if wanted.is_empty() || !wanted.iter().all(IpAddr::is_loopback) {
        return Err(format!(
            "a backend on {host} can be named only by the server's own user or root; other users may name their own service on 127.0.0.1 or [::1]"
        ));
    }
    match (user.uid, listener_owners(&wanted, port)) {
        (Some(uid), owners) if owners.contains(&uid) => Ok(()),
        _ => Err(format!(
            "nothing that user {} runs listens on port {port} of this machine; a backend must be the caller's own service",
            user.name
        )),
    }
}

/// Whether process `pid` runs as `uid`.
pub fn process_is_owned_by(pid: u32, uid: Option<u32>) -> bool {
    match (uid, std::fs::metadata(format!("/proc/{pid}"))) {
        (Some(uid), Ok(meta)) => meta.uid() == uid,
        _ => false,
    }
}

/// The users that listen on `port` at one of the `wanted` addresses (or
/// at the unspecified address, which covers them).
#[cfg(target_os = "linux")]
fn listener_owners(wanted: &[IpAddr], port: u16) -> Vec<u32> {
    // /proc/net/tcp: "sl local_address rem_address st ... uid ...", addresses
    // as HEX_IP:HEX_PORT, state 0A = LISTEN.
    let mut owners = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(uid)) = (f.get(1), f.get(3), f.get(7)) else {
                continue;
            };
            let Some((ip, p)) = local.split_once(':') else {
                continue;
            };
            let listens_here = u16::from_str_radix(p, 16).ok() == Some(port)
                && proc_net_ip(ip).is_some_and(|ip| ip.is_unspecified() || wanted.contains(&ip));
            if *state == "0A" && listens_here {
                owners.extend(uid.parse::<u32>().ok());
            }
        }
    }
    owners
}

#[cfg(not(target_os = "linux"))]
fn listener_owners(_wanted: &[IpAddr], _port: u16) -> Vec<u32> {
    Vec::new()
}

/// An address as `/proc/net/tcp{,6}` writes it: 32-bit words in hex, each
/// in the machine's (little-endian) byte order. IPv4-mapped IPv6
/// addresses come back as IPv4.
#[cfg(target_os = "linux")]
fn proc_net_ip(hex: &str) -> Option<IpAddr> {
    let mut bytes = Vec::with_capacity(16);
    for word in hex.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(word).ok()?, 16).ok()?;
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?).to_canonical()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn user(uid: u32) -> PeerUser {
        PeerUser {
            uid: Some(uid),
            name: format!("u{uid}"),
        }
    }

    #[test]
    fn unix_socket_permissions_are_the_peers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("app.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod dir");
        // Root owns both (tests run as root): another user may not write.
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o700))
            .expect("chmod socket");
        assert!(may_connect_unix(&sock, &user(54_321)).is_err());
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o722))
            .expect("chmod socket");
        assert!(may_connect_unix(&sock, &user(54_321)).is_ok());
        // A folder on the way without search permission stops it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod dir");
        let err = may_connect_unix(&sock, &user(54_321)).expect_err("no search on the folder");
        assert!(err.contains("may not open"), "{err}");
    }

    #[test]
    fn tcp_backends_must_be_the_peers_own_loopback_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let me = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .expect("own uid");
        assert!(may_use_tcp("127.0.0.1", port, &user(me)).is_ok());
        assert!(may_use_tcp("localhost", port, &user(me + 1)).is_err());
        assert!(may_use_tcp("192.0.2.1", port, &user(me)).is_err());
        assert!(process_is_owned_by(std::process::id(), Some(me)));
        assert!(!process_is_owned_by(std::process::id(), Some(me + 1)));
    }
}
