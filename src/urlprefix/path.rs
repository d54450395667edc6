//! Path normalisation: the one function that turns both a registration's
//! path and a request's path into the key they are compared by.
//!
//! Its own file because the request path is untrusted input: decoding, dot
//! segments and the refusals (encoded separators, control characters, `..`
//! above the root) are read and tested here in one place.

use std::borrow::Cow;

/// Why a path (of a request or of a registration) could not be normalised.
/// For a request every variant means `400 Bad Request - Invalid URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the path must start with '/'")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("the path contains a '%' that is not followed by two hexadecimal digits")]
    InvalidEscape,
    /// `%00`.
    #[error("the path contains an encoded NUL character (%00)")]
    EncodedNul,
    /// `%2F` or `%5C` (see the [`urlprefix`](crate::urlprefix)
    /// documentation for why).
    #[error("the path contains an encoded '/' or '\\' (%2F or %5C), which is refused")]
    EncodedSeparator,
    /// A control character, raw or percent-encoded.
    #[error("the path contains a control character")]
    ControlChar,
    /// The bytes after percent-decoding are not UTF-8.
    #[error("the path is not valid UTF-8 after percent-decoding")]
    InvalidUtf8,
    /// A `..` segment would climb above the root.
    #[error("the path uses '..' to go above the root")]
    AboveRoot,
    /// A raw space, `?` or `#` (the caller must strip the query first).
    #[error("the path contains a raw '{0}'")]
    UnexpectedChar(char),
}

/// Normalises a path for matching and returns its comparison key.
///
/// Used for both registration paths and request paths. `raw` is the path
/// component only (strip `?query` first; a raw `?`, `#` or space is refused).
/// Steps, in HTTP.sys order:
///
/// 1. percent-decode (`%41` → `A`); refuse an invalid escape, `%00`, encoded
///    control characters, and `%2F`/`%5C` ([`PathError::EncodedSeparator`]);
/// 2. convert `\` to `/`;
/// 3. refuse control characters and bytes that are not UTF-8 after decoding;
/// 4. remove dot segments (RFC 3986 §5.2.4, also for decoded `%2e%2e`); a `..`
///    above the root is [`PathError::AboveRoot`];
/// 5. lowercase.
///
/// Nothing else is collapsed (`//` stays). Every error means
/// `400 Bad Request - Invalid URL` for a request, `Error: 87` for a
/// registration.
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if is_normalized(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut s = normalize_path_cased(raw)?;
    if s.is_ascii() {
        s.make_ascii_lowercase();
        Ok(Cow::Owned(s))
    } else {
        Ok(Cow::Owned(s.to_lowercase()))
    }
}

/// `raw` is its own key already, as most request paths are: rooted, and
/// only lowercase letters, digits, `/ - _ ~` and dots that start no
/// segment (no escapes, backslashes, dot segments or upper case).
fn is_normalized(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    let mut prev = b'/';
    bytes.iter().all(|&b| {
        let plain = match b {
            b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'~' => true,
            b'.' => prev != b'/',
            _ => false,
        };
        prev = b;
        plain
    })
}

/// [`normalize_path`] without the final lowercasing: the decoded, dot-free
/// path with its original case, e.g. for mapping the remainder to a file.
/// Has exactly the same `/` structure as the key.
pub fn normalize_path_cased(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    match bytes.first() {
        Some(b'/') | Some(b'\\') => {}
        _ => return Err(PathError::NotAbsolute),
    }
    let mut buf = Vec::with_capacity(bytes.len());
    let mut has_dot_segment_candidate = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let out = match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_val);
                let lo = bytes.get(i + 2).copied().and_then(hex_val);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::InvalidEscape);
                };
                i += 2;
                match hi << 4 | lo {
                    0 => return Err(PathError::EncodedNul),
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    c if c < 0x20 || c == 0x7f => return Err(PathError::ControlChar),
                    c => c,
                }
            }
            b'\\' => b'/',
            b' ' | b'?' | b'#' => return Err(PathError::UnexpectedChar(b as char)),
            c if c < 0x20 || c == 0x7f => return Err(PathError::ControlChar),
            c => c,
        };
        if out == b'.' && buf.last() == Some(&b'/') {
            has_dot_segment_candidate = true;
        }
        buf.push(out);
        i += 1;
    }
    let s = String::from_utf8(buf).map_err(|_| PathError::InvalidUtf8)?;
    if !s.is_ascii() && s.chars().any(char::is_control) {
        // C1 controls (U+0080–U+009F) arrive as UTF-8, raw or encoded.
        return Err(PathError::ControlChar);
    }
    if has_dot_segment_candidate {
        remove_dot_segments(&s)
    } else {
        Ok(s)
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §5.2.4 for an absolute path (starts with `/`), except that `..`
/// above the root is an error instead of being dropped.
fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let body = path.strip_prefix('/').unwrap_or(path);
    let mut segments: Vec<&str> = Vec::new();
    let mut iter = body.split('/').peekable();
    while let Some(seg) = iter.next() {
        let last = iter.peek().is_none();
        match seg {
            "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => {
                segments.push(s);
                continue;
            }
        }
        // A trailing `.` or `..` leaves a directory: keep the trailing slash.
        if last {
            segments.push("");
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}
