//! What the static site knows about a file: resolved path, validators,
//! content type, precompressed siblings, and for small files the bytes.
//!
//! Lookups are cached per URL path for a short time so a busy small file
//! costs no system call per request; the cache is re-validated with a fresh
//! `stat` once the entry is older than [`REVALIDATE_AFTER`], so edits in
//! `public/` show up within that time. All file-system work runs on tokio's
//! blocking pool, never on the async workers.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::HeaderValue;

use super::path::SitePath;
use super::SiteError;

/// Files up to this size are kept in memory.
const SMALL_FILE: u64 = 2 * 1024 * 1024;
/// Memory the cached file contents may use in all.
const MAX_CACHED_BYTES: usize = 64 * 1024 * 1024;
const REVALIDATE_AFTER: Duration = Duration::from_secs(1);
const MAX_ENTRIES: usize = 4096;

/// One representation of a file: the file itself or a `.br`/`.gz` sibling.
#[derive(Debug)]
pub struct Representation {
    pub path: PathBuf,
    pub len: u64,
    pub etag: HeaderValue,
    pub modified: SystemTime,
    pub last_modified: HeaderValue,
    /// The content for small files.
    pub data: Option<Bytes>,
}

/// A regular file and its precompressed siblings.
#[derive(Debug)]
pub struct FileEntry {
    pub plain: Representation,
    pub content_type: HeaderValue,
    /// File extension, lowercase, without the dot.
    pub extension: String,
    pub brotli: Option<Representation>,
    pub gzip: Option<Representation>,
}

#[derive(Debug)]
pub enum Resolved {
    File(Box<FileEntry>),
    /// A directory: the URL needs a trailing slash, or has one and the
    /// directory has no index.html.
    Directory,
}

struct CacheEntry {
    resolved: Arc<Resolved>,
    checked: Instant,
}

impl Resolved {
    /// Bytes of file content this entry keeps in memory.
    fn cached_bytes(&self) -> usize {
        match self {
            Resolved::Directory => 0,
            Resolved::File(f) => [Some(&f.plain), f.brotli.as_ref(), f.gzip.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|r| r.data.as_ref().map(Bytes::len))
                .sum(),
        }
    }
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, CacheEntry>,
    /// Sum of `cached_bytes` over the entries.
    bytes: usize,
}

/// Resolves request paths under one canonical root.
pub struct FileResolver {
    root: PathBuf,
    cache: RwLock<Cache>,
}

impl FileResolver {
    pub fn new(root: &Path) -> io::Result<FileResolver> {
        Ok(FileResolver {
            root: root.canonicalize()?,
            cache: RwLock::new(Cache::default()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub async fn resolve(&self, path: &SitePath) -> Result<Arc<Resolved>, SiteError> {
        let key = path.key();
        if let Ok(cache) = self.cache.read() {
            if let Some(e) = cache.entries.get(&key) {
                if e.checked.elapsed() < REVALIDATE_AFTER {
                    return Ok(e.resolved.clone());
                }
            }
        }
        let root = self.root.clone();
        let segments = path.segments.clone();
        let trailing = path.trailing_slash;
        let resolved =
            tokio::task::spawn_blocking(move || resolve_blocking(&root, &segments, trailing))
                .await
                .map_err(|e| SiteError::Io(io::Error::other(e)))??;
        let resolved = Arc::new(resolved);
        if let Ok(mut cache) = self.cache.write() {
            let size = resolved.cached_bytes();
            if let Some(old) = cache.entries.remove(&key) {
                cache.bytes -= old.resolved.cached_bytes();
            }
            // Simple and bounded: start over when full. Hot files come
            // back on their next request.
            if cache.entries.len() >= MAX_ENTRIES || cache.bytes + size > MAX_CACHED_BYTES {
                cache.entries.clear();
                cache.bytes = 0;
            }
            cache.bytes += size;
            cache.entries.insert(
                key,
                CacheEntry {
                    resolved: resolved.clone(),
                    checked: Instant::now(),
                },
            );
        }
        Ok(resolved)
    }
}

/// A script found by [`FileResolver::find_script`].
#[derive(Debug)]
pub struct FoundScript {
    /// Canonical path of the script.
    pub file: PathBuf,
    /// How many of the request's segments name the script; the rest are
    /// its `PATH_INFO`.
    pub segments: usize,
    /// Unix: some execute bit is set. Elsewhere always true.
    pub executable: bool,
}

impl FileResolver {
    /// Looks for a CGI script along the path: `candidates` are the indexes
    /// (ascending) of segments with a configured script extension; the first
    /// one that is a regular file under the root is the script. Directories
    /// named like scripts are walked through. Not cached: starting the
    /// script costs far more than these few `stat`s.
    pub async fn find_script(
        &self,
        path: &SitePath,
        candidates: Vec<usize>,
    ) -> Result<Option<FoundScript>, SiteError> {
        let root = self.root.clone();
        let segments = path.segments.clone();
        tokio::task::spawn_blocking(move || find_script_blocking(&root, &segments, &candidates))
            .await
            .map_err(|e| SiteError::Io(io::Error::other(e)))?
    }
}

fn find_script_blocking(
    root: &Path,
    segments: &[String],
    candidates: &[usize],
) -> Result<Option<FoundScript>, SiteError> {
    for &i in candidates {
        let Some(named) = segments.get(..=i) else {
            break;
        };
        let mut path = root.to_path_buf();
        path.extend(named);
        // Canonicalizing follows symlinks; the result must stay under the root.
        let real = match path.canonicalize() {
            Ok(r) => r,
            Err(e) => {
                return match not_found_or(e) {
                    // Missing, or a file in the middle of the path: no
                    // deeper segment can be a script either.
                    SiteError::NotFound => Ok(None),
                    other => Err(other),
                };
            }
        };
        if !real.starts_with(root) {
            return Err(SiteError::NotFound);
        }
        let meta = real.metadata().map_err(not_found_or)?;
        if meta.is_file() {
            return Ok(Some(FoundScript {
                executable: is_executable(&meta),
                file: real,
                segments: i + 1,
            }));
        }
        if !meta.is_dir() {
            return Ok(None);
        }
    }
    Ok(None)
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    true
}

fn not_found_or(e: io::Error) -> SiteError {
    match e.kind() {
        io::ErrorKind::NotFound
        | io::ErrorKind::NotADirectory
        | io::ErrorKind::PermissionDenied => SiteError::NotFound,
        _ if e.raw_os_error() == Some(36) => SiteError::NotFound, // ENAMETOOLONG
        _ => SiteError::Io(e),
    }
}

fn resolve_blocking(
    root: &Path,
    segments: &[String],
    trailing: bool,
) -> Result<Resolved, SiteError> {
    let mut path = root.to_path_buf();
    path.extend(segments);
    // Canonicalizing follows symlinks; the result must stay under the root.
    let real = path.canonicalize().map_err(not_found_or)?;
    if !real.starts_with(root) {
        return Err(SiteError::NotFound);
    }
    let meta = real.metadata().map_err(not_found_or)?;
    let file = if meta.is_dir() {
        if !trailing {
            return Ok(Resolved::Directory);
        }
        let index = real.join("index.html");
        match index.metadata() {
            Ok(m) if m.is_file() => index,
            _ => return Ok(Resolved::Directory),
        }
    } else if meta.is_file() {
        if trailing {
            return Err(SiteError::NotFound);
        }
        real
    } else {
        return Err(SiteError::NotFound);
    };
    let extension = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let content_type = content_type_for(&file);
    let plain = representation(&file, "").map_err(not_found_or)?;
    let sibling = |suffix: &str, tag: &str| {
        let mut p = file.clone().into_os_string();
        p.push(suffix);
        let p = PathBuf::from(p);
        // A sibling must also be a real file under the root.
        match p.canonicalize() {
            Ok(r) if r.starts_with(root) && r.is_file() => representation(&r, tag).ok(),
            _ => None,
        }
    };
    Ok(Resolved::File(Box::new(FileEntry {
        brotli: sibling(".br", "br"),
        gzip: sibling(".gz", "gz"),
        plain,
        content_type,
        extension,
    })))
}

fn representation(path: &Path, tag: &str) -> io::Result<Representation> {
    let meta = path.metadata()?;
    let len = meta.len();
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let since = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let etag = if tag.is_empty() {
        format!(
            "\"{:x}-{:x}-{:x}\"",
            since.as_secs(),
            since.subsec_nanos(),
            len
        )
    } else {
        format!(
            "\"{:x}-{:x}-{:x}-{tag}\"",
            since.as_secs(),
            since.subsec_nanos(),
            len
        )
    };
    let data = if len <= SMALL_FILE {
        Some(Bytes::from(std::fs::read(path)?))
    } else {
        None
    };
    Ok(Representation {
        path: path.to_path_buf(),
        // The file may have changed between stat and read; trust what we read.
        len: data.as_ref().map_or(len, |d| d.len() as u64),
        etag: HeaderValue::from_str(&etag).map_err(io::Error::other)?,
        modified,
        last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(modified))
            .map_err(io::Error::other)?,
        data,
    })
}

fn content_type_for(path: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text = match (mime.type_(), mime.subtype().as_str()) {
        (mime_guess::mime::TEXT, _) | (_, "javascript") | (_, "json") | (_, "xml") => {
            format!("{mime}; charset=utf-8")
        }
        _ => mime.to_string(),
    };
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}
