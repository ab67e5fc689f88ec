//! HTTP/1.x request heads: a pure parser over a byte slice (on top of
//! `httparse`) that returns complete / need-more / a specific error.
//!
//! It never does I/O, never logs and never touches Python. Everything it
//! returns refers to the input buffer by byte range, so a connection can keep
//! the parsed head while it keeps reading the body into the same buffer.

use std::ops::Range;

use super::framing::{parse_content_length, trim_bytes, TransferCodings};
pub use super::target::percent_decode;
use super::target::{check_target, split_target};

/// The HTTP version of a request (only these two are served).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// One header: byte ranges of its name and (trimmed) value in the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSpan {
    pub name: Range<usize>,
    pub value: Range<usize>,
}

/// A parsed request head. Ranges index the buffer that was parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestHead {
    /// Length of the head including the blank line: the body starts here.
    pub head_len: usize,
    pub method: Range<usize>,
    /// The request target as sent (origin-form, absolute-form, ...).
    pub target: Range<usize>,
    /// The path part of the target, without scheme/authority, query or fragment.
    pub path: Range<usize>,
    /// The query string (without `?` and without a fragment); empty if none.
    pub query: Range<usize>,
    pub version: Option<Version>,
    pub headers: Vec<HeaderSpan>,
    pub body: Option<BodyFraming>,
    /// Whether the client allows the connection to stay open after this request.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// Index into `headers` of `Host`, if present.
    pub host: Option<usize>,
}

impl RequestHead {
    pub fn version(&self) -> Version {
        self.version.unwrap_or(Version::Http11)
    }
    pub fn body_framing(&self) -> BodyFraming {
        self.body.unwrap_or(BodyFraming::None)
    }
}

/// Why a request head was refused; each maps to one status and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed syntax (400), with what was wrong.
    BadRequest(&'static str),
    /// The head is larger than the limit (431); carries the limit.
    HeadTooLarge(usize),
    /// More headers than allowed (431); carries the limit.
    TooManyHeaders(usize),
    /// The request line alone is longer than the head limit (414).
    UriTooLong(usize),
    /// A transfer coding we do not implement (501).
    UnsupportedTransferEncoding,
    /// HTTP version other than 1.0/1.1 (505).
    VersionNotSupported,
    /// An `Expect` other than 100-continue (417).
    ExpectationFailed,
    /// A malformed chunked body (400), with what was wrong.
    BadChunked(&'static str),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) | HttpError::BadChunked(_) => 400,
            HttpError::HeadTooLarge(_) | HttpError::TooManyHeaders(_) => 431,
            HttpError::UriTooLong(_) => 414,
            HttpError::UnsupportedTransferEncoding => 501,
            HttpError::VersionNotSupported => 505,
            HttpError::ExpectationFailed => 417,
        }
    }

    /// A sentence for the log, naming the option to change where one applies.
    pub fn reason(&self) -> String {
        match self {
            HttpError::BadRequest(why) => format!("bad request: {why}"),
            HttpError::HeadTooLarge(limit) => {
                format!("request head larger than {limit} bytes (raise --buffer-size to accept it)")
            }
            HttpError::TooManyHeaders(limit) => {
                format!("more than {limit} request headers (raise --max-headers to accept them)")
            }
            HttpError::UriTooLong(limit) => {
                format!("request line longer than {limit} bytes (raise --buffer-size to accept it)")
            }
            HttpError::UnsupportedTransferEncoding => {
                "unsupported Transfer-Encoding (only chunked is implemented)".to_string()
            }
            HttpError::VersionNotSupported => "HTTP version not supported".to_string(),
            HttpError::ExpectationFailed => "unsupported Expect header".to_string(),
            HttpError::BadChunked(why) => format!("bad chunked body: {why}"),
        }
    }
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line + headers), `--buffer-size`.
    pub max_head: usize,
    /// Most headers in one request, `--max-headers`.
    pub max_headers: usize,
}

/// Hard cap on `--max-headers`: the parser's header scratch lives on the stack.
pub const MAX_HEADERS_CAP: usize = 1024;

/// Outcome of [`parse_head`].
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is complete and was written into the caller's `RequestHead`.
    Complete,
    /// The head is not complete yet; read more.
    Partial,
    Error(HttpError),
}

fn span(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

fn trim(buf: &[u8], mut r: Range<usize>) -> Range<usize> {
    while r.start < r.end && matches!(buf[r.start], b' ' | b'\t') {
        r.start += 1;
    }
    while r.end > r.start && matches!(buf[r.end - 1], b' ' | b'\t') {
        r.end -= 1;
    }
    r
}

/// Parses the request head at the start of `buf`.
///
/// The result is written into `head`, whose vectors the caller reuses between
/// requests, so steady-state parsing does not allocate.
pub fn parse_head(buf: &[u8], limits: &Limits, head: &mut RequestHead) -> Parsed {
    // RFC 9112 §2.2: one empty line before a request may be ignored (some
    // clients add a CRLF after a body); more is not a client's doing.
    if buf.starts_with(b"\r\n\r\n") || buf.starts_with(b"\r\n\n") {
        return Parsed::Error(HttpError::BadRequest(
            "more than one empty line before the request line",
        ));
    }
    let mut scratch = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS_CAP];
    let max_headers = limits.max_headers.clamp(1, MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, &mut scratch[..max_headers]) {
        Ok(s) => s,
        Err(e) => return Parsed::Error(map_httparse_error(e, buf, limits)),
    };
    let head_len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => {
            if buf.len() >= limits.max_head {
                let line_done = buf[..limits.max_head].contains(&b'\n');
                return Parsed::Error(if line_done {
                    HttpError::HeadTooLarge(limits.max_head)
                } else {
                    HttpError::UriTooLong(limits.max_head)
                });
            }
            return Parsed::Partial;
        }
    };
    if head_len > limits.max_head {
        let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(head_len);
        return Parsed::Error(if line_end >= limits.max_head {
            HttpError::UriTooLong(limits.max_head)
        } else {
            HttpError::HeadTooLarge(limits.max_head)
        });
    }
    // httparse accepts a bare LF as a line end; a proxy in front may not,
    // and that disagreement is how requests get smuggled.
    if has_bare_lf(&buf[..head_len]) {
        return Parsed::Error(HttpError::BadRequest(
            "bare LF in request head (lines must end in CRLF)",
        ));
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Partial;
    };
    let version = match minor {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return Parsed::Error(HttpError::VersionNotSupported),
    };

    if let Err(why) = check_target(method.as_bytes(), target.as_bytes()) {
        return Parsed::Error(HttpError::BadRequest(why));
    }
    head.head_len = head_len;
    head.method = span(buf, method.as_bytes());
    head.target = span(buf, target.as_bytes());
    head.version = Some(version);
    head.headers.clear();
    head.host = None;
    head.expect_continue = false;
    let (path, query) = split_target(buf, head.target.clone());
    head.path = path;
    head.query = query;

    let mut content_length: Option<u64> = None;
    let mut codings = TransferCodings::default();
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut content_type: Option<&[u8]> = None;
    for h in req.headers.iter() {
        let name = span(buf, h.name.as_bytes());
        let value = trim(buf, span(buf, h.value));
        let n = h.name.as_bytes();
        let v = &buf[value.clone()];
        if n.eq_ignore_ascii_case(b"content-length") {
            let Some(len) = parse_content_length(v) else {
                return Parsed::Error(HttpError::BadRequest("invalid Content-Length"));
            };
            if content_length.is_some_and(|old| old != len) {
                return Parsed::Error(HttpError::BadRequest("conflicting Content-Length headers"));
            }
            content_length = Some(len);
        } else if n.eq_ignore_ascii_case(b"transfer-encoding") {
            codings.add(v);
        } else if n.eq_ignore_ascii_case(b"connection") {
            for token in v.split(|&b| b == b',') {
                let t = trim_bytes(token);
                if t.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        } else if n.eq_ignore_ascii_case(b"host") {
            if head.host.is_some() {
                return Parsed::Error(HttpError::BadRequest("more than one Host header"));
            }
            head.host = Some(head.headers.len());
        } else if n.eq_ignore_ascii_case(b"content-type") {
            // The app sees one CONTENT_TYPE: two that differ are ambiguous.
            if content_type.is_some_and(|first| first != v) {
                return Parsed::Error(HttpError::BadRequest(
                    "more than one Content-Type header, with different values",
                ));
            }
            content_type = Some(v);
        } else if n.eq_ignore_ascii_case(b"expect") {
            if v.eq_ignore_ascii_case(b"100-continue") {
                // RFC 9110 §10.1.1: an HTTP/1.0 Expect is ignored.
                head.expect_continue = version == Version::Http11;
            } else {
                return Parsed::Error(HttpError::ExpectationFailed);
            }
        }
        head.headers.push(HeaderSpan { name, value });
    }
    let chunked = match codings.judge() {
        Ok(chunked) => chunked,
        Err(e) => return Parsed::Error(e),
    };
    if chunked && content_length.is_some() {
        return Parsed::Error(HttpError::BadRequest(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if version == Version::Http11 && head.host.is_none() {
        return Parsed::Error(HttpError::BadRequest("missing Host header on HTTP/1.1"));
    }
    head.body = Some(match (chunked, content_length) {
        (true, _) => BodyFraming::Chunked,
        (false, Some(0)) | (false, None) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
    });
    if version == Version::Http10 && chunked {
        return Parsed::Error(HttpError::BadRequest("Transfer-Encoding on HTTP/1.0"));
    }
    head.keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };
    Parsed::Complete
}

/// `METHOD SP target SP HTTP/d.d` exactly (single spaces), whatever the digits.
fn well_formed_other_version(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    matches!(parts.as_slice(), [m, t, v]
        if !m.is_empty() && !t.is_empty()
            && v.len() == 8 && v.starts_with(b"HTTP/")
            && v[5].is_ascii_digit() && v[6] == b'.' && v[7].is_ascii_digit())
}

fn has_bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
}

/// Turns httparse's error into the specific reason a client or operator needs
/// (only on the error path, so the extra scans cost nothing in the common case).
fn map_httparse_error(e: httparse::Error, buf: &[u8], limits: &Limits) -> HttpError {
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let request_line = &buf[..line_end];
    let has_ctl = |s: &[u8]| s.iter().any(|&b| b < 0x20 && b != b'\r' || b == 0x7f);
    let why = match e {
        httparse::Error::TooManyHeaders => return HttpError::TooManyHeaders(limits.max_headers),
        // httparse says "version" for anything odd after the target; only a
        // well-formed line with an HTTP/d.d we do not serve is a 505.
        httparse::Error::Version if well_formed_other_version(request_line) => {
            return HttpError::VersionNotSupported
        }
        httparse::Error::Version => "malformed request line",
        httparse::Error::HeaderName => {
            if buf
                .windows(3)
                .any(|w| w[..2] == *b"\r\n" && (w[2] == b' ' || w[2] == b'\t'))
            {
                "obs-fold (a header continued on the next line) is not allowed"
            } else if buf
                .windows(2)
                .any(|w| (w[0] == b' ' || w[0] == b'\t') && w[1] == b':')
            {
                "whitespace between a header name and its colon"
            } else {
                "invalid character in a header name"
            }
        }
        httparse::Error::HeaderValue => "invalid character (NUL or control) in a header value",
        httparse::Error::Token | httparse::Error::Status if has_ctl(request_line) => {
            "invalid character (NUL or control) in the request line"
        }
        httparse::Error::Token | httparse::Error::Status => "malformed request line",
        httparse::Error::NewLine => "invalid line ending",
    };
    HttpError::BadRequest(why)
}

/// The reason phrase for a status code we generate ourselves.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Writes a complete short response generated by the server itself (errors):
/// a plain-text body naming the status, and `Connection: close` if asked.
pub fn write_simple_response(out: &mut Vec<u8>, status: u16, date: &[u8], close: bool) {
    let reason = reason_phrase(status);
    let body_len = 4 + reason.len() + 1;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa3(status).as_slice());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
    out.extend_from_slice(body_len.to_string().as_bytes());
    if close {
        out.extend_from_slice(b"\r\nConnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(itoa3(status).as_slice());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.push(b'\n');
}

fn itoa3(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
