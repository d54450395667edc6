//! Who may register which prefix: HTTP.sys URL reservations (urlacl).
//!
//! A peer may register when it runs as the server's own user, as root (the
//! stand-in for an elevated Administrator, who on Windows may register any
//! URL), or when, for every requested prefix, the reservation that governs it
//! grants the peer `listen`. Otherwise: `Error: 5`.
//!
//! **Which reservation governs a prefix** — the same rules as request routing
//! ([`crate::urlprefix`]), treating the requested prefix as the request:
//! * only reservations with the same scheme and port take part;
//! * the path of the reservation must be a prefix of the requested path on
//!   whole segments (`http://+:80/` covers `http://+:80/anything/`;
//!   `/api/` covers `/api/v1/` but not `/apix/`), compared case-insensitively
//!   after normalisation;
//! * host categories in routing order: a `+` reservation covers every host;
//!   then a reservation for the same explicit host or the same IP literal;
//!   then a `*` reservation, which covers every host except a requested `+`
//!   (a strong wildcard claims more than a weak one). The first category
//!   with a covering reservation wins, and inside it the longest path wins —
//!   so a narrower reservation for someone else overrides a broad `Everyone`
//!   one below it, as in HTTP.sys.
//!
//! **Whether it grants the peer `listen`**: with `user=`, the name equals the
//! peer's user name ASCII-case-insensitively, with or without a `DOMAIN\`
//! part (`MACHINE\alice` matches `alice`), or it is `Everyone` / `\Everyone`
//! (also `BUILTIN\Users`, `NT AUTHORITY\Authenticated Users`: every local
//! user), and `listen=yes`. With `sddl=` only, the SDDL is evaluated as
//! Windows does, entries in order, deny before a later allow ([`crate::sddl`]).
//! Reservations whose URL [`UrlPrefix::parse`] refuses are ignored: `http add
//! urlacl` no longer stores them, but a store written by an older version may
//! hold some. Each is logged (`warn`) every time the reservations are checked,
//! which is once per store load.

use crate::registry::RegisterError;
use crate::sddl::{Caller, Sddl};
use crate::store::UrlReservation;
use crate::urlprefix::{HostRule, UrlPrefix};

/// The user a control connection runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUser {
    /// Numeric user ID where the platform has one.
    pub uid: Option<u32>,
    /// Account name (the numeric uid as text when it has no name).
    pub name: String,
}

/// Decides whether `peer` may register all of `prefixes`.
pub fn check_access(
    peer: &PeerUser,
    server: &PeerUser,
    reservations: &[UrlReservation],
    prefixes: &[UrlPrefix],
) -> Result<(), RegisterError> {
    if is_privileged(peer, server) {
        return Ok(());
    }
    let parsed: Vec<(UrlPrefix, &UrlReservation)> = reservations
        .iter()
        .filter_map(|r| match UrlPrefix::parse(&r.url) {
            Ok(p) => Some((p, r)),
            Err(e) => {
                tracing::warn!(
                    reservation = %r.url,
                    reason = %e,
                    "URL reservation ignored: it is not a valid URL prefix"
                );
                None
            }
        })
        .collect();
    for prefix in prefixes {
        let granted = governing(&parsed, prefix).is_some_and(|r| grants_listen(r, &peer.name));
        if !granted {
            return Err(RegisterError::AccessDenied {
                prefix: prefix.to_string(),
                user: peer.name.clone(),
            });
        }
    }
    Ok(())
}

/// The server's own user, or root.
pub fn is_privileged(peer: &PeerUser, server: &PeerUser) -> bool {
    match (peer.uid, server.uid) {
        (Some(p), Some(s)) => p == s || p == 0,
        _ => peer.name.eq_ignore_ascii_case(&server.name),
    }
}

/// The reservation that governs `wanted` (see the module documentation).
pub fn governing<'a>(
    reservations: &'a [(UrlPrefix, &'a UrlReservation)],
    wanted: &UrlPrefix,
) -> Option<&'a UrlReservation> {
    // Rank of the host rule of a covering reservation, `None` if it does not cover.
    let rank = |res: &HostRule| -> Option<u8> {
        match (res, wanted.host()) {
            (HostRule::StrongWildcard, _) => Some(0),
            (HostRule::Explicit(a), HostRule::Explicit(b)) if a == b => Some(1),
            (HostRule::IpBound(a), HostRule::IpBound(b)) if a == b => Some(1),
            (HostRule::WeakWildcard, HostRule::StrongWildcard) => None,
            (HostRule::WeakWildcard, _) => Some(2),
            _ => None,
        }
    };
    reservations
        .iter()
        .filter(|(p, _)| p.scheme() == wanted.scheme() && p.port() == wanted.port())
        // Both keys end in '/', so a plain prefix test is a whole-segment test.
        .filter(|(p, _)| wanted.path_key().starts_with(p.path_key()))
        .filter_map(|(p, r)| rank(p.host()).map(|k| (k, p.path_key().len(), *r)))
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(_, _, r)| r)
}

/// Does the reservation let user `name` register (listen)?
pub fn grants_listen(res: &UrlReservation, name: &str) -> bool {
    if !res.user.trim().is_empty() {
        return res.listen && user_matches(&res.user, name);
    }
    sddl_grants_listen(&res.sddl, name)
}

fn is_everyone(account: &str) -> bool {
    let a = account.trim().trim_start_matches('\\');
    ["everyone", "builtin\\users", "users"]
        .iter()
        .chain(["nt authority\\authenticated users", "authenticated users"].iter())
        .any(|k| a.eq_ignore_ascii_case(k))
}

fn user_matches(account: &str, name: &str) -> bool {
    if is_everyone(account) {
        return true;
    }
    let account = account.trim();
    let bare = account.rsplit('\\').next().unwrap_or(account);
    account.eq_ignore_ascii_case(name) || bare.eq_ignore_ascii_case(name)
}

fn sddl_grants_listen(sddl: &str, name: &str) -> bool {
    match Sddl::parse(sddl) {
        // Peers that get here are not root (root needs no reservation).
        Ok(sddl) => sddl.grants_listen(&Caller { name, root: false }),
        Err(why) => {
            tracing::warn!(%sddl, reason = %why, "URL reservation ignored: its SDDL cannot be evaluated");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> UrlPrefix {
        UrlPrefix::parse(s).unwrap()
    }

    fn res(url: &str, user: &str, listen: bool) -> UrlReservation {
        UrlReservation {
            url: url.into(),
            user: user.into(),
            listen,
            delegate: false,
            sddl: String::new(),
        }
    }

    fn sddl(url: &str, sddl: &str) -> UrlReservation {
        UrlReservation {
            url: url.into(),
            user: String::new(),
            listen: false,
            delegate: false,
            sddl: sddl.into(),
        }
    }

    const SERVER: PeerUser = PeerUser {
        uid: Some(1000),
        name: String::new(),
    };

    fn bob() -> PeerUser {
        PeerUser {
            uid: Some(1001),
            name: "bob".into(),
        }
    }

    fn check(reservations: &[UrlReservation], wanted: &str) -> Result<(), u32> {
        check_access(&bob(), &SERVER, reservations, &[p(wanted)]).map_err(|e| e.netsh_code())
    }

    #[test]
    fn owner_and_root_need_no_reservation() {
        let me = PeerUser {
            uid: Some(1000),
            name: "me".into(),
        };
        let root = PeerUser {
            uid: Some(0),
            name: "root".into(),
        };
        assert!(check_access(&me, &SERVER, &[], &[p("http://+:80/")]).is_ok());
        assert!(check_access(&root, &SERVER, &[], &[p("http://+:80/")]).is_ok());
        // Without uids (Windows), the names decide.
        let a = PeerUser {
            uid: None,
            name: "Alice".into(),
        };
        let b = PeerUser {
            uid: None,
            name: "alice".into(),
        };
        assert!(check_access(&a, &b, &[], &[p("http://+:80/")]).is_ok());
    }

    #[test]
    fn no_reservation_is_access_denied() {
        assert_eq!(check(&[], "http://+:80/api/"), Err(5));
        let err = check_access(&bob(), &SERVER, &[], &[p("http://+:80/api/")]).unwrap_err();
        assert!(err.to_string().contains("'bob'"), "{err}");
    }

    #[test]
    fn path_covers_on_segment_boundaries() {
        let r = [res("http://+:80/api/", "bob", true)];
        assert_eq!(check(&r, "http://+:80/api/"), Ok(()));
        assert_eq!(check(&r, "http://+:80/API/v1/"), Ok(()));
        assert_eq!(check(&r, "http://+:80/apix/"), Err(5));
        assert_eq!(check(&r, "http://+:80/"), Err(5));
        assert_eq!(check(&r, "http://+:81/api/"), Err(5));
        assert_eq!(check(&r, "https://+:80/api/"), Err(5));
    }

    #[test]
    fn host_rules() {
        let plus = [res("http://+:80/", "bob", true)];
        for wanted in [
            "http://+:80/x/",
            "http://*:80/",
            "http://www.example.com:80/",
            "http://127.0.0.1:80/",
        ] {
            assert_eq!(check(&plus, wanted), Ok(()), "{wanted}");
        }
        let weak = [res("http://*:80/", "bob", true)];
        assert_eq!(check(&weak, "http://*:80/"), Ok(()));
        assert_eq!(check(&weak, "http://www.example.com:80/"), Ok(()));
        assert_eq!(check(&weak, "http://+:80/"), Err(5));
        let host = [res("http://www.example.com:80/", "bob", true)];
        assert_eq!(check(&host, "http://WWW.example.com:80/a/"), Ok(()));
        assert_eq!(check(&host, "http://other.example.com:80/"), Err(5));
        assert_eq!(check(&host, "http://+:80/"), Err(5));
        assert_eq!(check(&host, "http://*:80/"), Err(5));
        let ip = [res("http://10.0.0.1:80/", "bob", true)];
        assert_eq!(check(&ip, "http://10.0.0.1:80/"), Ok(()));
        assert_eq!(check(&ip, "http://10.0.0.2:80/"), Err(5));
    }

    #[test]
    fn most_specific_reservation_decides() {
        let r = [
            res("http://+:80/", "Everyone", true),
            res("http://+:80/admin/", "alice", true),
        ];
        assert_eq!(check(&r, "http://+:80/blog/"), Ok(()));
        assert_eq!(check(&r, "http://+:80/admin/"), Err(5));
        assert_eq!(check(&r, "http://+:80/admin/x/"), Err(5));
        // A strong-wildcard reservation outranks a host one, as in routing.
        let r = [
            res("http://+:80/", "alice", true),
            res("http://www.example.com:80/", "bob", true),
        ];
        assert_eq!(check(&r, "http://www.example.com:80/"), Err(5));
    }

    #[test]
    fn user_matching() {
        for user in [
            "bob",
            "BOB",
            "MACHINE\\bob",
            "Everyone",
            "\\Everyone",
            "BUILTIN\\Users",
        ] {
            let r = [res("http://+:80/", user, true)];
            assert_eq!(check(&r, "http://+:80/"), Ok(()), "{user}");
        }
        assert_eq!(
            check(&[res("http://+:80/", "alice", true)], "http://+:80/"),
            Err(5)
        );
        assert_eq!(
            check(&[res("http://+:80/", "bobby", true)], "http://+:80/"),
            Err(5)
        );
        // listen=no grants nothing to register with.
        assert_eq!(
            check(&[res("http://+:80/", "bob", false)], "http://+:80/"),
            Err(5)
        );
    }

    #[test]
    fn sddl_only_reservations() {
        let ok = [
            "D:(A;;GX;;;WD)",
            "D:(A;;GA;;;bob)",
            "D:(A;;GW;;;WD)(A;;GX;;;BU)",
        ];
        for s in ok {
            assert_eq!(
                check(&[sddl("http://+:80/", s)], "http://+:80/"),
                Ok(()),
                "{s}"
            );
        }
        let denied = [
            "D:(A;;GW;;;WD)",
            "D:(D;;GX;;;WD)",
            "D:(A;;GX;;;alice)",
            "garbage",
            "",
        ];
        for s in denied {
            assert_eq!(
                check(&[sddl("http://+:80/", s)], "http://+:80/"),
                Err(5),
                "{s}"
            );
        }
    }

    #[test]
    fn all_prefixes_must_be_covered() {
        let r = [res("http://+:80/api/", "bob", true)];
        let err = check_access(
            &bob(),
            &SERVER,
            &r,
            &[p("http://+:80/api/"), p("http://+:80/other/")],
        )
        .unwrap_err();
        assert!(err.to_string().contains("http://+:80/other/"));
        // An unparsable reservation is ignored, not an error.
        let r = [
            res("not a url", "bob", true),
            res("http://+:80/", "bob", true),
        ];
        assert_eq!(check(&r, "http://+:80/"), Ok(()));
    }

    /// Log lines written while `f` runs (a `warn`-level fmt subscriber).
    fn captured_log(f: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
                let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
                v.extend_from_slice(data);
                Ok(data.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn unparsable_reservation_is_logged_once_per_check() {
        let r = [
            res("http://+:080/old/", "bob", true),
            res("http://+:80/", "bob", true),
        ];
        let log = captured_log(|| {
            let wanted = [p("http://+:80/a/"), p("http://+:80/b/")];
            assert!(check_access(&bob(), &SERVER, &r, &wanted).is_ok());
        });
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains("WARN"), "{log}");
        assert!(log.contains("http://+:080/old/"), "{log}");
        assert!(log.contains("leading zero"), "{log}");
        // The owner's check reads no reservations, so it logs nothing.
        let me = PeerUser {
            uid: Some(1000),
            name: "me".into(),
        };
        let log = captured_log(|| {
            assert!(check_access(&me, &SERVER, &r, &[p("http://+:80/")]).is_ok());
        });
        assert_eq!(log, "");
    }
}
