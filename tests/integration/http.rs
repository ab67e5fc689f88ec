//! A tiny HTTP/1.1 client over std's TcpStream: raw bytes out, responses in
//! (Content-Length, chunked or close framing). Every read has a timeout, so a
//! server that hangs fails the test instead of hanging it.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::PROMPT;

#[derive(Debug, Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A request with the usual headers (`Host`, and `Content-Length` when there
/// is a body) plus `extra` header lines.
pub fn request(method: &str, target: &str, extra: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n");
    for h in extra {
        out.push_str(h);
        out.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to rwsgi");
        stream.set_read_timeout(Some(PROMPT)).unwrap();
        stream.set_write_timeout(Some(PROMPT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// A client on a connection made elsewhere (its request already sent).
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(PROMPT)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn set_read_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).unwrap();
    }

    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().unwrap().port()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to rwsgi");
    }

    /// Sends a request and reads its response (panics on any error).
    pub fn call(&mut self, method: &str, target: &str, extra: &[&str], body: &[u8]) -> Response {
        self.send(&request(method, target, extra, body));
        self.read_response(method == "HEAD")
            .unwrap_or_else(|e| panic!("{method} {target}: no complete response: {e}"))
    }

    pub fn get(&mut self, target: &str) -> Response {
        self.call("GET", target, &[], b"")
    }

    /// Reads one response. `head_request`: the response to a HEAD has no body.
    /// A body cut short by the server closing is an `UnexpectedEof` error.
    pub fn read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill()? == 0 {
                return Err(eof("connection closed before a complete response head"));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end - 4]).into_owned();
        self.buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        if !version.starts_with("HTTP/1.") {
            return Err(bad(format!("bad status line {status_line:?}")));
        }
        let mut headers = Vec::new();
        for line in lines {
            let (n, v) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("bad header line {line:?}")))?;
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut resp = Response {
            version,
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || status < 200 || status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            resp.body = self.read_chunked()?;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().map_err(|_| bad("bad Content-Length".into()))?;
            resp.body = self.read_exact_body(len)?;
        } else {
            while self.fill()? > 0 {}
            resp.body = std::mem::take(&mut self.buf);
        }
        Ok(resp)
    }

    fn read_exact_body(&mut self, len: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < len {
            if self.fill()? == 0 {
                return Err(eof(format!(
                    "closed after {} of {len} body bytes",
                    self.buf.len()
                )));
            }
        }
        Ok(self.buf.drain(..len).collect())
    }

    fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return Ok(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            if self.fill()? == 0 {
                return Err(eof("closed in the middle of a chunked body"));
            }
        }
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                while !self.read_line()?.is_empty() {} // trailers
                return Ok(body);
            }
            let mut chunk = self.read_exact_body(size + 2)?;
            if !chunk.ends_with(b"\r\n") {
                return Err(bad("chunk not followed by CRLF".into()));
            }
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
        }
    }

    /// Reads more bytes into the buffer; 0 means the server closed.
    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }

    /// Everything the server sends until it closes the connection (panics
    /// if it does not close within the read timeout).
    pub fn read_to_close(&mut self) -> Vec<u8> {
        loop {
            match self.fill() {
                Ok(0) => return std::mem::take(&mut self.buf),
                Ok(_) => {}
                Err(e) => panic!(
                    "connection not closed ({e}); received so far: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// True if the server closes the connection (EOF or reset) within the
    /// read timeout without sending anything more; false on a timeout.
    /// Panics if unexpected bytes arrive.
    pub fn closed_by_server(&mut self) -> bool {
        assert!(
            self.buf.is_empty(),
            "unexpected bytes after the response: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        match self.fill() {
            Ok(0) => true,
            Ok(_) => panic!(
                "unexpected bytes after the response: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) => panic!("reading from rwsgi: {e}"),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn eof(msg: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::UnexpectedEof, msg.into())
}

fn bad(msg: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg)
}

/// Parses the environ_dump app's `KEY<TAB>ascii(value)` lines.
pub fn environ(r: &Response) -> std::collections::HashMap<String, String> {
    assert_eq!(r.status, 200, "{r:?}");
    r.text()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
