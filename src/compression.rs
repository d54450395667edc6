//! Compression on the fly (`Content-Encoding: zstd | br | gzip`), shared by
//! the static sites (files, listings, CGI output) and the reverse proxy.
//!
//! Why one module: the rules are the same for every response — which
//! coding the client's `Accept-Encoding` allows, which responses are worth
//! compressing, what the headers become (`Vary`, an `ETag` per coding, no
//! `Content-Length` for a stream) — and the callers only differ in where
//! the bytes come from. The site keeps small files' compressed bytes in its
//! memory cache (`site::files`); everything else streams through
//! [`EncodedBody`], which feeds the codec chunk by chunk and never holds the
//! whole body.
//!
//! The codecs are the maintained crates (`flate2` on zlib-rs, `brotli`,
//! `zstd`), driven synchronously: each input chunk is written into the
//! encoder, whose output buffer is handed on as the next frame. That costs
//! no `AsyncRead` adaptor, no extra copy and no task per response.

use std::io::{self, Write as _};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Frame, SizeHint};

use crate::body::Body;
use crate::headers::RequestFields;

/// A content coding portshare can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Zstd,
    Brotli,
    Gzip,
}

/// The server's order of preference, used when the client's q-values tie:
/// zstd compresses about as well as brotli at a fraction of the CPU, and
/// gzip is the one every client has.
pub const DEFAULT_ORDER: [Encoding; 3] = [Encoding::Zstd, Encoding::Brotli, Encoding::Gzip];

impl Encoding {
    /// The token of `Accept-Encoding` / `Content-Encoding`, also the
    /// suffix of the coding's `ETag`.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// A small index, for per-coding tables (the site's cache of
    /// compressed files).
    pub fn index(self) -> usize {
        match self {
            Encoding::Zstd => 0,
            Encoding::Brotli => 1,
            Encoding::Gzip => 2,
        }
    }

    fn from_token(token: &str) -> Option<Encoding> {
        match token.to_ascii_lowercase().as_str() {
            "zstd" => Some(Encoding::Zstd),
            "br" | "brotli" => Some(Encoding::Brotli),
            "gzip" => Some(Encoding::Gzip),
            _ => None,
        }
    }

    /// The levels the codec takes.
    fn levels(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Encoding::Zstd => 1..=19,
            Encoding::Brotli => 0..=11,
            Encoding::Gzip => 1..=9,
        }
    }

    /// Default levels, tuned for throughput as the peers tuned theirs after
    /// measuring: static-web-server (src/compression.rs,
    /// `DEFAULT_COMPRESSION_LEVEL`) uses gzip 4, brotli 4, zstd 3; Caddy's
    /// `encode` uses gzip 5 and zstd's "default" speed (level 3). Brotli's
    /// own default (11) is meant for precompressing and costs ~50× the CPU
    /// of level 4 for a few percent.
    fn default_level(self) -> u32 {
        match self {
            Encoding::Zstd => 3,
            Encoding::Brotli => 4,
            Encoding::Gzip => 4,
        }
    }
}

/// A `compress=` / `compress_level=` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressConfigError {
    #[error("'{0}' is not an encoding portshare compresses with; use zstd, br and gzip in your order of preference, or off")]
    UnknownEncoding(String),
    #[error("'{value}' is not a level for {encoding} (it takes {min} to {max})")]
    BadLevel {
        value: String,
        encoding: &'static str,
        min: u32,
        max: u32,
    },
    #[error("'{0}' is not a level; give a number (every encoding) or ENCODING:LEVEL items, e.g. gzip:6,br:5,zstd:3")]
    BadLevelSyntax(String),
}

/// What a site or application compresses with: `compress=` (the codings
/// in order of preference; none for `off`) and `compress_level=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressConfig {
    /// Empty: `compress=off`.
    pub encodings: Vec<Encoding>,
    /// Levels indexed by [`Encoding::index`].
    levels: [u32; 3],
}

/// Responses shorter than this are sent as they are: under about a TCP
/// segment the saved bytes don't pay for the CPU and the `Vary` (nginx's
/// `gzip_min_length` is 20, Caddy's `minimum_length` 512; 1 KiB is the
/// threshold Akamai and Cloudflare document).
pub const MIN_SIZE: u64 = 1024;

impl Default for CompressConfig {
    fn default() -> Self {
        CompressConfig {
            encodings: DEFAULT_ORDER.to_vec(),
            levels: DEFAULT_ORDER.map(Encoding::default_level),
        }
    }
}

impl CompressConfig {
    /// Parses `compress=` and `compress_level=` (either may be absent).
    /// `compress=` lists codings separated by commas or spaces (`off`,
    /// `no`: none); `compress_level=` is one number for every coding
    /// (clamped to each codec's range) or `ENCODING:LEVEL` items.
    pub fn parse(
        compress: Option<&str>,
        level: Option<&str>,
    ) -> Result<CompressConfig, CompressConfigError> {
        let mut config = CompressConfig::default();
        if let Some(list) = compress.map(str::trim) {
            if matches!(
                list.to_ascii_lowercase().as_str(),
                "off" | "no" | "none" | "false" | "0"
            ) {
                config.encodings.clear();
            } else if !matches!(list.to_ascii_lowercase().as_str(), "on" | "yes" | "true") {
                config.encodings.clear();
                for token in list.split([',', ' ']).filter(|t| !t.is_empty()) {
                    let enc = Encoding::from_token(token)
                        .ok_or_else(|| CompressConfigError::UnknownEncoding(token.to_owned()))?;
                    if !config.encodings.contains(&enc) {
                        config.encodings.push(enc);
                    }
                }
            }
        }
        if let Some(spec) = level.map(str::trim).filter(|s| !s.is_empty()) {
            if let Ok(n) = spec.parse::<u32>() {
                for enc in DEFAULT_ORDER {
                    let r = enc.levels();
                    config.levels[enc.index()] = n.clamp(*r.start(), *r.end());
                }
            } else {
                for item in spec.split([',', ' ']).filter(|t| !t.is_empty()) {
                    let (name, value) = item
                        .split_once(':')
                        .or_else(|| item.split_once('='))
                        .ok_or_else(|| CompressConfigError::BadLevelSyntax(item.to_owned()))?;
                    let enc = Encoding::from_token(name.trim())
                        .ok_or_else(|| CompressConfigError::UnknownEncoding(name.to_owned()))?;
                    let r = enc.levels();
                    let n = value
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| r.contains(n))
                        .ok_or_else(|| CompressConfigError::BadLevel {
                            value: value.trim().to_owned(),
                            encoding: enc.token(),
                            min: *r.start(),
                            max: *r.end(),
                        })?;
                    config.levels[enc.index()] = n;
                }
            }
        }
        Ok(config)
    }

    /// `compress=off`: nothing is compressed on the fly.
    pub fn off() -> CompressConfig {
        CompressConfig {
            encodings: Vec::new(),
            ..CompressConfig::default()
        }
    }

    pub fn enabled(&self) -> bool {
        !self.encodings.is_empty()
    }

    pub fn level(&self, enc: Encoding) -> u32 {
        self.levels
            .get(enc.index())
            .copied()
            .unwrap_or_else(|| enc.default_level())
    }
}

// ---------------------------------------------------------------------------
// Negotiation
// ---------------------------------------------------------------------------

/// The client's `Accept-Encoding`, reduced to what the choice needs:
/// q-values in thousandths (`None`: not named).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    q: [Option<u16>; 3],
    identity: Option<u16>,
    star: Option<u16>,
}

impl Accepted {
    /// From the values of every `Accept-Encoding` field (none: the client
    /// accepts only identity, which is what we assume of it, RFC 9110
    /// §12.5.3 allowing any).
    pub fn parse<'a>(values: impl Iterator<Item = &'a [u8]>) -> Accepted {
        let mut out = Accepted::default();
        for value in values {
            for item in value.split(|&b| b == b',') {
                let mut parts = item.split(|&b| b == b';');
                let name = trim(parts.next().unwrap_or_default());
                if name.is_empty() {
                    continue;
                }
                let q = parts
                    .filter_map(|p| {
                        let p = trim(p);
                        p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q="))
                    })
                    .next()
                    .map_or(Some(1000), parse_q);
                let Some(q) = q else { continue };
                let slot = if name.eq_ignore_ascii_case(b"zstd") {
                    &mut out.q[Encoding::Zstd.index()]
                } else if name.eq_ignore_ascii_case(b"br") {
                    &mut out.q[Encoding::Brotli.index()]
                } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip")
                {
                    &mut out.q[Encoding::Gzip.index()]
                } else if name.eq_ignore_ascii_case(b"identity") {
                    &mut out.identity
                } else if name == b"*" {
                    &mut out.star
                } else {
                    continue;
                };
                // Named twice: the higher value counts.
                *slot = Some(slot.map_or(q, |old| old.max(q)));
            }
        }
        out
    }

    /// From a request's fields.
    pub fn from_headers(headers: RequestFields<'_>) -> Accepted {
        Accepted::parse(headers.get_all(&header::ACCEPT_ENCODING))
    }

    /// The coding to use among `offered` (in the server's order): the
    /// highest q-value above 0, the earlier one on a tie; none when the
    /// client accepts none of them or explicitly prefers identity.
    pub fn choose(&self, offered: impl IntoIterator<Item = Encoding>) -> Option<Encoding> {
        let mut best: Option<(Encoding, u16)> = None;
        for enc in offered {
            let q = self.q[enc.index()].or(self.star).unwrap_or(0);
            if q > 0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((enc, q));
            }
        }
        let (enc, q) = best?;
        match self.identity {
            Some(iq) if iq > q => None,
            _ => Some(enc),
        }
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `0`, `0.5`, `1.000` → thousandths; anything else is ignored (the item
/// is dropped, as an invalid q makes it meaningless).
fn parse_q(s: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(trim(s)).ok()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    Some((whole + thousandths).min(1000))
}

/// Whether a `Content-Type` is worth compressing: text, JSON, JavaScript,
/// XML, SVG, wasm and the font formats that are not compressed already
/// (WOFF and WOFF2 are). Images, audio, video and archives are.
pub fn compressible(content_type: &HeaderValue) -> bool {
    let bytes = content_type.as_bytes();
    let media = bytes
        .split(|&b| b == b';')
        .next()
        .map(trim)
        .unwrap_or_default();
    let Ok(media) = std::str::from_utf8(media) else {
        return false;
    };
    let media = media.to_ascii_lowercase();
    if media.starts_with("text/") || media.ends_with("+json") || media.ends_with("+xml") {
        return true;
    }
    matches!(
        media.as_str(),
        "application/json"
            | "application/javascript"
            | "application/x-javascript"
            | "application/ecmascript"
            | "application/xml"
            | "application/wasm"
            | "application/x-ndjson"
            | "application/vnd.ms-fontobject"
            | "application/x-font-ttf"
            | "application/x-font-otf"
            | "application/font-sfnt"
            | "font/ttf"
            | "font/otf"
            | "font/sfnt"
            | "font/collection"
            | "image/svg+xml"
            | "image/x-icon"
            | "image/vnd.microsoft.icon"
            | "image/bmp"
    )
}

/// Whether `Cache-Control` forbids changing the representation.
fn no_transform(headers: &HeaderMap) -> bool {
    headers.get_all(header::CACHE_CONTROL).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|d| trim(d).eq_ignore_ascii_case(b"no-transform"))
    })
}

/// The `ETag` of a coding's representation: the suffix inside the quotes
/// (`"abc"` → `"abc-gzip"`, `W/"abc"` → `W/"abc-gzip"`), so that a cache
/// and `If-None-Match` tell the codings apart. An `ETag` without quotes
/// is left as it is.
pub fn etag_for(etag: &HeaderValue, enc: Encoding) -> HeaderValue {
    let bytes = etag.as_bytes();
    match bytes.strip_suffix(b"\"") {
        Some(open) if bytes.len() >= 2 => {
            let mut v = Vec::with_capacity(bytes.len() + 6);
            v.extend_from_slice(open);
            v.push(b'-');
            v.extend_from_slice(enc.token().as_bytes());
            v.push(b'"');
            HeaderValue::from_bytes(&v).unwrap_or_else(|_| etag.clone())
        }
        _ => etag.clone(),
    }
}

static VARY_AE: HeaderValue = HeaderValue::from_static("Accept-Encoding");

/// Adds `Accept-Encoding` to `Vary` unless it is there already (or `*`).
pub fn add_vary(headers: &mut HeaderMap) {
    let present = headers.get_all(header::VARY).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|t| {
            let t = trim(t);
            t == b"*" || t.eq_ignore_ascii_case(b"accept-encoding")
        })
    });
    if !present {
        headers.append(header::VARY, VARY_AE.clone());
    }
}

// ---------------------------------------------------------------------------
// Responses made elsewhere (CGI, listings, proxied applications)
// ---------------------------------------------------------------------------

/// What of a request decides whether its response is compressed.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts {
    pub accepted: Accepted,
    /// `HEAD`: the response has no body, but must carry the headers a
    /// `GET` would.
    pub head: bool,
    /// A `Range` request gets the identity body (ranges of a compressed
    /// stream would change with the level).
    pub range: bool,
}

impl RequestFacts {
    pub fn from_headers(headers: RequestFields<'_>, head: bool) -> RequestFacts {
        RequestFacts {
            accepted: Accepted::from_headers(headers),
            head,
            range: headers.contains(&header::RANGE),
        }
    }
}

/// Compresses a response made by a handler (CGI, listing, proxied
/// application) when `config` and the request allow it, and marks it
/// `Vary: Accept-Encoding` whenever its coding depended on that header.
/// Returns the coding used.
pub fn compress_response(
    config: &CompressConfig,
    request: &RequestFacts,
    res: &mut Response<Body>,
) -> Option<Encoding> {
    if !config.enabled() || !eligible(res, request.head) {
        return None;
    }
    add_vary(res.headers_mut());
    if request.range {
        return None;
    }
    let enc = request.accepted.choose(config.encodings.iter().copied())?;
    let level = config.level(enc);
    let headers = res.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(enc.token()),
    );
    if let Some(etag) = headers.get(header::ETAG) {
        let tagged = etag_for(etag, enc);
        headers.insert(header::ETAG, tagged);
    }
    let body = std::mem::replace(res.body_mut(), Body::empty());
    *res.body_mut() = match body {
        Body::Empty => Body::Empty,
        // The whole body is here (a short answer read in one go):
        // compress it now, so it goes out with a length.
        Body::Full(Some(data)) => match compress_all(enc, level, &data) {
            Ok(out) => {
                res.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
                Body::full(out)
            }
            Err(e) => {
                tracing::warn!(error = %e, encoding = enc.token(), "compression failed");
                Body::stream(EncodedBody::failed(e))
            }
        },
        Body::Full(None) => Body::Empty,
        stream @ Body::Stream(_) => encoded_stream(enc, level, stream),
    };
    Some(enc)
}

/// A body streamed through the encoder.
pub fn encoded_stream(enc: Encoding, level: u32, body: Body) -> Body {
    match Encoder::new(enc, level) {
        Ok(encoder) => Body::stream(EncodedBody::new(body, encoder)),
        Err(e) => Body::stream(EncodedBody::failed(e)),
    }
}

/// Whether the response is one to compress, from its own headers: a
/// success with a body, compressible type, no coding yet, no
/// `no-transform`, long enough (or of unknown length).
fn eligible(res: &Response<Body>, head: bool) -> bool {
    let status = res.status();
    if !status.is_success()
        || matches!(status, StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT)
    {
        return false;
    }
    let h = res.headers();
    if h.contains_key(header::CONTENT_ENCODING) || h.contains_key(header::CONTENT_RANGE) {
        return false;
    }
    if !h.get(header::CONTENT_TYPE).is_some_and(compressible) || no_transform(h) {
        return false;
    }
    let declared = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let len = match (declared, res.body()) {
        (Some(n), _) => Some(n),
        // A HEAD answer without a length: the GET's body streams.
        (None, _) if head => None,
        (None, Body::Stream(_)) => None,
        (None, body) => http_body::Body::size_hint(body).exact(),
    };
    len.is_none_or(|n| n >= MIN_SIZE)
}

// ---------------------------------------------------------------------------
// Codecs
// ---------------------------------------------------------------------------

/// One coding's encoder writing into a buffer that is handed on as frames.
enum Encoder {
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    // Boxed: brotli's state is large and the enum is moved around.
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
}

/// Brotli's window: 2^22 bytes, its default; the ring buffer only grows
/// that large for inputs that need it.
const BROTLI_LGWIN: u32 = 22;
const BROTLI_BUFFER: usize = 16 * 1024;

impl Encoder {
    fn new(enc: Encoding, level: u32) -> io::Result<Encoder> {
        Ok(match enc {
            Encoding::Zstd => {
                let level = i32::try_from(level).unwrap_or(3);
                Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), level)?)
            }
            Encoding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                level,
                BROTLI_LGWIN,
            ))),
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
        })
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.write_all(data),
            Encoder::Brotli(e) => e.write_all(data),
            Encoder::Gzip(e) => e.write_all(data),
        }
    }

    /// Pushes out what the encoder holds, so a stream that pauses (a
    /// server-sent event, a slow backend) reaches the client now.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Brotli(e) => e.flush(),
            Encoder::Gzip(e) => e.flush(),
        }
    }

    /// The output produced so far.
    fn take(&mut self) -> Vec<u8> {
        let out = match self {
            Encoder::Zstd(e) => e.get_mut(),
            Encoder::Brotli(e) => e.get_mut(),
            Encoder::Gzip(e) => e.get_mut(),
        };
        std::mem::take(out)
    }

    /// Ends the stream; the rest of the output.
    fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Encoder::Zstd(e) => e.finish(),
            // `into_inner` writes brotli's last block.
            Encoder::Brotli(e) => Ok(e.into_inner()),
            Encoder::Gzip(e) => e.finish(),
        }
    }
}

/// Compresses `data` in one go (a cached file, a short answer).
pub fn compress_all(enc: Encoding, level: u32, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut e = Encoder::new(enc, level)?;
    e.write(data)?;
    let mut out = e.take();
    out.extend_from_slice(&e.finish()?);
    Ok(out)
}

/// A body that streams another through an encoder.
pub struct EncodedBody {
    inner: Body,
    encoder: Option<Encoder>,
    /// Input written since the last flush.
    unflushed: bool,
    /// An encoder that could not be made: the error, reported once.
    error: Option<io::Error>,
}

impl EncodedBody {
    fn new(inner: Body, encoder: Encoder) -> EncodedBody {
        EncodedBody {
            inner,
            encoder: Some(encoder),
            unflushed: false,
            error: None,
        }
    }

    fn failed(e: io::Error) -> EncodedBody {
        EncodedBody {
            inner: Body::Empty,
            encoder: None,
            unflushed: false,
            error: Some(e),
        }
    }
}

fn data_frame(out: Vec<u8>) -> Option<Result<Frame<Bytes>, io::Error>> {
    Some(Ok(Frame::data(Bytes::from(out))))
}

impl http_body::Body for EncodedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers are dropped: hyper's server does not send
                    // them on HTTP/1.1 either.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    if let Err(e) = encoder.write(&data) {
                        this.encoder = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                    this.unflushed = true;
                    let out = encoder.take();
                    if !out.is_empty() {
                        return Poll::Ready(data_frame(out));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    let Some(encoder) = this.encoder.take() else {
                        return Poll::Ready(None);
                    };
                    let mut out = Vec::new();
                    let mut encoder = encoder;
                    out.append(&mut encoder.take());
                    return match encoder.finish() {
                        Ok(mut rest) => {
                            out.append(&mut rest);
                            Poll::Ready(if out.is_empty() {
                                None
                            } else {
                                data_frame(out)
                            })
                        }
                        Err(e) => Poll::Ready(Some(Err(e))),
                    };
                }
                Poll::Pending => {
                    if this.unflushed {
                        this.unflushed = false;
                        if let Err(e) = encoder.flush() {
                            this.encoder = None;
                            return Poll::Ready(Some(Err(e)));
                        }
                        let out = encoder.take();
                        if !out.is_empty() {
                            return Poll::Ready(data_frame(out));
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.error.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn accepted(v: &str) -> Accepted {
        Accepted::parse(std::iter::once(v.as_bytes()))
    }

    #[test]
    fn negotiation_follows_q_values_then_server_order() {
        let all = DEFAULT_ORDER;
        assert_eq!(accepted("gzip, br, zstd").choose(all), Some(Encoding::Zstd));
        assert_eq!(accepted("gzip, br").choose(all), Some(Encoding::Brotli));
        assert_eq!(
            accepted("br;q=0.5, gzip;q=0.8").choose(all),
            Some(Encoding::Gzip)
        );
        assert_eq!(accepted("gzip;q=0, br;q=0").choose(all), None);
        assert_eq!(accepted("*").choose(all), Some(Encoding::Zstd));
        assert_eq!(
            accepted("*;q=0.1, gzip;q=0.2").choose(all),
            Some(Encoding::Gzip)
        );
        assert_eq!(accepted("zstd;q=0, *").choose(all), Some(Encoding::Brotli));
        assert_eq!(
            accepted("identity;q=0, gzip").choose(all),
            Some(Encoding::Gzip)
        );
        assert_eq!(accepted("identity, gzip;q=0.5").choose(all), None);
        assert_eq!(accepted("").choose(all), None);
        assert_eq!(accepted("deflate, compress").choose(all), None);
        assert_eq!(accepted("GZIP;Q=1.000").choose(all), Some(Encoding::Gzip));
        assert_eq!(accepted("gzip;q=2").choose(all), None);
        // The server's order is the site's own.
        assert_eq!(
            accepted("zstd, gzip").choose([Encoding::Gzip, Encoding::Zstd]),
            Some(Encoding::Gzip)
        );
    }

    #[test]
    fn config_parsing() {
        let c = CompressConfig::parse(None, None).expect("defaults");
        assert_eq!(c.encodings, DEFAULT_ORDER.to_vec());
        assert_eq!(c.level(Encoding::Gzip), 4);
        let c = CompressConfig::parse(Some("off"), None).expect("off");
        assert!(!c.enabled());
        let c = CompressConfig::parse(Some("gzip, br"), Some("gzip:6,br:5")).expect("list");
        assert_eq!(c.encodings, vec![Encoding::Gzip, Encoding::Brotli]);
        assert_eq!(c.level(Encoding::Gzip), 6);
        assert_eq!(c.level(Encoding::Brotli), 5);
        let c = CompressConfig::parse(None, Some("11")).expect("number");
        assert_eq!(c.level(Encoding::Gzip), 9);
        assert_eq!(c.level(Encoding::Brotli), 11);
        assert!(CompressConfig::parse(Some("deflate"), None).is_err());
        assert!(CompressConfig::parse(None, Some("gzip:12")).is_err());
        assert!(CompressConfig::parse(None, Some("fast")).is_err());
    }

    #[test]
    fn types_and_etags() {
        for t in [
            "text/html; charset=utf-8",
            "application/json",
            "image/svg+xml",
            "application/wasm",
            "font/ttf",
            "application/ld+json",
        ] {
            assert!(compressible(&HeaderValue::from_static(t)), "{t}");
        }
        for t in ["image/png", "font/woff2", "application/zip", "video/mp4"] {
            assert!(!compressible(&HeaderValue::from_static(t)), "{t}");
        }
        assert_eq!(
            etag_for(&HeaderValue::from_static("\"a-b\""), Encoding::Gzip),
            "\"a-b-gzip\""
        );
        assert_eq!(
            etag_for(&HeaderValue::from_static("W/\"x\""), Encoding::Zstd),
            "W/\"x-zstd\""
        );
    }

    fn decode(enc: Encoding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match enc {
            Encoding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .expect("gunzip");
            }
            Encoding::Brotli => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .expect("unbrotli");
            }
            Encoding::Zstd => out = zstd::stream::decode_all(data).expect("unzstd"),
        }
        out
    }

    #[tokio::test]
    async fn streams_round_trip() {
        use http_body_util::BodyExt as _;
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for enc in DEFAULT_ORDER {
            let once = compress_all(enc, 3, &text).expect("compress");
            assert_eq!(decode(enc, &once), text);
            let chunks: Vec<Result<Frame<Bytes>, io::Error>> = text
                .chunks(10_000)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            let inner = Body::stream(http_body_util::StreamBody::new(futures_util::stream::iter(
                chunks,
            )));
            let body = encoded_stream(enc, 3, inner);
            let out = body.collect().await.expect("stream").to_bytes();
            assert_eq!(decode(enc, &out), text, "{enc:?}");
        }
    }
}
