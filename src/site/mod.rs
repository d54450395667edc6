//! A static site: files from its folder (the built-in site's `public_dir`,
//! or a `[site:NAME]`'s) and, through `cgi`, scripts in it. Each site is one
//! registration of its URL prefixes, so HTTP.sys's precedence decides
//! between sites and applications.
//!
//! The handler is a straight chain: redirects (`redirects`) → decode the
//! path → a CGI script on the path? run it (see `cgi`) → resolve the file
//! (a folder without `index.html`: `listing`) → method → conditional
//! request → range → body; a failure becomes the error answer (with the
//! site's own page, `error_pages`); every answer gets the site's headers
//! (`headers`).

pub mod cgi;
mod compressed;
mod error_pages;
pub mod files;
mod headers;
mod listing;
pub mod path;
mod redirects;

use std::io;
use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::StreamBody;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::body::{Body, RequestBody};
use crate::compression::CompressConfig;
use crate::config::{Settings, SiteConfig};
use crate::conn::ConnInfo;
use crate::headers::{as_str, RequestFields, SERVER};
use cgi::{Cgi, CgiError, ScriptTarget};
use compressed::Coding;
use files::{AnswerFields, FileEntry, FileResolver, Representation, Resolved};
use path::SitePath;

/// Why the site could not answer with the file.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("no such file")]
    NotFound,
    #[error("the request path is not valid")]
    BadPath,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("range not satisfiable")]
    RangeNotSatisfiable { len: u64 },
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("CGI script: {0}")]
    Cgi(#[from] CgiError),
}

/// Extensions whose files are programs: never sent as source, even when no
/// `[cgi]` runner is configured for them.
const SCRIPT_EXTENSIONS: &[&str] = &[
    "cgi", "pl", "py", "php", "rb", "sh", "bash", "asp", "aspx", "jsp", "exe", "bat", "cmd", "ps1",
    "fcgi",
];

/// Fields a file's answer usually ends up with: its own nine or ten, the
/// site's security headers and HSTS, `Alt-Svc`, and a few `header.NAME`s.
const FILE_ANSWER_FIELDS: usize = 16;

static ACCEPT_RANGES: HeaderValue = HeaderValue::from_static("bytes");
static VARY_AE: HeaderValue = HeaderValue::from_static("Accept-Encoding");

/// The request parts the site needs (only scripts read the request body).
pub struct SiteRequest<'a> {
    pub method: &'a Method,
    /// The URL path as received (percent-encoded).
    pub raw_path: &'a str,
    pub query: Option<&'a str>,
    pub headers: RequestFields<'a>,
    /// Segments of the registered prefix's path, dropped before the lookup.
    pub prefix_segments: usize,
    pub conn: &'a ConnInfo,
    /// The user a password-protected prefix let through (`REMOTE_USER`).
    pub remote_user: Option<&'a str>,
}

pub struct Site {
    name: String,
    files: FileResolver,
    cgi: Cgi,
    listing: bool,
    redirects: redirects::Redirects,
    headers: headers::SiteHeaders,
    error_pages: error_pages::ErrorPages,
    /// `compress=` / `compress_level=` (see `compressed`).
    compress: CompressConfig,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("name", &self.name)
            .field("root", &self.files.root())
            .finish_non_exhaustive()
    }
}

impl Site {
    /// The site `config` describes, running scripts as `[cgi]` says.
    pub fn new(config: &SiteConfig, settings: &Settings) -> io::Result<Site> {
        // Checked here, where the folder is needed: the store's commands
        // load the same settings and must work without it.
        if !config.public_dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                // The caller's message names the key and the path.
                "the folder does not exist; create it or point public_dir at your site's folder",
            ));
        }
        let files = FileResolver::new(&config.public_dir)?;
        let cgi = Cgi::new(settings, files.root());
        let options = &config.options;
        Ok(Site {
            name: config.name.clone(),
            cgi,
            listing: options.listing,
            redirects: redirects::Redirects::new(options, &config.prefixes),
            headers: headers::SiteHeaders::new(options),
            error_pages: error_pages::ErrorPages::new(&options.error_pages),
            compress: options.compress.clone(),
            files,
        })
    }

    pub fn root(&self) -> &Path {
        self.files.root()
    }

    /// The site's name (`default` for the built-in one).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Answers a request, or says why it cannot: the caller turns the
    /// error into the answer (the one module that does, `crate::errors`)
    /// and gives it to [`Site::error_page`]. The body is only read by
    /// scripts (CGI).
    pub async fn serve(
        &self,
        req: &SiteRequest<'_>,
        body: RequestBody,
    ) -> Result<Response<Body>, SiteError> {
        match self.redirects.answer(req) {
            Some(res) => Ok(res),
            None => self.serve_path(req, body).await,
        }
    }

    /// An error answer of this site with the site's own page for its
    /// status (`error_page.CODE`), when it has one.
    pub async fn error_page(&self, res: Response<Body>) -> Response<Body> {
        self.error_pages.apply(res, &self.files).await
    }

    /// Adds the site's headers to one of its answers (`https`: it goes out
    /// over HTTPS, where HSTS belongs).
    pub fn finish(&self, res: &mut Response<Body>, https: bool) {
        self.headers.apply(res, https);
    }

    async fn serve_path(
        &self,
        req: &SiteRequest<'_>,
        body: RequestBody,
    ) -> Result<Response<Body>, SiteError> {
        let path = SitePath::parse(req.raw_path, req.prefix_segments)?;
        if let Some(script) = self.find_script(req, &path).await? {
            let mut res = self.cgi.run(req, &script, body).await?;
            self.compress_answer(req, &mut res);
            return Ok(res);
        }
        let resolved = self.files.resolve(&path).await?;
        let file = match &*resolved {
            Resolved::Directory if path.trailing_slash && self.listing => {
                let mut res = listing::answer(&self.files, &self.cgi, &path, req).await?;
                self.compress_answer(req, &mut res);
                return Ok(res);
            }
            Resolved::Directory if path.trailing_slash => return Err(SiteError::NotFound),
            Resolved::Directory => return Ok(redirect_to_slash(req)),
            Resolved::File(file) => file,
        };
        let FileEntry {
            plain,
            content_type,
            extension,
            ..
        } = &**file;
        if SCRIPT_EXTENSIONS.contains(&extension.as_str()) {
            return Err(SiteError::NotFound);
        }
        let head = match *req.method {
            Method::GET => false,
            Method::HEAD => true,
            _ => return Err(SiteError::MethodNotAllowed { allow: "GET, HEAD" }),
        };
        let policy = self.headers.cache_control(extension, content_type);
        let chosen = self.choose_encoding(req.headers, file, policy.as_ref());
        let (repr, encoding) = match chosen.coding {
            Coding::Identity => (plain, None),
            Coding::Sibling(r, enc) => (r, Some(enc)),
            Coding::OnTheFly(enc) => {
                return self
                    .serve_compressed(req, &path, &resolved, file, enc, policy, head)
                    .await
            }
        };

        let answer = FileAnswer {
            repr,
            content_type,
            cache_control: policy,
            vary: chosen.vary,
            encoding,
        };
        let mut res = Response::new(Body::empty());
        if not_modified(req.headers, &repr.etag, repr.modified) {
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            *res.headers_mut() = answer.fields(Part::NotModified);
            return Ok(res);
        }
        let (start, end) = match requested_range(req.headers, repr)? {
            Some((first, last)) => {
                *res.status_mut() = StatusCode::PARTIAL_CONTENT;
                *res.headers_mut() = answer.fields(Part::Range { first, last });
                (first, last + 1)
            }
            None if encoding.is_none() => {
                *res.headers_mut() = answer.plain_fields(file);
                (0, repr.len)
            }
            None => {
                *res.headers_mut() = answer.fields(Part::Whole);
                (0, repr.len)
            }
        };
        if head || start == end {
            return Ok(res);
        }
        *res.body_mut() = match &repr.data {
            Some(data) => Body::full(slice(data, start, end)),
            None => file_body(&repr.path, start, end).await?,
        };
        Ok(res)
    }
}

impl Site {
    /// The CGI script the path names, if any (see `cgi` for the rules).
    async fn find_script(
        &self,
        req: &SiteRequest<'_>,
        path: &SitePath,
    ) -> Result<Option<ScriptTarget>, SiteError> {
        if !self.cgi.enabled() {
            return Ok(None);
        }
        let mut extensions = Vec::new();
        let candidates: Vec<usize> = path
            .segments()
            .enumerate()
            .filter_map(|(i, seg)| {
                let ext = self.cgi.script_extension(seg)?;
                extensions.push(ext);
                Some(i)
            })
            .collect();
        if candidates.is_empty() {
            return Ok(None);
        }
        let Some(found) = self.files.find_script(path, candidates.clone()).await? else {
            return Ok(None);
        };
        let Some(extension) = candidates
            .iter()
            .position(|&i| i + 1 == found.segments)
            .and_then(|k| extensions.get(k).cloned())
        else {
            return Ok(None);
        };
        // SCRIPT_NAME includes the registered prefix's segments.
        let full = SitePath::parse(req.raw_path, 0)?;
        let named = req.prefix_segments + found.segments;
        let script_name = format!(
            "/{}",
            full.segments().take(named).collect::<Vec<_>>().join("/")
        );
        let rest = path.segments().skip(found.segments);
        let mut path_info = String::new();
        for seg in rest {
            path_info.push('/');
            path_info.push_str(seg);
        }
        if path.trailing_slash {
            path_info.push('/');
        }
        Ok(Some(ScriptTarget {
            file: found.file,
            extension,
            script_name,
            path_info,
            executable: found.executable,
        }))
    }
}

fn slice(data: &Bytes, start: u64, end: u64) -> Bytes {
    let len = data.len();
    let s = usize::try_from(start).unwrap_or(len).min(len);
    let e = usize::try_from(end).unwrap_or(len).min(len);
    data.slice(s..e)
}

fn redirect_to_slash(req: &SiteRequest<'_>) -> Response<Body> {
    let mut location = format!("{}/", req.raw_path);
    if let Some(q) = req.query {
        location.push('?');
        location.push_str(q);
    }
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::MOVED_PERMANENTLY;
    res.headers_mut().insert(header::SERVER, SERVER.clone());
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// What a file's answer says about it, and in which coding.
struct FileAnswer<'f> {
    repr: &'f Representation,
    content_type: &'f HeaderValue,
    cache_control: Option<HeaderValue>,
    vary: bool,
    encoding: Option<&'static str>,
}

/// Which answer [`FileAnswer::fields`] is for.
enum Part {
    NotModified,
    Whole,
    /// Bytes `first..=last`.
    Range {
        first: u64,
        last: u64,
    },
}

impl FileAnswer<'_> {
    /// The answer's header fields, in the order they go out.
    fn fields(&self, part: Part) -> HeaderMap {
        // Room for this answer's fields and the site's from the start:
        // growing the map as they are added (and rehashing it) cost more
        // than the inserts themselves (bench/instructions.sh).
        let mut h = HeaderMap::with_capacity(FILE_ANSWER_FIELDS);
        h.insert(header::SERVER, SERVER.clone());
        h.insert(header::ETAG, self.repr.etag.clone());
        h.insert(header::LAST_MODIFIED, self.repr.last_modified.clone());
        if self.vary {
            h.insert(header::VARY, VARY_AE.clone());
        }
        // On 304 too: it must carry what the 200 would (RFC 9111 §4.3.4).
        if let Some(policy) = &self.cache_control {
            h.insert(header::CACHE_CONTROL, policy.clone());
        }
        let len = match part {
            Part::NotModified => return h,
            Part::Whole => self.repr.len,
            Part::Range { first, last } => last + 1 - first,
        };
        h.insert(header::CONTENT_TYPE, self.content_type.clone());
        h.insert(header::ACCEPT_RANGES, ACCEPT_RANGES.clone());
        if let Some(enc) = self.encoding {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
        }
        if let Part::Range { first, last } = part {
            let range = format!("bytes {first}-{last}/{}", self.repr.len);
            if let Ok(v) = HeaderValue::from_str(&range) {
                h.insert(header::CONTENT_RANGE, v);
            }
        }
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        h
    }

    /// [`Part::Whole`]'s fields for the plain file: made once per cached
    /// file and cloned. A clone does no hashing and formats no length:
    /// about 1,000 instructions less per request than making them
    /// (bench/instructions.sh, 16,198 → 15,192).
    fn plain_fields(&self, file: &FileEntry) -> HeaderMap {
        let made = file.answer_fields.get_or_init(|| AnswerFields {
            cache_control: self.cache_control.clone(),
            vary: self.vary,
            fields: self.fields(Part::Whole),
        });
        if made.cache_control == self.cache_control && made.vary == self.vary {
            made.fields.clone()
        } else {
            self.fields(Part::Whole)
        }
    }
}

fn etag_matches(list: &str, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or("");
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == ours)
}

fn not_modified(headers: RequestFields<'_>, etag: &HeaderValue, modified: SystemTime) -> bool {
    if let Some(inm) = headers.get(&header::IF_NONE_MATCH) {
        return etag_matches(as_str(inm).unwrap_or(""), etag);
    }
    let Some(ims) = headers
        .get_str(&header::IF_MODIFIED_SINCE)
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    whole_seconds(modified) <= whole_seconds(ims)
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A single `bytes=` range, inclusive bounds. Several ranges are answered
/// with the whole file (allowed by RFC 9110 and what most servers do).
fn requested_range(
    headers: RequestFields<'_>,
    repr: &Representation,
) -> Result<Option<(u64, u64)>, SiteError> {
    let Some(range) = headers.get_str(&header::RANGE) else {
        return Ok(None);
    };
    if let Some(if_range) = headers.get_str(&header::IF_RANGE) {
        let date_ok = httpdate::parse_http_date(if_range)
            .map(|d| whole_seconds(d) == whole_seconds(repr.modified))
            .unwrap_or(false);
        if if_range != repr.etag.to_str().unwrap_or("") && !date_ok {
            return Ok(None);
        }
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let len = repr.len;
    let unsatisfiable = SiteError::RangeNotSatisfiable { len };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    let (start, end) = match (first.is_empty(), last.is_empty()) {
        (true, false) => {
            let Some(n) = parse(last) else {
                return Ok(None);
            };
            if n == 0 || len == 0 {
                return Err(unsatisfiable);
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, _) => {
            let Some(s) = parse(first) else {
                return Ok(None);
            };
            let e = if last.is_empty() {
                len.saturating_sub(1)
            } else {
                match parse(last) {
                    Some(e) if e >= s => e.min(len.saturating_sub(1)),
                    _ => return Ok(None),
                }
            };
            if s >= len {
                return Err(unsatisfiable);
            }
            (s, e)
        }
        (true, true) => return Ok(None),
    };
    Ok(Some((start, end)))
}

/// Streams `[start, end)` of a large file in 256 KiB reads.
async fn file_body(path: &Path, start: u64, end: u64) -> Result<Body, SiteError> {
    const CHUNK: u64 = 256 * 1024;
    let mut file = tokio::fs::File::open(path).await?;
    if start > 0 {
        file.seek(io::SeekFrom::Start(start)).await?;
    }
    let chunks = stream::unfold((file, end - start), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left.min(CHUNK)).unwrap_or(CHUNK as usize);
        let mut buf = bytes::BytesMut::with_capacity(want);
        match file.read_buf(&mut buf).await {
            Ok(0) => Some((
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file became shorter while it was sent",
                )),
                (file, 0),
            )),
            Ok(n) => Some((Ok(Frame::data(buf.freeze())), (file, left - n as u64))),
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(Body::stream(StreamBody::new(chunks)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> FileEntry {
        FileEntry {
            plain: Representation {
                path: "index.html".into(),
                len: 5,
                etag: HeaderValue::from_static("\"5-1\""),
                modified: SystemTime::UNIX_EPOCH,
                last_modified: HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
                data: None,
            },
            content_type: HeaderValue::from_static("text/html"),
            extension: "html".into(),
            zstd: None,
            brotli: None,
            gzip: None,
            compressed: Default::default(),
            answer_fields: std::sync::OnceLock::new(),
        }
    }

    fn answer<'f>(file: &'f FileEntry, policy: &'static str, vary: bool) -> FileAnswer<'f> {
        FileAnswer {
            repr: &file.plain,
            content_type: &file.content_type,
            cache_control: Some(HeaderValue::from_static(policy)),
            vary,
            encoding: None,
        }
    }

    fn listed(map: &HeaderMap) -> Vec<(String, String)> {
        map.iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_owned()))
            .collect()
    }

    /// The kept field set is the one `fields` makes, in the same order, and
    /// it is not used for an answer made with other settings.
    #[test]
    fn kept_plain_fields_are_the_made_ones_for_the_same_settings_only() {
        let file = entry();
        let a = answer(&file, "no-cache", false);
        let made = listed(&a.fields(Part::Whole));
        assert_eq!(listed(&a.plain_fields(&file)), made);
        assert_eq!(
            listed(&a.plain_fields(&file)),
            made,
            "cloned from the kept set"
        );
        assert!(made.contains(&("content-length".into(), "5".into())));
        let b = answer(&file, "max-age=60", true);
        let other = listed(&b.plain_fields(&file));
        assert_eq!(other, listed(&b.fields(Part::Whole)));
        assert!(other.contains(&("cache-control".into(), "max-age=60".into())));
        assert!(other.contains(&("vary".into(), "Accept-Encoding".into())));
        let range = listed(&a.fields(Part::Range { first: 1, last: 2 }));
        assert!(range.contains(&("content-range".into(), "bytes 1-2/5".into())));
        assert!(range.contains(&("content-length".into(), "2".into())));
        assert_eq!(listed(&a.fields(Part::NotModified)).len(), 4);
    }
}
