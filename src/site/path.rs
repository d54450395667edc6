//! Turning a request path into a file-system path that cannot leave the
//! public folder.
//!
//! Everything is decided on decoded segments: a path is percent-decoded once,
//! must be valid UTF-8 with no control characters or backslashes, and may
//! not contain a `..` segment anywhere (also not one that would stay inside
//! the root — no legitimate link needs it, and refusing is simpler to
//! reason about than resolving). Symlinks are checked later, against the
//! canonical root, when the file is opened.

use std::borrow::Cow;

use super::SiteError;

/// A request path as decoded, checked segments: kept joined with `/` in
/// one string, which is also the file cache's key (one allocation per
/// request instead of one per segment, plus the vector and the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePath {
    /// The segments joined with `/`, and a final `/` for a directory URL.
    key: String,
    /// The URL path ended with `/` (a directory URL).
    pub trailing_slash: bool,
}

impl SitePath {
    /// Decodes `raw` (the URL path, still percent-encoded) and drops the
    /// first `skip` segments (the registered prefix's path).
    pub fn parse(raw: &str, skip: usize) -> Result<SitePath, SiteError> {
        if !raw.starts_with('/') {
            return Err(SiteError::BadPath);
        }
        // Most paths have no escape: then there is nothing to decode (the
        // decoder's byte-by-byte copy cost more than the rest of the parse).
        let decoded: Cow<'_, str> = if raw.contains('%') {
            let bytes = percent_encoding::percent_decode_str(raw).collect::<Vec<u8>>();
            // Overlong or otherwise invalid UTF-8 (e.g. %c0%ae) is rejected here.
            Cow::Owned(String::from_utf8(bytes).map_err(|_| SiteError::BadPath)?)
        } else {
            Cow::Borrowed(raw)
        };
        if has_control_or_backslash(&decoded) {
            return Err(SiteError::BadPath);
        }
        let trailing_slash = decoded.ends_with('/');
        let mut key = String::with_capacity(decoded.len());
        let mut skipped = 0;
        for seg in decoded.split('/') {
            match seg {
                "" | "." => {}
                ".." => return Err(SiteError::BadPath),
                // Windows would treat "a:b", "a." and "a " specially (streams,
                // trimmed names); refuse them everywhere so both behave alike.
                s if s.contains(':') || s.ends_with('.') || s.ends_with(' ') => {
                    return Err(SiteError::NotFound)
                }
                s if s.starts_with('.') => return Err(SiteError::NotFound),
                _ if skipped < skip => skipped += 1,
                s => {
                    if !key.is_empty() {
                        key.push('/');
                    }
                    key.push_str(s);
                }
            }
        }
        if skipped < skip {
            return Err(SiteError::NotFound);
        }
        if trailing_slash {
            key.push('/');
        }
        Ok(SitePath {
            key,
            trailing_slash,
        })
    }

    /// The decoded segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.key.split('/').filter(|s| !s.is_empty())
    }

    /// No segment: the site's (or the prefix's) root.
    pub fn is_root(&self) -> bool {
        self.segments().next().is_none()
    }

    /// The cache key: the segments joined with `/`, plus a final `/` for a
    /// directory URL.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// `char::is_control` (C0, DEL, C1) or a backslash anywhere. Request paths
/// are ASCII nearly always: then one pass over the bytes decides, folded
/// without an early exit so that it is vectorised.
fn has_control_or_backslash(s: &str) -> bool {
    let (ascii_special, non_ascii) = s.bytes().fold((false, false), |(special, high), b| {
        (
            special | (b < 0x20) | (b == 0x7f) | (b == b'\\'),
            high | (b >= 0x80),
        )
    });
    ascii_special || (non_ascii && s.chars().any(|c| c.is_control()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_splits() {
        let p = SitePath::parse("/a/b%20c/", 0).unwrap();
        assert_eq!(p.segments().collect::<Vec<_>>(), ["a", "b c"]);
        assert!(p.trailing_slash);
        assert_eq!(p.key(), "a/b c/");
        let p = SitePath::parse("//app/./x.txt", 1).unwrap();
        assert_eq!(p.segments().collect::<Vec<_>>(), ["x.txt"]);
        assert_eq!(p.key(), "x.txt");
        let p = SitePath::parse("/app/", 1).unwrap();
        assert!(p.is_root());
        assert_eq!(p.key(), "/");
        let p = SitePath::parse("/caf%c3%a9", 0).unwrap();
        assert_eq!(p.key(), "café");
        assert!(SitePath::parse("/", 0).is_ok_and(|p| p.is_root() && p.key() == "/"));
        assert!(matches!(
            SitePath::parse("/app", 2),
            Err(SiteError::NotFound)
        ));
    }

    #[test]
    fn refuses_traversal_and_dotfiles() {
        for raw in [
            "/../x",
            "/a/%2e%2e/x",
            "/a%2f..%2fx",
            "/a\\x",
            "/%00",
            "/a%7f",
            "/a%c2%85b",
            "/%c0%ae%c0%ae/x",
        ] {
            assert!(
                matches!(SitePath::parse(raw, 0), Err(SiteError::BadPath)),
                "{raw}"
            );
        }
        for raw in ["/.git/config", "/.htaccess", "/a/.env"] {
            assert!(
                matches!(SitePath::parse(raw, 0), Err(SiteError::NotFound)),
                "{raw}"
            );
        }
    }
}
