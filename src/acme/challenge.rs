//! HTTP-01 answers (RFC 8555 §8.3): the tokens of the orders in flight and
//! their key authorizations.
//!
//! Why a registration and not a special case in the server: the ACME
//! manager registers `http://+:{http_port}/.well-known/acme-challenge/` in
//! the prefix table like any application (`+` wins over every host name, as
//! a win-acme self-hosting registration does on HTTP.sys), so it shows in
//! `http show servicestate` and [`crate::dispatch`] answers it through
//! [`Http01Tokens::answer`].
//!
//! Each token is also written to `cert_dir/acme-challenges/TOKEN`, so
//! another server sharing `cert_dir` (behind the same load balancer) can
//! answer a validation request that reaches it instead of this one; a token
//! unknown in memory is looked up there. TLS-ALPN-01 answers are shared in
//! the same folder (`NAME.tls-alpn-01`, see
//! [`crate::tls::alpn_challenge`]); a `.` is never in a token, so the two
//! cannot be mistaken for each other.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The URL path under which HTTP-01 tokens are fetched.
pub const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The folder inside `cert_dir` where tokens are shared with other servers.
pub const CHALLENGE_DIR: &str = "acme-challenges";

/// Longest token accepted (RFC 8555 asks for at least 128 bits of entropy,
/// 43 characters in base64url; servers use about that).
const MAX_TOKEN_LEN: usize = 256;

/// The HTTP-01 tokens this server answers.
#[derive(Debug)]
pub struct Http01Tokens {
    dir: PathBuf,
    live: RwLock<HashMap<String, String>>,
}

/// Whether `s` can be a token: base64url characters only, so it can never
/// name a path outside the token folder.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TOKEN_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Http01Tokens {
    /// Tokens shared through `cert_dir/acme-challenges/`.
    pub fn new(cert_dir: &Path) -> Http01Tokens {
        Http01Tokens {
            dir: cert_dir.join(CHALLENGE_DIR),
            live: RwLock::new(HashMap::new()),
        }
    }

    /// The folder tokens are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts answering `token` with `key_authorization`, here and (through
    /// the token folder) in other servers sharing `cert_dir`.
    pub fn publish(&self, token: &str, key_authorization: &str) -> io::Result<()> {
        if !is_token(token) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the ACME server sent the token {token:?}, which is not base64url"),
            ));
        }
        self.live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_owned(), key_authorization.to_owned());
        std::fs::create_dir_all(&self.dir)?;
        // Not secret: anyone may fetch it over plain HTTP while it lives.
        crate::atomic_file::write_atomic(&self.dir.join(token), key_authorization.as_bytes(), false)
    }

    /// Stops answering `token` (the order is over, whatever its outcome).
    pub fn withdraw(&self, token: &str) {
        self.live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
        if is_token(token) {
            let path = self.dir.join(token);
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(
                        "cannot remove the ACME token file {}: {e}; it is harmless, delete it by hand",
                        path.display()
                    );
                }
            }
        }
    }

    /// The key authorization for `token`: this server's own orders first,
    /// then the token folder (another server's order).
    pub fn answer(&self, token: &str) -> Option<String> {
        if !is_token(token) {
            return None;
        }
        if let Some(v) = self
            .live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
        {
            return Some(v.clone());
        }
        let text = std::fs::read_to_string(self.dir.join(token)).ok()?;
        let text = text.trim();
        // A key authorization is `TOKEN.THUMBPRINT`; anything else is not ours.
        text.strip_prefix(token)
            .is_some_and(|rest| rest.starts_with('.'))
            .then(|| text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_answered_from_memory_and_from_the_shared_folder() {
        let dir = tempfile::tempdir().unwrap();
        let a = Http01Tokens::new(dir.path());
        let b = Http01Tokens::new(dir.path());
        a.publish("tok_EN-1", "tok_EN-1.thumb").unwrap();
        assert_eq!(a.answer("tok_EN-1").as_deref(), Some("tok_EN-1.thumb"));
        // A second server sharing cert_dir answers it too.
        assert_eq!(b.answer("tok_EN-1").as_deref(), Some("tok_EN-1.thumb"));
        assert_eq!(a.answer("other"), None);
        a.withdraw("tok_EN-1");
        assert_eq!(a.answer("tok_EN-1"), None);
        assert_eq!(b.answer("tok_EN-1"), None);
    }

    #[test]
    fn paths_are_never_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let t = Http01Tokens::new(dir.path());
        for bad in ["", "../sslcert.json", "a/b", "a.b", "%2e%2e"] {
            assert!(!is_token(bad), "{bad}");
            assert_eq!(t.answer(bad), None);
        }
        assert!(t.publish("../x", "y").is_err());
        // A file in the folder that is not a key authorization for its name.
        std::fs::create_dir_all(t.dir()).unwrap();
        std::fs::write(t.dir().join("abc"), "something else").unwrap();
        assert_eq!(t.answer("abc"), None);
    }
}
