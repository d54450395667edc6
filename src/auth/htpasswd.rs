//! htpasswd files: `name:hash` lines, as Apache's `htpasswd` writes them.
//!
//! Only salted, slow hashes are accepted: bcrypt (`$2y$`, `$2b$`, `$2a$`),
//! SHA-crypt (`$5$`, `$6$`) and Argon2 (`$argon2id$`…). Apache also writes
//! plain text, unsalted `{SHA}`, `$apr1$` (MD5) and crypt() DES; a stolen
//! file of those is cracked in minutes, so such a line stops the server
//! (or the reload) with the file, the line, the user and the way out
//! (`portshare user add`) rather than being silently accepted or skipped.
//!
//! The same parser serves the server (`crate::auth`) and `portshare user`
//! (which keeps the other lines, comments included, as they were).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use argon2::password_hash::PasswordVerifier as _;

/// bcrypt cost of new passwords: bcrypt's own default (about 0.25 s on a
/// current CPU; the server's credential cache pays it once per browser
/// session, not per request).
pub const DEFAULT_COST: u32 = bcrypt::DEFAULT_COST;

/// A password hash in one of the accepted formats.
#[derive(Clone)]
pub enum Hash {
    Bcrypt(String),
    ShaCrypt(String),
    Argon2(String),
}

// Hashes are secrets too: Debug never shows them.
impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hash::Bcrypt(_) => "Hash::Bcrypt(..)",
            Hash::ShaCrypt(_) => "Hash::ShaCrypt(..)",
            Hash::Argon2(_) => "Hash::Argon2(..)",
        })
    }
}

impl Hash {
    /// Whether `password` matches. Slow on purpose (bcrypt and co.): call
    /// it off the I/O threads.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Hash::ShaCrypt(h) => sha_crypt::ShaCrypt::default()
                .verify_password(password, h.as_str())
                .is_ok(),
            Hash::Argon2(h) => argon2::Argon2::default()
                .verify_password(password, h.as_str())
                .is_ok(),
        }
    }
}

/// Why a users file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("cannot read the users file {}: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: not a 'name:hash' line (htpasswd format); fix or delete the line", file.display())]
    Malformed { file: PathBuf, line: usize },
    #[error(
        "{}:{line}: user '{user}' has a {kind} password, which portshare does not accept ({why}); \
         set a new one with 'portshare user add --file {} {user}'",
        file.display(), file.display()
    )]
    Refused {
        file: PathBuf,
        line: usize,
        user: String,
        kind: &'static str,
        why: &'static str,
    },
    #[error("{}:{line}: user '{user}' appears a second time (first on line {first})", file.display())]
    Duplicate {
        file: PathBuf,
        line: usize,
        first: usize,
        user: String,
    },
}

/// Why a line's hash is refused: its kind, and why.
fn refused_kind(hash: &str) -> (&'static str, &'static str) {
    if hash.starts_with("{SHA}") {
        ("{SHA}", "unsalted SHA-1")
    } else if hash.starts_with("$apr1$") {
        ("$apr1$ (Apache MD5)", "MD5 is fast to crack")
    } else if hash.starts_with("$1$") {
        ("$1$ (MD5-crypt)", "MD5 is fast to crack")
    } else if hash.starts_with('$') {
        ("unknown", "not bcrypt, SHA-crypt or Argon2")
    } else if hash.len() == 13
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    {
        // crypt() DES: 2 salt characters + 11 hash characters. A 13-character
        // plain-text password looks the same; either way it is refused.
        ("crypt() DES", "8-character passwords and a 12-bit salt")
    } else {
        ("plain-text", "anyone who reads the file has the password")
    }
}

/// Classifies a hash, checking that the accepted formats are well formed.
fn classify(hash: &str) -> Result<Hash, (&'static str, &'static str)> {
    if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
        return hash
            .parse::<bcrypt::HashParts>()
            .map(|_| Hash::Bcrypt(hash.to_owned()))
            .map_err(|_| ("malformed bcrypt", "the hash cannot be read"));
    }
    if hash.starts_with("$5$") || hash.starts_with("$6$") {
        return sha_crypt::PasswordHashRef::new(hash)
            .map(|_| Hash::ShaCrypt(hash.to_owned()))
            .map_err(|_| ("malformed SHA-crypt", "the hash cannot be read"));
    }
    if hash.starts_with("$argon2") {
        return argon2::password_hash::phc::PasswordHash::new(hash)
            .map(|_| Hash::Argon2(hash.to_owned()))
            .map_err(|_| ("malformed Argon2", "the hash cannot be read"));
    }
    Err(refused_kind(hash))
}

/// One line of the file: a user, or anything else (kept by `portshare user`).
#[derive(Debug, Clone)]
pub enum Line {
    User { name: String, hash: String },
    Other(String),
}

/// Splits the text into lines, without judging the hashes (`portshare user`
/// must be able to replace a refused one).
pub fn lines(text: &str) -> Vec<Line> {
    text.lines()
        .map(|l| {
            let t = l.trim_end_matches('\r');
            if t.trim_start().starts_with('#') || t.trim().is_empty() {
                return Line::Other(t.to_owned());
            }
            match t.split_once(':') {
                Some((name, hash)) if !name.is_empty() => Line::User {
                    name: name.to_owned(),
                    hash: hash.trim().to_owned(),
                },
                _ => Line::Other(t.to_owned()),
            }
        })
        .collect()
}

/// The users of one file, by name.
#[derive(Debug, Default)]
pub struct Users {
    by_name: HashMap<String, Hash>,
    /// Checked against when the user is unknown, so that an unknown name
    /// costs as much time as a wrong password (no user enumeration).
    decoy: Option<Hash>,
}

impl Users {
    /// Parses a users file; the first bad line is the error.
    pub fn parse(file: &Path, text: &str) -> Result<Users, HtpasswdError> {
        let mut users = Users::default();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let t = line.trim_end_matches('\r');
            if t.trim_start().starts_with('#') || t.trim().is_empty() {
                continue;
            }
            let Some((name, hash)) = t.split_once(':').filter(|(n, _)| !n.is_empty()) else {
                return Err(HtpasswdError::Malformed {
                    file: file.to_owned(),
                    line: line_no,
                });
            };
            let hash = classify(hash.trim()).map_err(|(kind, why)| HtpasswdError::Refused {
                file: file.to_owned(),
                line: line_no,
                user: name.to_owned(),
                kind,
                why,
            })?;
            if let Some(first) = first_line.insert(name.to_owned(), line_no) {
                return Err(HtpasswdError::Duplicate {
                    file: file.to_owned(),
                    line: line_no,
                    first,
                    user: name.to_owned(),
                });
            }
            if users.decoy.is_none() {
                users.decoy = Some(hash.clone());
            }
            users.by_name.insert(name.to_owned(), hash);
        }
        Ok(users)
    }

    /// Reads and parses a users file.
    pub fn load(file: &Path) -> Result<Users, HtpasswdError> {
        let text = std::fs::read_to_string(file).map_err(|source| HtpasswdError::Read {
            file: file.to_owned(),
            source,
        })?;
        Users::parse(file, &text)
    }

    /// The hash to check a password against: the user's, or the decoy
    /// (`known` false) for an unknown user.
    pub fn hash_for(&self, name: &str) -> (Option<&Hash>, bool) {
        match self.by_name.get(name) {
            Some(h) => (Some(h), true),
            None => (self.decoy.as_ref(), false),
        }
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// A user name `portshare user add` accepts: what the access log's user
/// field and `REMOTE_USER` can carry unambiguously, and what htpasswd's
/// format can hold (no `:`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('#')
        && name
            .chars()
            .all(|c| c != ':' && !c.is_whitespace() && !c.is_control())
}

/// A new bcrypt hash in Apache's `$2y$` form (what `htpasswd -B` writes).
pub fn hash_password(password: &str, cost: u32) -> Result<String, bcrypt::BcryptError> {
    Ok(bcrypt::hash_with_result(password, cost)?.format_for_version(bcrypt::Version::TwoY))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Users, HtpasswdError> {
        Users::parse(Path::new("/etc/users"), text)
    }

    #[test]
    fn accepts_bcrypt_sha_crypt_and_argon2() {
        let bcrypt = hash_password("secret", 4).unwrap();
        assert!(bcrypt.starts_with("$2y$04$"));
        // `mkpasswd -m sha-512 -R 1000 secret`-style hash, made by the crate.
        use sha_crypt::PasswordHasher as _;
        let sha = sha_crypt::ShaCrypt::default()
            .hash_password_with_salt(b"secret", b"saltsalt")
            .unwrap()
            .to_string();
        let argon = argon2::Argon2::default()
            .hash_password_with_salt(b"secret", b"saltsaltsaltsalt")
            .unwrap()
            .to_string();
        let users = parse(&format!(
            "# comment\nann:{bcrypt}\n\nbob:{sha}\ncid:{argon}\n"
        ))
        .unwrap();
        assert_eq!(users.len(), 3);
        for name in ["ann", "bob", "cid"] {
            let (hash, known) = users.hash_for(name);
            assert!(known);
            assert!(hash.unwrap().verify(b"secret"), "{name}");
            assert!(!hash.unwrap().verify(b"wrong"), "{name}");
        }
        let (decoy, known) = users.hash_for("nobody");
        assert!(!known && decoy.is_some());
    }

    #[test]
    fn refuses_weak_hashes_naming_file_line_and_user() {
        for (hash, kind) in [
            ("secret", "plain-text"),
            ("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "{SHA}"),
            ("$apr1$salt$abcdefghijklmnopqrstuv", "$apr1$"),
            ("abJnggxhB/yWI", "crypt() DES"),
        ] {
            let err = parse(&format!("# users\nann:{hash}\n")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("/etc/users:2: user 'ann'"), "{msg}");
            assert!(msg.contains(kind), "{msg}");
            assert!(
                msg.contains("portshare user add --file /etc/users ann"),
                "{msg}"
            );
        }
    }

    #[test]
    fn refuses_malformed_and_duplicate_lines() {
        assert!(matches!(
            parse("no colon here\n"),
            Err(HtpasswdError::Malformed { line: 1, .. })
        ));
        let h = hash_password("x", 4).unwrap();
        assert!(matches!(
            parse(&format!("a:{h}\na:{h}\n")),
            Err(HtpasswdError::Duplicate {
                line: 2,
                first: 1,
                ..
            })
        ));
        assert!(matches!(
            parse("a:$2y$10$short\n"),
            Err(HtpasswdError::Refused { .. })
        ));
    }

    #[test]
    fn names() {
        assert!(valid_name("ann.o'neil@example"));
        for bad in ["", "a:b", "a b", "#x", "a\tb"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
