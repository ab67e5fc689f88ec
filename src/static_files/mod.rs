//! Static files (`--static-map`), answered without Python: a request is
//! mapped onto a directory, the file opened safely beneath it, and a
//! complete response head built, with the file and the byte range to send.
//!
//! Pure with respect to sockets: it opens files but never writes to a
//! client. The caller sends `head`, then the body with `sendfile`. It
//! depends on `protocol` (the head encoder, dates), `sys` (the opens) and
//! `mime_guess`, and on nothing of the worker's.

mod open;
mod path;
mod rules;

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::protocol::date::{http_date, parse_http_date};
use crate::protocol::http::Version;
use crate::protocol::response::{ConnectionEnd, HeadWriter};

use open::Found;
use path::Mapped;
use rules::{Encoding, RangeAsk};

pub use path::longest_prefix;

/// The request headers static files look at. The caller's accessor maps
/// each to an HTTP header or, on a uwsgi socket, to its CGI variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Header {
    IfNoneMatch,
    IfModifiedSince,
    Range,
    IfRange,
    AcceptEncoding,
}

impl Header {
    /// The HTTP field name, lower-case.
    pub fn http_name(self) -> &'static [u8] {
        match self {
            Header::IfNoneMatch => b"if-none-match",
            Header::IfModifiedSince => b"if-modified-since",
            Header::Range => b"range",
            Header::IfRange => b"if-range",
            Header::AcceptEncoding => b"accept-encoding",
        }
    }

    /// The CGI variable nginx sends it as over uwsgi.
    pub fn cgi_name(self) -> &'static [u8] {
        match self {
            Header::IfNoneMatch => b"HTTP_IF_NONE_MATCH",
            Header::IfModifiedSince => b"HTTP_IF_MODIFIED_SINCE",
            Header::Range => b"HTTP_RANGE",
            Header::IfRange => b"HTTP_IF_RANGE",
            Header::AcceptEncoding => b"HTTP_ACCEPT_ENCODING",
        }
    }
}

/// What [`StaticFiles::respond`] needs to know of a request.
pub struct Request<'a> {
    pub method: &'a [u8],
    /// The path as sent (percent-encoded), without the query string.
    pub path: &'a [u8],
    pub headers: &'a dyn Fn(Header) -> Option<&'a [u8]>,
    /// The version the response is written in.
    pub version: Version,
    /// How the connection ends after the response (decides `Connection`).
    pub end: ConnectionEnd,
    /// The `Date` value (an IMF-fixdate).
    pub date: &'a [u8],
}

/// The body of a reply: `len` bytes of `file` from `offset`.
#[derive(Debug)]
pub struct Body {
    pub file: File,
    pub offset: u64,
    pub len: u64,
}

/// A complete answer: send `head`, then the body if there is one.
#[derive(Debug)]
pub struct StaticReply {
    pub status: u16,
    /// The bytes to send before the file: the whole response head, blank
    /// line included (and for a 404, its short text body).
    pub head: Vec<u8>,
    /// `None` for HEAD, 304, 404 and 416.
    pub body: Option<Body>,
    /// How many bytes at the end of `head` are body (a 404's text).
    pub inline_body: u64,
}

/// One `--static-map` entry, ready to serve.
struct Mount {
    dir: OwnedFd,
}

/// The static map of a worker, with each directory open.
pub struct StaticFiles {
    /// Normalised prefixes (see [`path::longest_prefix`]), one per mount.
    prefixes: Vec<String>,
    mounts: Vec<Mount>,
    index: Option<String>,
    expires: Option<u64>,
    /// Tests: skip openat2 and use the walk.
    walk_only: bool,
}

/// A prefix as [`path::longest_prefix`] compares it: no trailing `/`.
pub fn normalise_prefix(prefix: &str) -> String {
    prefix.trim_end_matches('/').to_string()
}

impl StaticFiles {
    /// Opens every mapped directory (`O_PATH`). `map` is (URL prefix,
    /// directory) pairs, already validated by the configuration.
    pub fn open(
        map: &[(String, PathBuf)],
        index: Option<&str>,
        expires: Option<u64>,
    ) -> io::Result<StaticFiles> {
        let mut prefixes = Vec::with_capacity(map.len());
        let mut mounts = Vec::with_capacity(map.len());
        for (prefix, dir) in map {
            let fd = crate::sys::fs::open_dir_path(dir).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("--static-map {prefix}={}: {e}", dir.display()),
                )
            })?;
            prefixes.push(normalise_prefix(prefix));
            mounts.push(Mount { dir: fd });
        }
        Ok(StaticFiles {
            prefixes,
            mounts,
            index: index.map(String::from),
            expires,
            walk_only: false,
        })
    }

    /// Whether any directory is mapped.
    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }

    /// Answers `req` from the static map, or `None` when the request is the
    /// app's: not GET or HEAD, not under a prefix, or no file there.
    pub fn respond(&self, req: &Request<'_>) -> Option<StaticReply> {
        if req.method != b"GET" && req.method != b"HEAD" {
            return None;
        }
        let (mount, rel, dir_request) = match path::map(&self.prefixes, req.path) {
            Mapped::Unmapped => return None,
            Mapped::Refused => return Some(self.not_found(req)),
            Mapped::Path {
                mount,
                rel,
                dir_request,
            } => (mount, rel, dir_request),
        };
        let root = &self.mounts.get(mount)?.dir;
        let (file, name) = match open::open_beneath(root, &rel, self.walk_only) {
            Found::File(f) if !dir_request => (f, rel),
            Found::File(_) | Found::Missing => return None,
            Found::Refused => return Some(self.not_found(req)),
            // A directory: its index, only when asked as `dir/` (relative
            // links in the page need the slash); else the app decides.
            Found::Dir => {
                let index = self.index.as_deref().filter(|_| dir_request)?;
                let name = if rel.is_empty() {
                    index.to_string()
                } else {
                    format!("{rel}/{index}")
                };
                match open::open_beneath(root, &name, self.walk_only) {
                    Found::File(f) => (f, name),
                    Found::Refused => return Some(self.not_found(req)),
                    _ => return None,
                }
            }
        };
        self.reply(req, root, file, &name).ok()
    }

    /// The answer for `file` (mapped as `name`): a variant chosen, then
    /// preconditions, then ranges.
    fn reply(
        &self,
        req: &Request<'_>,
        root: &OwnedFd,
        file: File,
        name: &str,
    ) -> io::Result<StaticReply> {
        let content_type = rules::content_type(name);
        // Variants only for types that compress; Vary whenever one exists.
        let mut variants: Vec<(Encoding, File)> = Vec::new();
        if rules::compressible(&content_type) {
            for enc in [Encoding::Brotli, Encoding::Gzip] {
                if let Found::File(f) =
                    open::open_beneath(root, &format!("{name}{}", enc.suffix()), self.walk_only)
                {
                    variants.push((enc, f));
                }
            }
        }
        let available: Vec<Encoding> = variants.iter().map(|(e, _)| *e).collect();
        let chosen = rules::choose_encoding((req.headers)(Header::AcceptEncoding), &available);
        let (file, encoding) = match chosen {
            Some(enc) => match variants.into_iter().find(|(e, _)| *e == enc) {
                Some((_, f)) => (f, Some(enc)),
                None => (file, None),
            },
            None => (file, None),
        };
        let meta = file.metadata()?;
        let size = meta.len();
        let v = rules::Validators {
            ino: meta.ino(),
            size,
            mtime_secs: u64::try_from(meta.mtime()).unwrap_or(0),
            mtime_nsec: u64::try_from(meta.mtime_nsec()).unwrap_or(0),
        };
        let etag = v.etag();
        let last_modified = http_date(v.mtime_secs);
        let cache = rules::cache_control(name, self.expires);

        let common = |w: &mut HeadWriter<'_>| {
            w.header("ETag", etag.as_bytes());
            w.header("Last-Modified", &last_modified);
            if let Some(c) = &cache {
                w.header("Cache-Control", c.as_bytes());
            }
            if !available.is_empty() {
                w.header("Vary", b"Accept-Encoding");
            }
        };

        // RFC 9110 §13.2.2: If-None-Match, else If-Modified-Since.
        let not_modified = match (req.headers)(Header::IfNoneMatch) {
            Some(inm) => rules::none_match(inm, &etag),
            None => (req.headers)(Header::IfModifiedSince)
                .and_then(parse_http_date)
                .is_some_and(|since| v.mtime_secs <= since),
        };
        let mut head = Vec::with_capacity(512);
        if not_modified {
            let mut w = HeadWriter::status_line(&mut head, req.version, 304);
            common(&mut w);
            w.finish(req.date, req.version, req.end);
            return Ok(StaticReply {
                status: 304,
                head,
                body: None,
                inline_body: 0,
            });
        }

        let if_range_ok = (req.headers)(Header::IfRange)
            .map_or(true, |h| rules::if_range_holds(h, &etag, &last_modified));
        let ask = match (req.headers)(Header::Range) {
            Some(r) if if_range_ok && req.method == b"GET" => rules::parse_range(r, size),
            _ => RangeAsk::Whole,
        };
        let (status, offset, len) = match ask {
            RangeAsk::Whole => (200, 0, size),
            RangeAsk::Part { first, last } => (206, first, last - first + 1),
            RangeAsk::Unsatisfiable => {
                let mut w = HeadWriter::status_line(&mut head, req.version, 416);
                w.header("Content-Range", format!("bytes */{size}").as_bytes())
                    .header("Content-Length", b"0");
                common(&mut w);
                w.finish(req.date, req.version, req.end);
                return Ok(StaticReply {
                    status: 416,
                    head,
                    body: None,
                    inline_body: 0,
                });
            }
        };
        let mut w = HeadWriter::status_line(&mut head, req.version, status);
        w.header("Content-Type", content_type.as_bytes())
            .header_u64("Content-Length", len)
            .header("Accept-Ranges", b"bytes");
        if status == 206 {
            let range = format!("bytes {offset}-{}/{size}", offset + len - 1);
            w.header("Content-Range", range.as_bytes());
        }
        if let Some(enc) = encoding {
            w.header("Content-Encoding", enc.token());
        }
        common(&mut w);
        w.finish(req.date, req.version, req.end);
        let body = (req.method == b"GET" && len > 0).then_some(Body { file, offset, len });
        Ok(StaticReply {
            status,
            head,
            body,
            inline_body: 0,
        })
    }

    /// 404 for a refused path, with no detail: it must not tell whether
    /// anything exists where the path pointed.
    fn not_found(&self, req: &Request<'_>) -> StaticReply {
        const BODY: &[u8] = b"404 Not Found\n";
        let mut head = Vec::with_capacity(192);
        HeadWriter::status_line(&mut head, req.version, 404)
            .header("Content-Type", b"text/plain")
            .header_u64("Content-Length", BODY.len() as u64)
            .finish(req.date, req.version, req.end);
        let inline = req.method != b"HEAD";
        if inline {
            head.extend_from_slice(BODY);
        }
        StaticReply {
            status: 404,
            head,
            body: None,
            inline_body: if inline { BODY.len() as u64 } else { 0 },
        }
    }
}

/// Checks a `--static-map` directory at start: it must exist and be a
/// directory. (The worker opens it again after any `--uid` switch.)
pub fn check_dir(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("{} is not a directory", dir.display())),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
