//! A response head the server writes itself (static files): the status
//! line, headers, then `Date`, the connection decision and the blank line,
//! in the same order and with the same rules as the app's responses.

use super::http::{reason_phrase, Version};

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
