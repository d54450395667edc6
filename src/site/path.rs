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

/// A request path split into decoded, checked segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePath {
    pub segments: Vec<String>,
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
        if decoded.chars().any(|c| c.is_control() || c == '\\') {
            return Err(SiteError::BadPath);
        }
        let trailing_slash = decoded.ends_with('/');
        let mut segments = Vec::new();
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
                s => segments.push(s.to_owned()),
            }
        }
        if skip > segments.len() {
            return Err(SiteError::NotFound);
        }
        segments.drain(..skip);
        Ok(SitePath {
            segments,
            trailing_slash,
        })
    }

    /// The cache key: segments joined with `/`, plus a marker for the slash.
    pub fn key(&self) -> String {
        let mut k = self.segments.join("/");
        if self.trailing_slash {
            k.push('/');
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_splits() {
        let p = SitePath::parse("/a/b%20c/", 0).unwrap();
        assert_eq!(p.segments, vec!["a", "b c"]);
        assert!(p.trailing_slash);
        let p = SitePath::parse("/app/x.txt", 1).unwrap();
        assert_eq!(p.segments, vec!["x.txt"]);
    }

    #[test]
    fn refuses_traversal_and_dotfiles() {
        for raw in [
            "/../x",
            "/a/%2e%2e/x",
            "/a%2f..%2fx",
            "/a\\x",
            "/%00",
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
