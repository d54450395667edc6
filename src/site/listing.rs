//! Directory listings (`listing=yes`): a folder without `index.html` is
//! answered with a page of its entries, or JSON for `Accept: application/json`.
//!
//! What is listed: the folder's files and subfolders, folders first (shown
//! with a trailing `/`), sorted by `?sort=name|size|time&order=asc|desc`
//! (default: name, ascending; names compare case-insensitively). Left out
//! is what the site would not serve anyway: dotfiles, script sources (an
//! extension in `SCRIPT_EXTENSIONS` or one `[cgi]` runs, also when a symlink
//! points at such a file), symlinks that lead outside the site's folder or
//! nowhere, and anything that is neither a file nor a folder (sockets,
//! FIFOs). The folder itself is found through [`FileResolver::directory`],
//! which applies the same canonical-root check as serving a file.
//!
//! Names: shown HTML-escaped; linked relative to the folder, percent-encoded
//! byte by byte (everything but `A-Z a-z 0-9 - . _ ~`, so `%`, `#`, `?`,
//! quotes and `:` cannot change what the link means). A name that is not
//! UTF-8 (possible on Linux) is shown with U+FFFD for the bad bytes and
//! linked with its real bytes percent-encoded: the link names the right
//! file, but the path decoder (`path.rs`) refuses non-UTF-8 paths, so
//! following it answers 400. It is listed rather than hidden because the
//! listing describes the folder as it is; the same goes for the few other
//! names the decoder refuses (control characters, a backslash or `:`, a
//! trailing dot or space).
//!
//! JSON (`Accept` ranks `application/json` above `text/html`): an array in
//! the same order as the page,
//! `[{"name": "a b.txt", "href": "a%20b.txt", "type": "file", "size": 12,
//! "modified": "2024-05-01T12:34:56Z"}, {"name": "sub", "href": "sub/",
//! "type": "dir", "size": null, "modified": …}]`. `name` is the shown
//! (lossy) name, `href` the link relative to the folder, `size` bytes
//! (`null` for folders), `modified` RFC 3339 UTC (`null` when the file
//! system has no time). Both forms carry `Vary: Accept`.
//!
//! Bounded work: at most [`MAX_ENTRIES`] entries are listed and at most
//! [`MAX_SCANNED`] names are looked at, so a folder of 100,000 files costs
//! a bounded number of `stat`s and bytes per request. Which entries make
//! the cut is the order the OS returns them in; the page then says so and
//! both forms carry `Listing-Truncated: true`.
//!
//! The listing is built anew on every request (no validators, so
//! `Cache-Control: no-cache`): it should show an upload at once, and a
//! cached copy would need invalidating on every change in the folder.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Response};
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::cgi::Cgi;
use super::files::FileResolver;
use super::path::SitePath;
use super::{SiteError, SiteRequest, SCRIPT_EXTENSIONS};
use crate::body::Body;
use crate::headers::{as_str, RequestFields, SERVER};

/// Entries listed at most; more and the listing says it was cut.
pub(super) const MAX_ENTRIES: usize = 10_000;
/// Directory entries looked at at most, counting those left out (dotfiles,
/// outside links…), so that a folder full of hidden names is bounded too.
pub(super) const MAX_SCANNED: usize = 2 * MAX_ENTRIES;

/// Everything but RFC 3986's unreserved characters is encoded: a name may
/// hold `%`, `#`, `?`, `/`-like or quote characters that would otherwise
/// change the link's meaning (or end the attribute it is in).
const NAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Nothing may run or load on the page: the inline style is all it needs.
static CSP: HeaderValue = HeaderValue::from_static(
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
);
static HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
static JSON: HeaderValue = HeaderValue::from_static("application/json");
static VARY_ACCEPT: HeaderValue = HeaderValue::from_static("Accept");
static NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
static TRUNCATED: HeaderName = HeaderName::from_static("listing-truncated");

/// The listing of the folder `path` names.
pub(super) async fn answer(
    files: &FileResolver,
    cgi: &Cgi,
    path: &SitePath,
    req: &SiteRequest<'_>,
) -> Result<Response<Body>, SiteError> {
    let head = match *req.method {
        Method::GET => false,
        Method::HEAD => true,
        _ => return Err(SiteError::MethodNotAllowed { allow: "GET, HEAD" }),
    };
    let dir = files.directory(path).await?;
    let root = files.root().to_path_buf();
    let folder = tokio::task::spawn_blocking(move || read_folder(&root, &dir))
        .await
        .map_err(|e| SiteError::Io(io::Error::other(e)))?
        .map_err(not_found_or)?;
    let Folder {
        mut entries,
        truncated,
    } = folder;
    // Done here rather than while reading: the CGI runners cannot move to
    // the blocking pool. Scripts counted against the cap make the listing
    // at most that much shorter, never longer.
    entries.retain(|e| e.dir || !is_script(&e.decides_type, cgi));
    let (key, order) = sort_from_query(req.query);
    sort(&mut entries, key, order);

    let json = wants_json(req.headers);
    let (body, content_type) = if json {
        (to_json(&entries)?, &JSON)
    } else {
        let title = percent_decode_str(req.raw_path).decode_utf8_lossy();
        let page = to_html(&title, &entries, truncated, !path.is_root(), key, order);
        (page.into_bytes(), &HTML)
    };

    let mut res = Response::new(Body::empty());
    let h = res.headers_mut();
    h.insert(header::SERVER, SERVER.clone());
    h.insert(header::CONTENT_TYPE, content_type.clone());
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    h.insert(header::VARY, VARY_ACCEPT.clone());
    h.insert(header::CACHE_CONTROL, NO_CACHE.clone());
    if !json {
        h.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    }
    if truncated {
        h.insert(TRUNCATED.clone(), HeaderValue::from_static("true"));
    }
    if !head {
        *res.body_mut() = Body::full(body);
    }
    Ok(res)
}

/// One listed entry.
#[derive(Debug)]
struct Entry {
    /// Shown name (lossy UTF-8), without the folder's `/`.
    name: String,
    /// Lowercase `name`, the sort key (computed once, not per comparison).
    fold: String,
    /// Link relative to the folder: the raw name bytes percent-encoded,
    /// plus `/` for a folder.
    href: String,
    dir: bool,
    /// Bytes; 0 for a folder.
    size: u64,
    modified: Option<SystemTime>,
    /// The name whose extension says whether this is a script: the entry's
    /// own, or for a symlink the file it points at (the server refuses to
    /// send a link to a script, so the listing must not offer it).
    decides_type: String,
}

struct Folder {
    entries: Vec<Entry>,
    truncated: bool,
}

/// Reads `dir` (canonical, inside the canonical `root`) on the blocking
/// pool. An entry that vanishes or cannot be read while listing is left
/// out rather than failing the whole page.
fn read_folder(root: &Path, dir: &Path) -> io::Result<Folder> {
    let mut entries = Vec::new();
    let mut truncated = false;
    for (seen, item) in std::fs::read_dir(dir)?.enumerate() {
        if seen >= MAX_SCANNED || entries.len() >= MAX_ENTRIES {
            truncated = true;
            break;
        }
        let Ok(item) = item else { continue };
        let raw = item.file_name();
        let bytes = name_bytes(&raw);
        if bytes.first() == Some(&b'.') {
            continue;
        }
        let Ok(file_type) = item.file_type() else {
            continue;
        };
        let name = raw.to_string_lossy().into_owned();
        let (meta, decides_type) = if file_type.is_symlink() {
            match follow_link(root, &item.path()) {
                Some((meta, target)) => (meta, target),
                None => continue,
            }
        } else {
            // Not a link: lstat (what DirEntry::metadata does) is the stat.
            match item.metadata() {
                Ok(meta) => (meta, name.clone()),
                Err(_) => continue,
            }
        };
        let is_dir = meta.is_dir();
        if !is_dir && !meta.is_file() {
            continue;
        }
        let mut href = percent_encode(&bytes, NAME).to_string();
        if is_dir {
            href.push('/');
        }
        entries.push(Entry {
            fold: name.to_lowercase(),
            name,
            href,
            dir: is_dir,
            size: if is_dir { 0 } else { meta.len() },
            modified: meta.modified().ok(),
            decides_type,
        });
    }
    Ok(Folder { entries, truncated })
}

/// Where a symlink leads, if that is inside `root`: its metadata and the
/// target's file name. Links outside (or broken) are not listed: the
/// server would not follow them either.
fn follow_link(root: &Path, link: &Path) -> Option<(std::fs::Metadata, String)> {
    let real: PathBuf = link.canonicalize().ok()?;
    if !real.starts_with(root) {
        return None;
    }
    let meta = real.metadata().ok()?;
    let target = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Some((meta, target))
}

/// The bytes of a name as the link carries them: the real bytes on Unix
/// (which may not be UTF-8), UTF-8 elsewhere (Windows names are UTF-16;
/// the rare unpaired surrogate becomes U+FFFD).
#[cfg(unix)]
fn name_bytes(name: &OsStr) -> Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    Cow::Borrowed(name.as_bytes())
}

#[cfg(not(unix))]
fn name_bytes(name: &OsStr) -> Cow<'_, [u8]> {
    match name.to_string_lossy() {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// A file the site never sends as source: the same extension rule as
/// serving (`SCRIPT_EXTENSIONS`, lowercase) plus the configured CGI ones.
fn is_script(name: &str, cgi: &Cgi) -> bool {
    let extension = Path::new(name)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    SCRIPT_EXTENSIONS.contains(&extension.as_str()) || cgi.script_extension(name).is_some()
}

fn not_found_or(e: io::Error) -> SiteError {
    match e.kind() {
        // Removed or made unreadable between the lookup and the read.
        io::ErrorKind::NotFound
        | io::ErrorKind::NotADirectory
        | io::ErrorKind::PermissionDenied => SiteError::NotFound,
        _ => SiteError::Io(e),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Name,
    Size,
    Time,
}

impl SortKey {
    fn as_str(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Size => "size",
            SortKey::Time => "time",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Asc,
    Desc,
}

impl Order {
    fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// `sort=` and `order=` from the query; anything else (unknown values,
/// other parameters) is ignored rather than refused, as a listing is
/// often reached by hand-edited URLs.
fn sort_from_query(query: Option<&str>) -> (SortKey, Order) {
    let mut key = SortKey::Name;
    let mut order = Order::Asc;
    for pair in query.unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("sort", "name")) => key = SortKey::Name,
            Some(("sort", "size")) => key = SortKey::Size,
            Some(("sort", "time")) => key = SortKey::Time,
            Some(("order", "asc")) => order = Order::Asc,
            Some(("order", "desc")) => order = Order::Desc,
            _ => {}
        }
    }
    (key, order)
}

/// Folders first whatever the order; within each group by `key`, ties by
/// name, so the order is the same on every request.
fn sort(entries: &mut [Entry], key: SortKey, order: Order) {
    entries.sort_by(|a, b| {
        let by_name = || a.fold.cmp(&b.fold).then_with(|| a.href.cmp(&b.href));
        let within = match key {
            SortKey::Name => by_name(),
            SortKey::Size => a.size.cmp(&b.size).then_with(by_name),
            SortKey::Time => a.modified.cmp(&b.modified).then_with(by_name),
        };
        let within = match order {
            Order::Asc => within,
            Order::Desc => within.reverse(),
        };
        b.dir.cmp(&a.dir).then(within)
    });
}

/// Whether `Accept` ranks `application/json` above `text/html`. Each is
/// given the q of the most specific range that matches it (RFC 9110
/// §12.5.1: `application/json` over `application/*` over `*/*`); a tie,
/// as with `*/*` or no `Accept` at all, is HTML.
fn wants_json(headers: RequestFields<'_>) -> bool {
    let mut json: Option<(u8, f32)> = None;
    let mut html: Option<(u8, f32)> = None;
    for value in headers.get_all(&header::ACCEPT) {
        let Some(value) = as_str(value) else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let Some((ty, sub)) = range.split_once('/') else {
                continue;
            };
            let q = parts
                .find_map(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="))
                })
                .and_then(|q| q.trim().parse::<f32>().ok())
                .filter(|q| q.is_finite())
                .map_or(1.0, |q| q.clamp(0.0, 1.0));
            rank(&mut json, ty, sub, ("application", "json"), q);
            rank(&mut html, ty, sub, ("text", "html"), q);
        }
    }
    let q = |r: Option<(u8, f32)>| r.map_or(0.0, |(_, q)| q);
    q(json) > 0.0 && q(json) > q(html)
}

/// Keeps in `best` the (specificity, q) of the most specific range so far
/// that matches `want`.
fn rank(best: &mut Option<(u8, f32)>, ty: &str, sub: &str, want: (&str, &str), q: f32) {
    let specificity = match (ty, sub) {
        (t, s) if t == want.0 && s == want.1 => 3,
        (t, "*") if t == want.0 => 2,
        ("*", "*") => 1,
        _ => return,
    };
    if best.is_none_or(|(s, _)| specificity > s) {
        *best = Some((specificity, q));
    }
}

/// One JSON entry; a struct rather than `json!` so the keys keep this
/// order (name first) for people reading the output.
#[derive(serde::Serialize)]
struct JsonEntry<'a> {
    name: &'a str,
    href: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    size: Option<u64>,
    modified: Option<String>,
}

fn to_json(entries: &[Entry]) -> Result<Vec<u8>, SiteError> {
    let list: Vec<JsonEntry<'_>> = entries
        .iter()
        .map(|e| JsonEntry {
            name: &e.name,
            href: &e.href,
            kind: if e.dir { "dir" } else { "file" },
            size: (!e.dir).then_some(e.size),
            modified: e.modified.map(rfc3339),
        })
        .collect();
    serde_json::to_vec(&list).map_err(|e| SiteError::Io(io::Error::other(e)))
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Small and self-contained: system fonts, no images, readable from a
/// phone's width up, dark when the device is.
const STYLE: &str = "body{font-family:system-ui,-apple-system,sans-serif;margin:1em auto;max-width:60em;padding:0 .75em;line-height:1.4;color:#222;background:#fff}\
h1{font-size:1.2em;word-break:break-all}\
table{border-collapse:collapse;width:100%}\
th,td{padding:.45em .4em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
td:first-child{word-break:break-all}\
.r{text-align:right;white-space:nowrap}\
a{color:#0645ad;text-decoration:none}a:hover{text-decoration:underline}\
th a{color:inherit}\
@media(max-width:30em){body{font-size:.95em}th,td{padding:.5em .25em}}\
@media(prefers-color-scheme:dark){body{color:#ddd;background:#111}a{color:#8ab4f8}th,td{border-color:#333}}";

fn to_html(
    title: &str,
    entries: &[Entry],
    truncated: bool,
    parent: bool,
    key: SortKey,
    order: Order,
) -> String {
    let title = escape(title);
    // About 200 bytes a row; reserving once avoids regrowing a big page.
    let mut out = String::with_capacity(1024 + entries.len() * 200);
    // `write!` to a String cannot fail; the results are ignored for that.
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>Index of {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
<h1>Index of {title}</h1>\n<table>\n<thead><tr>"
    );
    for (column, label, class) in [
        (SortKey::Name, "Name", ""),
        (SortKey::Size, "Size", " class=\"r\""),
        (SortKey::Time, "Modified (UTC)", " class=\"r\""),
    ] {
        // The current column's link flips the order; another starts at asc.
        let (next, mark, aria) = if column == key {
            match order {
                Order::Asc => (Order::Desc, " ▲", " aria-sort=\"ascending\""),
                Order::Desc => (Order::Asc, " ▼", " aria-sort=\"descending\""),
            }
        } else {
            (Order::Asc, "", "")
        };
        let _ = write!(
            out,
            "<th{class}{aria}><a href=\"?sort={}&amp;order={}\">{label}{mark}</a></th>",
            column.as_str(),
            next.as_str()
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    if parent {
        out.push_str(
            "<tr><td><a href=\"../\">../ (parent folder)</a></td><td></td><td></td></tr>\n",
        );
    }
    for e in entries {
        let name = escape(&e.name);
        let slash = if e.dir { "/" } else { "" };
        let _ = write!(out, "<tr><td><a href=\"{}\">{name}{slash}</a></td>", e.href);
        if e.dir {
            out.push_str("<td class=\"r\">—</td>");
        } else {
            let unit = if e.size == 1 { "byte" } else { "bytes" };
            let _ = write!(
                out,
                "<td class=\"r\" title=\"{} {unit}\">{}</td>",
                e.size,
                human_size(e.size)
            );
        }
        match e.modified.map(DateTime::<Utc>::from) {
            Some(t) => {
                let _ = writeln!(
                    out,
                    "<td class=\"r\"><time datetime=\"{}\">{}</time></td></tr>",
                    t.to_rfc3339_opts(SecondsFormat::Secs, true),
                    t.format("%Y-%m-%d %H:%M")
                );
            }
            None => out.push_str("<td class=\"r\"></td></tr>\n"),
        }
    }
    out.push_str("</tbody>\n</table>\n");
    if entries.is_empty() {
        out.push_str("<p>This folder is empty.</p>\n");
    }
    if truncated {
        let _ = writeln!(
            out,
            "<p><strong>This folder has more entries than a listing shows; only {} are listed here.</strong></p>",
            entries.len()
        );
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Text for HTML, in element content and in quoted attributes alike.
fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `1.5 KiB`, `12 MiB`: binary units, one decimal below 10.
fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Precision lost in the float is far below what one decimal shows.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = "KiB";
    for next in ["MiB", "GiB", "TiB", "PiB", "EiB"] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    if value < 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants(accept: &str) -> bool {
        let mut h = http::HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        wants_json(RequestFields::Map(&h))
    }

    #[test]
    fn json_only_when_ranked_above_html() {
        assert!(!wants_json(RequestFields::Parsed(&[])));
        assert!(wants("application/json"));
        assert!(wants("text/html;q=0.5, application/json"));
        assert!(wants("application/*"));
        assert!(!wants("*/*"));
        assert!(!wants(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!wants("application/json;q=0, */*"));
        assert!(!wants("application/json;q=0.4, text/html"));
        assert!(!wants("application/json, text/html"));
    }

    #[test]
    fn query_picks_sort_and_ignores_the_rest() {
        assert_eq!(sort_from_query(None), (SortKey::Name, Order::Asc));
        assert_eq!(
            sort_from_query(Some("sort=size&order=desc")),
            (SortKey::Size, Order::Desc)
        );
        assert_eq!(
            sort_from_query(Some("x=1&sort=bogus&order=up&sort=time")),
            (SortKey::Time, Order::Asc)
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(20 * 1024 * 1024), "20 MiB");
        assert_eq!(human_size(u64::MAX), "16 EiB");
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(matches!(escape("plain.txt"), Cow::Borrowed(_)));
    }

    #[test]
    fn links_encode_everything_but_unreserved() {
        let enc = |b: &[u8]| percent_encode(b, NAME).to_string();
        assert_eq!(enc(b"a b.txt"), "a%20b.txt");
        assert_eq!(enc(b"100%.txt"), "100%25.txt");
        assert_eq!(
            enc(b"a#b?c:d\"e'f<g>.txt"),
            "a%23b%3Fc%3Ad%22e%27f%3Cg%3E.txt"
        );
        assert_eq!(enc(b"bad-\xff.txt"), "bad-%FF.txt");
        assert_eq!(enc("é~_-.".as_bytes()), "%C3%A9~_-.");
    }

    fn entry(name: &str, dir: bool, size: u64, secs: u64) -> Entry {
        Entry {
            name: name.to_owned(),
            fold: name.to_lowercase(),
            href: name.to_owned(),
            dir,
            size,
            modified: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)),
            decides_type: name.to_owned(),
        }
    }

    #[test]
    fn folders_first_then_by_key() {
        let mut list = vec![
            entry("b.txt", false, 10, 3),
            entry("A.txt", false, 30, 1),
            entry("z", true, 0, 0),
            entry("c.txt", false, 20, 2),
            entry("a", true, 0, 9),
        ];
        let names = |l: &[Entry]| l.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        sort(&mut list, SortKey::Name, Order::Asc);
        assert_eq!(names(&list), ["a", "z", "A.txt", "b.txt", "c.txt"]);
        sort(&mut list, SortKey::Size, Order::Desc);
        assert_eq!(names(&list), ["z", "a", "A.txt", "c.txt", "b.txt"]);
        sort(&mut list, SortKey::Time, Order::Asc);
        assert_eq!(names(&list), ["z", "a", "A.txt", "c.txt", "b.txt"]);
    }
}
