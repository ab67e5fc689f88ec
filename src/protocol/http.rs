//! HTTP/1.x request heads: a pure parser over a byte slice (on top of
//! `httparse`) that returns complete / need-more / a specific error.
//!
//! It never does I/O, never logs and never touches Python. Everything it
//! returns refers to the input buffer by byte range, so a connection can keep
//! the parsed head while it keeps reading the body into the same buffer.

use std::ops::Range;

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

fn trim_bytes(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// Content-Length is 1*DIGIT: no sign, no spaces inside, and it must fit in u64.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The codings of every Transfer-Encoding field, in order, judged as the one
/// combined list they make (RFC 9110 §5.3). Chunked is the only coding we
/// decode; nothing is ever guessed at.
#[derive(Default)]
struct TransferCodings {
    present: bool,
    empty: bool,
    chunked: u32,
    others: u32,
    last_is_chunked: bool,
}

impl TransferCodings {
    fn add(&mut self, field: &[u8]) {
        self.present = true;
        for c in field.split(|&b| b == b',').map(trim_bytes) {
            self.empty |= c.is_empty();
            self.last_is_chunked = c.eq_ignore_ascii_case(b"chunked");
            if self.last_is_chunked {
                self.chunked += 1;
            } else {
                self.others += 1;
            }
        }
    }

    /// Whether the body is chunked; an error for a list that is not usable.
    fn judge(&self) -> Result<bool, HttpError> {
        if !self.present {
            return Ok(false);
        }
        if self.empty {
            return Err(HttpError::BadRequest("empty Transfer-Encoding"));
        }
        // RFC 9112 §6.3: not ending in chunked means no knowable length.
        if !self.last_is_chunked {
            return Err(HttpError::BadRequest(
                "Transfer-Encoding does not end in chunked, so the body length is unknown",
            ));
        }
        // RFC 9112 §6.1: chunked is applied at most once.
        if self.chunked > 1 {
            return Err(HttpError::BadRequest(
                "Transfer-Encoding applies chunked more than once",
            ));
        }
        if self.others > 0 {
            return Err(HttpError::UnsupportedTransferEncoding);
        }
        Ok(true)
    }
}

/// Splits a request target into path and query ranges; the fragment is dropped
/// and an absolute-form target (`http://host/path`) yields just its path.
fn split_target(buf: &[u8], target: Range<usize>) -> (Range<usize>, Range<usize>) {
    let t = &buf[target.clone()];
    let mut start = target.start;
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let after = target.start + scheme.len();
            start = buf[after..target.end]
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .map_or(target.end, |p| after + p);
        }
    }
    let end = buf[start..target.end]
        .iter()
        .position(|&b| b == b'#')
        .map_or(target.end, |p| start + p);
    match buf[start..end].iter().position(|&b| b == b'?') {
        Some(q) => (start..start + q, start + q + 1..end),
        None => (start..end, end..end),
    }
}

/// Percent-decodes a path into `out` (bytes; PEP 3333 then maps them 1:1 to
/// latin-1 characters). Invalid escapes are kept as they are, like other servers.
pub fn percent_decode(src: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < src.len() {
        let b = src[i];
        if b == b'%' && i + 2 < src.len() {
            if let (Some(h), Some(l)) = (hex(src[i + 1]), hex(src[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
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
