//! The uwsgi protocol on `--socket`, spoken with raw sockets (no nginx):
//! what a packet becomes, PING, refusals and their log lines, limits, and the
//! unix socket file's life (`--chmod-socket`, `--vacuum`, stale files).
//!
//! Tests: `requests` (what a packet becomes), `sockets` (the socket file).
//! Here, the helpers `nginx.rs` shares: a uwsgi packet encoder, raw uwsgi
//! connections and a flat JSON object parser for `nginx_app.py`'s `/environ`.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{app, Server, TempDir, PROMPT, STARTUP};

mod requests;
mod sockets;

// ---------------------------------------------------------------- helpers

/// One uwsgi packet head: the 4-byte header and the vars block. Encodes
/// whatever it is given (empty keys, duplicates); panics if the wire format
/// cannot express it.
pub fn encode(modifier1: u8, modifier2: u8, vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        for s in [k, v] {
            let len = u16::try_from(s.len()).expect("a uwsgi string is at most 65535 bytes");
            block.extend_from_slice(&len.to_le_bytes());
            block.extend_from_slice(s);
        }
    }
    let datasize = u16::try_from(block.len()).expect("a vars block is at most 65535 bytes");
    let mut out = vec![modifier1];
    out.extend_from_slice(&datasize.to_le_bytes());
    out.push(modifier2);
    out.extend_from_slice(&block);
    out
}

/// A WSGI request packet (modifier1 0) as nginx would send it: the usual
/// CGI vars, `extra` vars, `CONTENT_LENGTH` when there is a body, then the body.
pub fn request_packet(
    method: &str,
    path: &str,
    query: &str,
    protocol: &str,
    extra: &[(&str, &[u8])],
    body: &[u8],
) -> Vec<u8> {
    let uri = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let len = body.len().to_string();
    let mut vars: Vec<(&[u8], &[u8])> = vec![
        (b"REQUEST_METHOD", method.as_bytes()),
        (b"REQUEST_URI", uri.as_bytes()),
        (b"PATH_INFO", path.as_bytes()),
        (b"QUERY_STRING", query.as_bytes()),
        (b"SERVER_PROTOCOL", protocol.as_bytes()),
        (b"SERVER_NAME", b"localhost"),
        (b"SERVER_PORT", b"80"),
        (b"REMOTE_ADDR", b"10.1.2.3"),
        (b"REMOTE_PORT", b"54321"),
        (b"HTTP_HOST", b"localhost"),
    ];
    if !body.is_empty() {
        vars.push((b"CONTENT_LENGTH", len.as_bytes()));
    }
    vars.extend(extra.iter().map(|(k, v)| (k.as_bytes(), *v)));
    let mut out = encode(0, 0, &vars);
    out.extend_from_slice(body);
    out
}

/// Where a uwsgi listener is, from the master's `listening on uwsgi://…` line.
#[derive(Debug, Clone)]
pub enum Addr {
    Tcp(u16),
    Unix(PathBuf),
}

impl Addr {
    fn parse(logged: &str) -> Addr {
        match logged.strip_prefix("unix:") {
            Some(path) => Addr::Unix(PathBuf::from(path)),
            None => Addr::Tcp(
                logged
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("no port in {logged:?}")),
            ),
        }
    }

    /// The `uwsgi_pass` argument for nginx.
    pub fn nginx_upstream(&self) -> String {
        match self {
            Addr::Tcp(port) => format!("127.0.0.1:{port}"),
            Addr::Unix(path) => format!("unix:{}", path.display()),
        }
    }

    pub fn connect(&self) -> Raw {
        let stream = match self {
            Addr::Tcp(port) => {
                let s = TcpStream::connect(("127.0.0.1", *port)).expect("connect to uwsgi socket");
                s.set_nodelay(true).unwrap();
                s.set_read_timeout(Some(PROMPT)).unwrap();
                s.set_write_timeout(Some(PROMPT)).unwrap();
                RawStream::Tcp(s)
            }
            Addr::Unix(path) => {
                let s = UnixStream::connect(path)
                    .unwrap_or_else(|e| panic!("connect to {}: {e}", path.display()));
                s.set_read_timeout(Some(PROMPT)).unwrap();
                s.set_write_timeout(Some(PROMPT)).unwrap();
                RawStream::Unix(s)
            }
        };
        Raw { stream }
    }
}

/// The uwsgi listeners a server logged, in order.
pub fn uwsgi_addrs(server: &Server) -> Vec<Addr> {
    server
        .listening("uwsgi")
        .iter()
        .map(|a| Addr::parse(a))
        .collect()
}

enum RawStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A raw connection to a uwsgi socket.
pub struct Raw {
    stream: RawStream,
}

impl Raw {
    pub fn send(&mut self, bytes: &[u8]) {
        let r = match &mut self.stream {
            RawStream::Tcp(s) => s.write_all(bytes),
            RawStream::Unix(s) => s.write_all(bytes),
        };
        r.expect("send to the uwsgi socket");
    }

    /// Closes our sending side: the server sees EOF.
    pub fn shutdown_write(&mut self) {
        let _ = match &self.stream {
            RawStream::Tcp(s) => s.shutdown(Shutdown::Write),
            RawStream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }

    pub fn set_read_timeout(&self, t: Duration) {
        match &self.stream {
            RawStream::Tcp(s) => s.set_read_timeout(Some(t)).unwrap(),
            RawStream::Unix(s) => s.set_read_timeout(Some(t)).unwrap(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.stream {
            RawStream::Tcp(s) => s.read(buf),
            RawStream::Unix(s) => s.read(buf),
        }
    }

    /// Everything the server sends until it closes (EOF or reset); an error
    /// if it has not closed when the read timeout passes.
    pub fn try_read_to_close(&mut self) -> Result<Vec<u8>, (io::Error, Vec<u8>)> {
        let mut out = Vec::new();
        let mut tmp = [0u8; 64 * 1024];
        loop {
            match self.read(&mut tmp) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(out),
                Err(e) => return Err((e, out)),
            }
        }
    }

    pub fn read_to_close(&mut self) -> Vec<u8> {
        self.try_read_to_close().unwrap_or_else(|(e, got)| {
            panic!(
                "the server did not close the connection ({e}); received {:?}",
                String::from_utf8_lossy(&got)
            )
        })
    }

    /// Sends `bytes` and reads the close-delimited HTTP response.
    pub fn call(&mut self, bytes: &[u8]) -> RawResponse {
        self.send(bytes);
        RawResponse::parse(&self.read_to_close())
    }
}

/// An HTTP response read to the close, as a uwsgi peer receives it.
pub struct RawResponse {
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = String::from_utf8_lossy(&self.body);
        let cut: String = text.chars().take(500).collect();
        write!(
            f,
            "{:?} {:?} body ({} bytes) {cut:?}",
            self.status_line,
            self.headers,
            self.body.len()
        )
    }
}

impl RawResponse {
    pub fn parse(bytes: &[u8]) -> RawResponse {
        let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
            panic!(
                "no complete HTTP response head in {:?}",
                String::from_utf8_lossy(bytes)
            );
        };
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_string();
        let headers = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?} in {head:?}"));
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        RawResponse {
            status_line,
            headers,
            body: bytes[end + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {:?}", self.status_line))
    }
}

/// Parses a flat JSON object whose values are all strings (what
/// `nginx_app.py`'s `/environ` returns, ASCII with `\uXXXX` escapes).
pub fn parse_json_object(s: &str) -> HashMap<String, String> {
    fn string(it: &mut std::iter::Peekable<std::str::Chars<'_>>, s: &str) -> String {
        assert_eq!(it.next(), Some('"'), "expected a JSON string in {s}");
        let mut out = String::new();
        let mut pending_high: Option<u32> = None;
        loop {
            let c = it
                .next()
                .unwrap_or_else(|| panic!("unterminated string in {s}"));
            match c {
                '"' => return out,
                '\\' => {
                    let e = it.next().expect("escape");
                    let simple = match e {
                        '"' => Some('"'),
                        '\\' => Some('\\'),
                        '/' => Some('/'),
                        'b' => Some('\u{8}'),
                        'f' => Some('\u{c}'),
                        'n' => Some('\n'),
                        'r' => Some('\r'),
                        't' => Some('\t'),
                        'u' => None,
                        other => panic!("bad escape \\{other} in {s}"),
                    };
                    if let Some(c) = simple {
                        out.push(c);
                        continue;
                    }
                    let hex: String = (0..4).filter_map(|_| it.next()).collect();
                    let u = u32::from_str_radix(&hex, 16).expect("\\u escape");
                    match (pending_high.take(), u) {
                        (None, 0xD800..=0xDBFF) => pending_high = Some(u),
                        (Some(h), 0xDC00..=0xDFFF) => {
                            let c = 0x10000 + ((h - 0xD800) << 10) + (u - 0xDC00);
                            out.push(char::from_u32(c).expect("a code point"));
                        }
                        (None, u) => out.push(char::from_u32(u).expect("a code point")),
                        (Some(_), _) => panic!("lone surrogate in {s}"),
                    }
                }
                c => out.push(c),
            }
        }
    }
    let mut it = s.trim().chars().peekable();
    let mut map = HashMap::new();
    assert_eq!(it.next(), Some('{'), "not a JSON object: {s}");
    loop {
        while it.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            it.next();
        }
        if it.peek() == Some(&'}') {
            return map;
        }
        let k = string(&mut it, s);
        while it.peek().is_some_and(|c| c.is_whitespace() || *c == ':') {
            it.next();
        }
        let v = string(&mut it, s);
        map.insert(k, v);
    }
}

/// The body `nginx_app.py`'s `/stream` route yields.
pub fn stream_body() -> Vec<u8> {
    (0..8)
        .flat_map(|i| format!("chunk {i};").repeat(1000).into_bytes())
        .collect()
}

/// rwsgi serving `nginx_app.py` on a TCP uwsgi socket only, plus `extra`.
fn uwsgi_server(extra: &[&str]) -> (Server, Addr) {
    let a = app("nginx_app.py");
    let mut args = vec!["--socket", "127.0.0.1:0", "--wsgi-file", &a];
    args.extend_from_slice(extra);
    let server = Server::start_exact(&args);
    let addr = uwsgi_addrs(&server)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no uwsgi listener logged:\n{}", server.log_text()));
    (server, addr)
}

/// A plain GET over uwsgi gets 200 "ok".
fn assert_serves(addr: &Addr, what: &str) {
    let r = addr
        .connect()
        .call(&request_packet("GET", "/", "", "HTTP/1.1", &[], b""));
    assert_eq!(r.status(), 200, "{what}: {r:?}");
    assert_eq!(r.body, b"ok", "{what}");
}

fn environ_over(addr: &Addr, packet: &[u8]) -> HashMap<String, String> {
    let r = addr.connect().call(packet);
    assert_eq!(r.status(), 200, "{r:?}");
    parse_json_object(&String::from_utf8_lossy(&r.body))
}
