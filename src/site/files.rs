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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use super::path::SitePath;
use super::SiteError;

/// Files up to this size are kept in memory, unless `netsh http add
/// cacheparam type=maxcacheresponsesize` says otherwise.
const SMALL_FILE: u64 = 2 * 1024 * 1024;
/// What `netsh http show cacheparam` reports when no size was set.
pub const DEFAULT_MAX_CACHE_RESPONSE_SIZE: u64 = SMALL_FILE;
/// Memory the cached file contents may use in all.
const MAX_CACHED_BYTES: usize = 64 * 1024 * 1024;
const REVALIDATE_AFTER: Duration = Duration::from_secs(1);
const MAX_ENTRIES: usize = 4096;

/// One representation of a file: the file itself or a `.zst`/`.br`/`.gz`
/// sibling.
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
    pub zstd: Option<Representation>,
    pub brotli: Option<Representation>,
    pub gzip: Option<Representation>,
    /// A small file compressed on the fly, per coding
    /// ([`crate::compression::Encoding::index`]): made at the first request
    /// that asks for it and kept while this entry is cached, within the
    /// cache's byte budget ([`FileResolver::keep_compressed`]).
    pub compressed: [OnceLock<Compressed>; 3],
    /// The header fields of the whole file's plain `200` answer, made by
    /// the site at the first such request and cloned for the next ones.
    pub answer_fields: OnceLock<AnswerFields>,
}

/// A file answer's header fields, and the two site settings they were made
/// with (the cache does not know the site's settings; a field set made
/// with others is not used).
#[derive(Debug)]
pub struct AnswerFields {
    pub cache_control: Option<HeaderValue>,
    pub vary: bool,
    pub fields: HeaderMap,
}

/// A file's content compressed on the fly, kept in the cache.
#[derive(Debug)]
pub struct Compressed {
    pub data: Bytes,
    pub etag: HeaderValue,
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
    /// When this content was first cached (kept across re-validations that
    /// find the file unchanged), for `netsh http show cachestate`.
    created: SystemTime,
    /// Requests answered from this entry, for `show cachestate`.
    hits: AtomicU64,
}

impl Resolved {
    /// Bytes of file content this entry keeps in memory.
    fn cached_bytes(&self) -> usize {
        match self {
            Resolved::Directory => 0,
            Resolved::File(f) => {
                let siblings: usize = [
                    Some(&f.plain),
                    f.zstd.as_ref(),
                    f.brotli.as_ref(),
                    f.gzip.as_ref(),
                ]
                .into_iter()
                .flatten()
                .filter_map(|r| r.data.as_ref().map(Bytes::len))
                .sum();
                let compressed: usize = f
                    .compressed
                    .iter()
                    .filter_map(|c| c.get().map(|c| c.data.len()))
                    .sum();
                siblings + compressed
            }
        }
    }
}

#[derive(Default)]
struct Cache {
    /// Keyed by request paths, so seeded (foldhash's is, per process, and
    /// much cheaper than SipHash for short keys).
    entries: HashMap<String, CacheEntry, foldhash::fast::RandomState>,
    /// Sum of `cached_bytes` over the entries.
    bytes: usize,
}

/// Resolves request paths under one canonical root.
pub struct FileResolver {
    root: PathBuf,
    /// Shared with [`LIVE_CACHES`] (weakly) so the control channel can list
    /// and drop entries.
    cache: Arc<RwLock<Cache>>,
}

impl FileResolver {
    pub fn new(root: &Path) -> io::Result<FileResolver> {
        let cache = Arc::new(RwLock::new(Cache::default()));
        if let Ok(mut live) = LIVE_CACHES.lock() {
            live.retain(|c| c.strong_count() > 0);
            live.push(Arc::downgrade(&cache));
        }
        Ok(FileResolver {
            root: root.canonicalize()?,
            cache,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub async fn resolve(&self, path: &SitePath) -> Result<Arc<Resolved>, SiteError> {
        let key = path.key();
        if let Ok(cache) = self.cache.read() {
            if let Some(e) = cache.entries.get(key) {
                if e.checked.elapsed() < REVALIDATE_AFTER {
                    e.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(e.resolved.clone());
                }
            }
        }
        let root = self.root.clone();
        let mut named = self.root.clone();
        named.extend(path.segments());
        let trailing = path.trailing_slash;
        let resolved =
            tokio::task::spawn_blocking(move || resolve_blocking(&root, named, trailing))
                .await
                .map_err(|e| SiteError::Io(io::Error::other(e)))??;
        let resolved = Arc::new(resolved);
        if let Ok(mut cache) = self.cache.write() {
            let size = resolved.cached_bytes();
            let mut created = SystemTime::now();
            let mut hits = 0;
            if let Some(old) = cache.entries.remove(key) {
                cache.bytes -= old.resolved.cached_bytes();
                // Unchanged file: the same cached response lives on.
                if same_content(&old.resolved, &resolved) {
                    created = old.created;
                    hits = old.hits.load(Ordering::Relaxed);
                }
            }
            // Simple and bounded: start over when full. Hot files come
            // back on their next request.
            if cache.entries.len() >= MAX_ENTRIES || cache.bytes + size > MAX_CACHED_BYTES {
                cache.entries.clear();
                cache.bytes = 0;
            }
            cache.bytes += size;
            cache.entries.insert(
                key.to_owned(),
                CacheEntry {
                    resolved: resolved.clone(),
                    checked: Instant::now(),
                    created,
                    hits: AtomicU64::new(hits),
                },
            );
        }
        Ok(resolved)
    }
}

impl FileResolver {
    /// Keeps `compressed` (the coding `index`) with the cached entry of
    /// `key`, if `resolved` is still what the cache holds for it and the
    /// cache's byte budget allows; otherwise the caller just sends it
    /// (and the next request compresses again). Under the cache's lock so
    /// that its byte count stays the sum of its entries' bytes.
    pub fn keep_compressed(
        &self,
        key: &str,
        resolved: &Arc<Resolved>,
        index: usize,
        compressed: Compressed,
    ) {
        let Ok(mut cache) = self.cache.write() else {
            return;
        };
        let len = compressed.data.len();
        if cache.bytes + len > MAX_CACHED_BYTES {
            return;
        }
        let current = cache
            .entries
            .get(key)
            .is_some_and(|e| Arc::ptr_eq(&e.resolved, resolved));
        let Resolved::File(file) = &**resolved else {
            return;
        };
        if current {
            if let Some(slot) = file.compressed.get(index) {
                if slot.set(compressed).is_ok() {
                    cache.bytes += len;
                }
            }
        }
    }

    /// The canonical folder `path` names, for a directory listing: inside
    /// the root after following symlinks (the same check as [`resolve`]),
    /// or `NotFound`. Not cached: a listing reads the folder anyway.
    ///
    /// [`resolve`]: FileResolver::resolve
    pub(super) async fn directory(&self, path: &SitePath) -> Result<PathBuf, SiteError> {
        let mut dir = self.root.clone();
        dir.extend(path.segments());
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let real = dir.canonicalize().map_err(not_found_or)?;
            if !real.starts_with(&root) || !real.is_dir() {
                return Err(SiteError::NotFound);
            }
            Ok(real)
        })
        .await
        .map_err(|e| SiteError::Io(io::Error::other(e)))?
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
        let path = path.clone();
        tokio::task::spawn_blocking(move || find_script_blocking(&root, &path, &candidates))
            .await
            .map_err(|e| SiteError::Io(io::Error::other(e)))?
    }
}

fn find_script_blocking(
    root: &Path,
    request: &SitePath,
    candidates: &[usize],
) -> Result<Option<FoundScript>, SiteError> {
    for &i in candidates {
        let mut path = root.to_path_buf();
        path.extend(request.segments().take(i + 1));
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

/// `path`: the root joined with the request's segments.
fn resolve_blocking(root: &Path, path: PathBuf, trailing: bool) -> Result<Resolved, SiteError> {
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
        zstd: sibling(".zst", "zst"),
        brotli: sibling(".br", "br"),
        gzip: sibling(".gz", "gz"),
        plain,
        content_type,
        extension,
        compressed: Default::default(),
        answer_fields: OnceLock::new(),
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
    let data = if len <= max_cache_response_size() {
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

// ---------------------------------------------------------------------------
// The cache as `netsh http show cachestate` / `delete cache` / `add
// cacheparam` see it, through the control channel.
//
// The caches are found through a process-wide list rather than through the
// running server's state: the site is owned deep inside the server
// (`app` → shared state → `Site`), and the control channel only needs to
// list, drop and size entries. A server process has one site, so one
// cache; the list allows more (tests start several).
// ---------------------------------------------------------------------------

/// Every file cache of this process (weak: a dropped site drops its cache).
static LIVE_CACHES: Mutex<Vec<Weak<RwLock<Cache>>>> = Mutex::new(Vec::new());

/// Largest file kept in memory (`maxcacheresponsesize`), process-wide, as
/// HTTP.sys's `UriMaxUriBytes` is machine-wide.
static MAX_CACHE_RESPONSE_SIZE: AtomicU64 = AtomicU64::new(SMALL_FILE);

/// The size limit for keeping a file's content in memory now.
pub fn max_cache_response_size() -> u64 {
    MAX_CACHE_RESPONSE_SIZE.load(Ordering::Relaxed)
}

/// Sets the size limit (`None`: the default). Takes effect for files
/// cached from now on; entries over the new limit are dropped at once so
/// that lowering it frees memory now.
pub fn set_max_cache_response_size(bytes: Option<u64>) {
    let limit = bytes.unwrap_or(SMALL_FILE);
    MAX_CACHE_RESPONSE_SIZE.store(limit, Ordering::Relaxed);
    drop_cached_where(
        |_, entry| matches!(&*entry.resolved, Resolved::File(f) if f.plain.data.is_some() && f.plain.len > limit),
    );
}

/// One cached response, for `netsh http show cachestate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    /// The cache key: the URL path below the site's prefix, decoded, no
    /// leading slash (`docs/a.html`, `docs/` for a directory's index).
    pub key: String,
    /// Length of the file as served (without compression).
    pub content_length: u64,
    /// Bytes of content held in memory for it (all its representations).
    pub cached_bytes: u64,
    pub content_type: String,
    pub created: SystemTime,
    pub hits: u64,
}

/// The files cached now, across this process's sites, sorted by key.
/// Directory lookups (kept to answer redirects) are no responses and are
/// left out.
pub fn cached_files() -> Vec<CachedFile> {
    let mut out = Vec::new();
    for cache in live_caches() {
        let Ok(cache) = cache.read() else { continue };
        for (key, entry) in &cache.entries {
            if let Resolved::File(f) = &*entry.resolved {
                out.push(CachedFile {
                    key: key.clone(),
                    content_length: f.plain.len,
                    cached_bytes: entry.resolved.cached_bytes() as u64,
                    content_type: f.content_type.to_str().unwrap_or_default().to_owned(),
                    created: entry.created,
                    hits: entry.hits.load(Ordering::Relaxed),
                });
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Drops the cached entries whose key `matches`; returns the keys of the
/// files dropped (directory lookups are dropped too, but not returned).
/// The next request for a dropped URL reads the file again.
pub fn drop_cached(matches: impl Fn(&str) -> bool) -> Vec<String> {
    drop_cached_where(|key, _| matches(key))
}

fn drop_cached_where(matches: impl Fn(&str, &CacheEntry) -> bool) -> Vec<String> {
    let mut dropped = Vec::new();
    for cache in live_caches() {
        let Ok(mut cache) = cache.write() else {
            continue;
        };
        let keys: Vec<String> = cache
            .entries
            .iter()
            .filter(|(k, e)| matches(k, e))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(old) = cache.entries.remove(&key) {
                cache.bytes -= old.resolved.cached_bytes();
                if matches!(&*old.resolved, Resolved::File(_)) {
                    dropped.push(key);
                }
            }
        }
    }
    dropped.sort();
    dropped
}

fn live_caches() -> Vec<Arc<RwLock<Cache>>> {
    LIVE_CACHES
        .lock()
        .map(|live| live.iter().filter_map(Weak::upgrade).collect())
        .unwrap_or_default()
}

/// Whether a re-validated lookup found the same file content as before.
fn same_content(old: &Resolved, new: &Resolved) -> bool {
    match (old, new) {
        (Resolved::File(a), Resolved::File(b)) => {
            a.plain.path == b.plain.path && a.plain.etag == b.plain.etag
        }
        (Resolved::Directory, Resolved::Directory) => true,
        _ => false,
    }
}
