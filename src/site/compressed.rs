//! The site's side of compression: which coding a file goes out in, and a
//! file compressed on the fly.
//!
//! Apart from `mod.rs` because the rules have several cases that the plain
//! file path need not read through: a precompressed sibling (`.zst`,
//! `.br`, `.gz`, made by the site's owner at a high level) wins over
//! compressing on the fly; a small file is compressed once per coding and
//! the result kept in the file cache (`files::FileEntry::compressed`), so a
//! busy page costs one copy from memory as an identity one does; a large
//! file streams through the encoder. The negotiation and codecs are
//! `crate::compression`'s, shared with the proxy.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::files::{Compressed, FileEntry, Representation, Resolved};
use super::path::SitePath;
use super::{file_body, not_modified, Site, SiteError, SiteRequest, VARY_AE};
use crate::body::Body;
use crate::compression::{self, Accepted, Encoding, RequestFacts, MIN_SIZE};
use crate::headers::{RequestFields, SERVER};

/// The coding a file goes out in.
pub(super) enum Coding<'f> {
    Identity,
    /// A precompressed sibling and its `Content-Encoding` token.
    Sibling(&'f Representation, &'static str),
    OnTheFly(Encoding),
}

/// [`Site::choose_encoding`]'s answer.
pub(super) struct Chosen<'f> {
    pub(super) coding: Coding<'f>,
    /// The choice depended on `Accept-Encoding`: `Vary` says so, whatever
    /// was chosen.
    pub(super) vary: bool,
}

/// Whether a `Cache-Control` value has `no-transform`.
fn no_transform(policy: Option<&HeaderValue>) -> bool {
    policy.is_some_and(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
    })
}

impl Site {
    /// The coding of `file` for this request: the sibling the client
    /// accepts best (server order zstd, br, gzip on a tie), else on the
    /// fly if the site compresses and the file is worth it, else identity.
    /// A `Range` request always gets identity.
    pub(super) fn choose_encoding<'f>(
        &self,
        headers: RequestFields<'_>,
        file: &'f FileEntry,
        policy: Option<&HeaderValue>,
    ) -> Chosen<'f> {
        let siblings = [
            (Encoding::Zstd, file.zstd.as_ref()),
            (Encoding::Brotli, file.brotli.as_ref()),
            (Encoding::Gzip, file.gzip.as_ref()),
        ];
        let has_siblings = siblings.iter().any(|(_, r)| r.is_some());
        let on_the_fly = self.compress.enabled()
            && file.plain.len >= MIN_SIZE
            && compression::compressible(&file.content_type)
            && !no_transform(policy);
        let vary = has_siblings || on_the_fly;
        // The common case of a file that never varies costs no header
        // parsing.
        if !vary || headers.contains(&header::RANGE) {
            return Chosen {
                coding: Coding::Identity,
                vary,
            };
        }
        let accepted = Accepted::from_headers(headers);
        let sibling = accepted
            .choose(
                siblings
                    .iter()
                    .filter(|(_, r)| r.is_some())
                    .map(|(e, _)| *e),
            )
            .and_then(|enc| {
                let (_, repr) = siblings.iter().find(|(e, _)| *e == enc)?;
                Some(Coding::Sibling((*repr)?, enc.token()))
            });
        let coding = match sibling {
            Some(c) => c,
            None if on_the_fly => accepted
                .choose(self.compress.encodings.iter().copied())
                .map_or(Coding::Identity, Coding::OnTheFly),
            None => Coding::Identity,
        };
        Chosen { coding, vary }
    }

    /// Compresses an answer made from something else than a file (CGI
    /// output, a listing), as the proxy does its answers.
    pub(super) fn compress_answer(&self, req: &SiteRequest<'_>, res: &mut Response<Body>) {
        if self.compress.enabled() {
            let facts = RequestFacts::from_headers(req.headers, *req.method == http::Method::HEAD);
            compression::compress_response(&self.compress, &facts, res);
        }
    }

    /// `file` in coding `enc`: from the cache (compressed at the first
    /// request, small files), or streamed through the encoder (large
    /// files). Never a range (see [`Site::choose_encoding`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn serve_compressed(
        &self,
        req: &SiteRequest<'_>,
        path: &SitePath,
        resolved: &Arc<Resolved>,
        file: &FileEntry,
        enc: Encoding,
        policy: Option<HeaderValue>,
        head: bool,
    ) -> Result<Response<Body>, SiteError> {
        let plain = &file.plain;
        let cached = match &plain.data {
            Some(data) => Some(
                self.compressed_variant(path, resolved, file, data, enc)
                    .await?,
            ),
            None => None,
        };
        let etag = match &cached {
            Some(c) => c.etag.clone(),
            None => compression::etag_for(&plain.etag, enc),
        };
        let mut res = Response::new(Body::empty());
        let h = res.headers_mut();
        h.insert(header::SERVER, SERVER.clone());
        h.insert(header::LAST_MODIFIED, plain.last_modified.clone());
        h.insert(header::VARY, VARY_AE.clone());
        if let Some(policy) = policy {
            h.insert(header::CACHE_CONTROL, policy);
        }
        // If-None-Match matches this coding's ETag only.
        let fresh = not_modified(req.headers, &etag, plain.modified);
        h.insert(header::ETAG, etag);
        if fresh {
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            return Ok(res);
        }
        h.insert(header::CONTENT_TYPE, file.content_type.clone());
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(enc.token()),
        );
        match cached {
            Some(c) => {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(c.data.len()));
                if !head {
                    *res.body_mut() = Body::full(c.data);
                }
            }
            // Large: no length (chunked on HTTP/1.1), on HEAD too.
            None if head => {}
            None => {
                let body = file_body(&plain.path, 0, plain.len).await?;
                *res.body_mut() = compression::encoded_stream(enc, self.compress.level(enc), body);
            }
        }
        Ok(res)
    }

    /// The cached compressed bytes of a small file, compressed now (on the
    /// blocking pool: up to `maxcacheresponsesize` of CPU work) if no
    /// request has asked for this coding yet.
    async fn compressed_variant(
        &self,
        path: &SitePath,
        resolved: &Arc<Resolved>,
        file: &FileEntry,
        data: &bytes::Bytes,
        enc: Encoding,
    ) -> Result<Compressed, SiteError> {
        if let Some(c) = file.compressed.get(enc.index()).and_then(|c| c.get()) {
            return Ok(Compressed {
                data: c.data.clone(),
                etag: c.etag.clone(),
            });
        }
        let level = self.compress.level(enc);
        let input = data.clone();
        let out =
            tokio::task::spawn_blocking(move || compression::compress_all(enc, level, &input))
                .await
                .map_err(|e| SiteError::Io(std::io::Error::other(e)))??;
        tracing::debug!(
            file = %file.plain.path.display(),
            encoding = enc.token(),
            from = data.len(),
            to = out.len(),
            "compressed for the cache"
        );
        let made = Compressed {
            data: bytes::Bytes::from(out),
            etag: compression::etag_for(&file.plain.etag, enc),
        };
        self.files.keep_compressed(
            path.key(),
            resolved,
            enc.index(),
            Compressed {
                data: made.data.clone(),
                etag: made.etag.clone(),
            },
        );
        Ok(made)
    }
}
