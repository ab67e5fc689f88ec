//! The one encoder of HTTP response heads and body framing: WSGI responses,
//! refusals, `100 Continue`, chunks and static files' heads all go through
//! here. Pure functions
//! over byte buffers; the caller owns the socket.

use super::http::{reason_phrase, Version};

/// The interim response that tells a client to send its body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// The end of a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// What follows each chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`: exactly this many bytes.
    Length(u64),
    Chunked,
    /// The close of the connection ends the body (HTTP/1.0, or uwsgi behind nginx).
    Close,
    /// No body at all (HEAD, 1xx, 204, 304).
    NoBody,
}

/// Per-request facts that decide the framing, known before the app runs.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub version: Version,
    /// HEAD: headers only, whatever the app returns.
    pub head_only: bool,
    /// Whether the connection may stay open (client asked, server allows).
    pub keep_alive: bool,
    /// The peer reads the body until the connection closes (uwsgi behind
    /// nginx): never chunk, send no Connection header.
    pub close_delimited: bool,
    pub date: [u8; super::date::DATE_LEN],
}

/// A status code with no body by definition (RFC 9110 §15).
pub fn bodyless_status(status: u16) -> bool {
    status < 200 || status == 204 || status == 304
}

/// Starts a head: the status line for `status` (`NNN reason`, validated).
pub fn status_line(out: &mut Vec<u8>, version: Version, status: &[u8]) {
    out.extend_from_slice(version.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status);
    out.extend_from_slice(b"\r\n");
}

/// Appends one header line (name and value already validated).
pub fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Ends a head whose status line and app headers are in `out`: chooses the
/// framing, appends the framing, Date and Connection headers and the blank
/// line. `app_length` is the app's own Content-Length (already in `out`),
/// `known_len` the body length when the whole body is known now. Returns the
/// framing and whether the connection must close after this response.
pub fn finish_head(
    out: &mut Vec<u8>,
    meta: &Meta,
    status: u16,
    app_length: Option<u64>,
    known_len: Option<u64>,
    mut must_close: bool,
) -> (Framing, bool) {
    let framing = if bodyless_status(status) {
        Framing::NoBody
    } else if let Some(n) = app_length {
        Framing::Length(n)
    } else if let Some(n) = known_len {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        Framing::Length(n)
    } else if meta.head_only {
        Framing::NoBody
    } else if meta.version == Version::Http11 && !meta.close_delimited {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        Framing::Chunked
    } else {
        must_close = true;
        Framing::Close
    };
    out.extend_from_slice(b"Date: ");
    out.extend_from_slice(&meta.date);
    out.extend_from_slice(b"\r\n");
    if meta.close_delimited {
        // nginx reads to the close; Connection headers mean nothing there.
    } else if must_close {
        if meta.version == Version::Http11 {
            out.extend_from_slice(b"Connection: close\r\n");
        }
    } else if meta.version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let framing = if meta.head_only && framing != Framing::NoBody {
        match framing {
            // A HEAD answer announces the length but carries no body.
            Framing::Length(_) | Framing::Chunked | Framing::Close => Framing::NoBody,
            f => f,
        }
    } else {
        framing
    };
    (framing, must_close)
}

/// The size line that starts a chunk of `len` bytes.
pub fn chunk_prefix(len: usize) -> ChunkPrefix {
    let mut p = ChunkPrefix {
        bytes: [0; 18],
        len: 0,
    };
    let digits = if len == 0 {
        1
    } else {
        (usize::BITS - len.leading_zeros()).div_ceil(4) as usize
    };
    for i in 0..digits {
        let nibble = (len >> (4 * (digits - 1 - i))) & 0xF;
        p.bytes[i] = b"0123456789abcdef"[nibble];
    }
    p.bytes[digits] = b'\r';
    p.bytes[digits + 1] = b'\n';
    p.len = digits + 2;
    p
}

/// A chunk's size line, without allocating.
pub struct ChunkPrefix {
    bytes: [u8; 18],
    len: usize,
}

impl ChunkPrefix {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A server-generated error response (refusals, 500s, 503s): a short
/// plain-text body naming the status. `head_only` leaves the body out.
pub fn simple(out: &mut Vec<u8>, status: u16, date: &[u8], close: bool, head_only: bool) {
    super::http::write_simple_response(out, status, date, close);
    if head_only {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            out.truncate(end + 4);
        }
    }
}

/// How the connection ends after this response, which decides the
/// `Connection` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// Another request may follow.
    KeepAlive,
    /// The server closes the connection after this response.
    Close,
    /// uwsgi: nginx reads to the close, so no `Connection` header at all.
    ProxyDelimited,
}

/// Writes a head into `out`: `status_line`, any `header`s, then `finish`.
pub struct HeadWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> HeadWriter<'a> {
    /// Starts a head: `HTTP/1.x CODE Reason`.
    pub fn status_line(out: &'a mut Vec<u8>, version: Version, status: u16) -> HeadWriter<'a> {
        out.extend_from_slice(version.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.min(999).to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason_phrase(status).as_bytes());
        out.extend_from_slice(b"\r\n");
        HeadWriter { out }
    }

    /// One header; the caller passes only values it built (no CR or LF).
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        debug_assert!(!value.iter().any(|&b| b == b'\r' || b == b'\n'));
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    pub fn header_u64(&mut self, name: &str, value: u64) -> &mut Self {
        self.header(name, value.to_string().as_bytes())
    }

    /// `Date`, the `Connection` header `end` calls for on `version`, and the
    /// blank line.
    pub fn finish(&mut self, date: &[u8], version: Version, end: ConnectionEnd) {
        self.header("Date", date);
        match (end, version) {
            (ConnectionEnd::Close, Version::Http11) => {
                self.header("Connection", b"close");
            }
            (ConnectionEnd::KeepAlive, Version::Http10) => {
                self.header("Connection", b"keep-alive");
            }
            _ => {}
        }
        self.out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(version: Version, keep_alive: bool) -> Meta {
        Meta {
            version,
            head_only: false,
            keep_alive,
            close_delimited: false,
            date: *b"Thu, 01 Jan 1970 00:00:00 GMT",
        }
    }

    #[test]
    fn chunk_prefixes() {
        for (n, s) in [(0, "0"), (1, "1"), (15, "f"), (16, "10"), (4096, "1000")] {
            assert_eq!(chunk_prefix(n).as_bytes(), format!("{s}\r\n").as_bytes());
        }
        let max = chunk_prefix(usize::MAX);
        assert_eq!(max.as_bytes().len(), 16 + 2);
    }

    #[test]
    fn framing_choices() {
        let date = "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
        let mut out = Vec::new();
        let m = meta(Version::Http11, true);
        assert_eq!(
            finish_head(&mut out, &m, 200, None, Some(5), false),
            (Framing::Length(5), false)
        );
        assert_eq!(out, format!("Content-Length: 5\r\n{date}\r\n").as_bytes());
        out.clear();
        assert_eq!(
            finish_head(&mut out, &m, 200, None, None, false),
            (Framing::Chunked, false)
        );
        out.clear();
        let m10 = meta(Version::Http10, true);
        assert_eq!(
            finish_head(&mut out, &m10, 200, None, None, false),
            (Framing::Close, true)
        );
        out.clear();
        assert_eq!(
            finish_head(&mut out, &m10, 200, Some(3), None, false),
            (Framing::Length(3), false)
        );
        assert!(out.ends_with(b"Connection: keep-alive\r\n\r\n"));
        out.clear();
        assert_eq!(
            finish_head(&mut out, &m, 304, None, Some(9), false).0,
            Framing::NoBody
        );
        out.clear();
        assert_eq!(
            finish_head(&mut out, &m, 200, None, Some(9), true),
            (Framing::Length(9), true)
        );
        assert!(out.ends_with(b"Connection: close\r\n\r\n"));
        out.clear();
        let mut uw = meta(Version::Http11, false);
        uw.close_delimited = true;
        assert_eq!(
            finish_head(&mut out, &uw, 200, None, None, false),
            (Framing::Close, true)
        );
        assert!(!out.windows(10).any(|w| w == b"Connection"));
        out.clear();
        let mut head = meta(Version::Http11, true);
        head.head_only = true;
        assert_eq!(
            finish_head(&mut out, &head, 200, None, Some(9), false).0,
            Framing::NoBody
        );
        assert!(out.starts_with(b"Content-Length: 9\r\n"));
    }

    #[test]
    fn simple_head_only_has_no_body() {
        let mut out = Vec::new();
        simple(&mut out, 500, b"Thu, 01 Jan 1970 00:00:00 GMT", true, true);
        assert!(out.ends_with(b"\r\n\r\n"));
        let mut full = Vec::new();
        simple(
            &mut full,
            500,
            b"Thu, 01 Jan 1970 00:00:00 GMT",
            true,
            false,
        );
        assert!(full.len() > out.len());
    }

    fn head(version: Version, end: ConnectionEnd) -> String {
        let mut out = Vec::new();
        HeadWriter::status_line(&mut out, version, 206)
            .header("Content-Range", b"bytes 0-0/10")
            .header_u64("Content-Length", 1)
            .finish(b"Thu, 01 Jan 1970 00:00:00 GMT", version, end);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn connection_header_follows_version_and_end() {
        let h = head(Version::Http11, ConnectionEnd::KeepAlive);
        assert_eq!(
            h,
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-0/10\r\n\
             Content-Length: 1\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
        );
        assert!(head(Version::Http11, ConnectionEnd::Close).contains("Connection: close\r\n"));
        assert!(
            head(Version::Http10, ConnectionEnd::KeepAlive).contains("Connection: keep-alive\r\n")
        );
        assert!(!head(Version::Http10, ConnectionEnd::Close).contains("Connection"));
        assert!(!head(Version::Http11, ConnectionEnd::ProxyDelimited).contains("Connection"));
    }
}
