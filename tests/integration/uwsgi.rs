//! The uwsgi protocol on `--socket`, spoken with raw sockets (no nginx):
//! what a packet becomes, PING, refusals and their log lines, limits, and the
//! unix socket file's life (`--chmod-socket`, `--vacuum`, stale files).
//!
//! Also the helpers `nginx.rs` shares: a uwsgi packet encoder, raw uwsgi
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

// ---------------------------------------------------------------- requests

#[test]
fn response_status_line_follows_server_protocol_and_is_never_chunked() {
    let (_server, addr) = uwsgi_server(&[]);
    for proto in ["HTTP/1.0", "HTTP/1.1"] {
        // A streamed body (no Content-Length): close-delimited, not chunked.
        let r = addr
            .connect()
            .call(&request_packet("GET", "/stream", "", proto, &[], b""));
        assert_eq!(r.status_line, format!("{proto} 200 OK"), "{r:?}");
        assert_eq!(r.header("Transfer-Encoding"), None, "{proto}: {r:?}");
        assert_eq!(r.header("Content-Length"), None, "{proto}");
        assert!(
            r.body == stream_body(),
            "{proto}: streamed body differs: {} bytes, starts {:?}",
            r.body.len(),
            String::from_utf8_lossy(&r.body[..r.body.len().min(80)])
        );
        // A body with a length keeps it.
        let r = addr
            .connect()
            .call(&request_packet("POST", "/echo", "", proto, &[], b"hello"));
        assert_eq!(r.status_line, format!("{proto} 200 OK"), "{r:?}");
        assert_eq!(r.header("Content-Length"), Some("5"), "{r:?}");
        assert_eq!(r.body, b"hello");
    }
}

#[test]
fn vars_become_the_environ_as_sent() {
    let (_server, addr) = uwsgi_server(&[]);
    let env = environ_over(
        &addr,
        &request_packet(
            "GET",
            "/environ",
            "x=1&y=%20z",
            "HTTP/1.1",
            &[
                ("SCRIPT_NAME", b"/app"),
                ("HTTP_X_CUSTOM", b"custom value"),
                ("REQUEST_SCHEME", b"http"),
            ],
            b"",
        ),
    );
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("REQUEST_METHOD"), Some("GET"), "{env:#?}");
    assert_eq!(get("PATH_INFO"), Some("/environ"), "{env:#?}");
    assert_eq!(get("QUERY_STRING"), Some("x=1&y=%20z"), "{env:#?}");
    assert_eq!(get("SCRIPT_NAME"), Some("/app"), "{env:#?}");
    assert_eq!(get("HTTP_X_CUSTOM"), Some("custom value"), "{env:#?}");
    // The client nginx saw, not the socket peer.
    assert_eq!(get("REMOTE_ADDR"), Some("10.1.2.3"), "{env:#?}");
    assert_eq!(get("SERVER_PROTOCOL"), Some("HTTP/1.1"), "{env:#?}");
    assert_eq!(get("wsgi.url_scheme"), Some("http"), "{env:#?}");

    // An empty QUERY_STRING (nginx always sends one) stays empty.
    let env = environ_over(
        &addr,
        &request_packet("GET", "/environ", "", "HTTP/1.1", &[], b""),
    );
    assert_eq!(
        env.get("QUERY_STRING").map(String::as_str),
        Some(""),
        "{env:#?}"
    );
    assert_eq!(
        env.get("SCRIPT_NAME").map(String::as_str),
        Some(""),
        "{env:#?}"
    );

    // HTTPS=on (nginx's `$https if_not_empty`) makes the scheme https.
    let env = environ_over(
        &addr,
        &request_packet(
            "GET",
            "/environ",
            "",
            "HTTP/1.1",
            &[("HTTPS", b"on"), ("REQUEST_SCHEME", b"https")],
            b"",
        ),
    );
    assert_eq!(
        env.get("wsgi.url_scheme").map(String::as_str),
        Some("https"),
        "{env:#?}"
    );
}

#[test]
fn missing_vars_get_defaults_and_repeated_headers_are_joined() {
    let (_server, addr) = uwsgi_server(&[]);
    let env = environ_over(
        &addr,
        &encode(
            0,
            0,
            &[
                (b"REQUEST_URI", b"/environ?q=1"),
                (b"HTTP_ACCEPT", b"text/html"),
                (b"HTTP_X_TWICE", b"1"),
                (b"HTTP_ACCEPT", b"*/*"),
                (b"HTTP_COOKIE", b"a=1"),
                (b"HTTP_X_TWICE", b"2"),
                (b"HTTP_COOKIE", b"b=2"),
                (b"HTTPS", b"1"),
            ],
        ),
    );
    let get = |k: &str| env.get(k).map(String::as_str);
    // No REQUEST_METHOD, SERVER_PROTOCOL or PATH_INFO: GET, HTTP/1.0, and
    // the path of REQUEST_URI.
    assert_eq!(get("REQUEST_METHOD"), Some("GET"), "{env:#?}");
    assert_eq!(get("SERVER_PROTOCOL"), Some("HTTP/1.0"), "{env:#?}");
    assert_eq!(get("PATH_INFO"), Some("/environ"), "{env:#?}");
    // A known header, an unknown one and cookies, each sent twice.
    assert_eq!(get("HTTP_ACCEPT"), Some("text/html, */*"), "{env:#?}");
    assert_eq!(get("HTTP_X_TWICE"), Some("1, 2"), "{env:#?}");
    assert_eq!(get("HTTP_COOKIE"), Some("a=1; b=2"), "{env:#?}");
    assert_eq!(get("wsgi.url_scheme"), Some("https"), "{env:#?}");
    assert_eq!(get("SERVER_NAME"), Some("127.0.0.1"), "{env:#?}");
}

/// A CGI var sent twice (a `uwsgi_param` on top of `uwsgi_params`): the last
/// one is the environ's, and what rwsgi derives from it follows it too.
#[test]
fn a_repeated_cgi_var_is_the_last_one_everywhere() {
    let (_server, addr) = uwsgi_server(&[]);
    let env = environ_over(
        &addr,
        &encode(
            0,
            0,
            &[
                (b"REQUEST_URI", b"/first"),
                (b"HTTPS", b"off"),
                (b"REQUEST_URI", b"/environ?x=1"),
                (b"HTTPS", b"on"),
            ],
        ),
    );
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("REQUEST_URI"), Some("/environ?x=1"), "{env:#?}");
    assert_eq!(get("PATH_INFO"), Some("/environ"), "{env:#?}");
    assert_eq!(get("HTTPS"), Some("on"), "{env:#?}");
    assert_eq!(get("wsgi.url_scheme"), Some("https"), "{env:#?}");
}

#[test]
fn ping_gets_the_four_byte_pong() {
    let (_server, addr) = uwsgi_server(&[]);
    let mut c = addr.connect();
    c.send(&[100, 0, 0, 0]);
    assert_eq!(c.read_to_close(), [100, 0, 0, 1], "PING answer");
    assert_serves(&addr, "after a PING");
}

#[test]
fn uwsgi_magic_vars_load_no_code() {
    let dir = TempDir::new("magic");
    let marker = dir.path().join("imported");
    let evil = format!(
        "open({:?}, 'w').write('x')\n\
         def application(environ, start_response):\n    \
             start_response('200 OK', [])\n    \
             return [b'EVIL']\n",
        marker.to_str().unwrap()
    );
    std::fs::write(dir.path().join("evil.py"), evil).unwrap();
    let (server, addr) = uwsgi_server(&[]);
    let evil_path = dir.path().join("evil.py");
    let dir_str = dir.path().to_str().unwrap();
    let packet = request_packet(
        "GET",
        "/environ",
        "",
        "HTTP/1.1",
        &[
            ("UWSGI_FILE", evil_path.to_str().unwrap().as_bytes()),
            ("UWSGI_SCRIPT", b"evil"),
            ("UWSGI_MODULE", b"evil"),
            ("UWSGI_CALLABLE", b"application"),
            ("UWSGI_CHDIR", dir_str.as_bytes()),
            ("UWSGI_PYHOME", dir_str.as_bytes()),
        ],
        b"",
    );
    let r = addr.connect().call(&packet);
    assert_eq!(r.status(), 200, "{r:?}");
    assert_ne!(r.body, b"EVIL", "UWSGI_FILE / UWSGI_SCRIPT loaded code");
    let env = parse_json_object(&String::from_utf8_lossy(&r.body));
    assert_eq!(env.get("PATH_INFO").map(String::as_str), Some("/environ"));
    let leaked: Vec<&String> = env.keys().filter(|k| k.starts_with("UWSGI_")).collect();
    assert!(leaked.is_empty(), "UWSGI_* vars in the environ: {leaked:?}");
    assert!(
        !marker.exists(),
        "evil.py was imported; log:\n{}",
        server.log_text()
    );
    assert_serves(&addr, "after magic vars");
}

#[test]
fn a_65535_byte_vars_block_is_accepted_by_default() {
    let (_server, addr) = uwsgi_server(&[]);
    let base = request_packet("GET", "/environ", "", "HTTP/1.1", &[], b"");
    let base_datasize = base.len() - 4;
    // One more var, padded so the block is exactly 65535 bytes.
    let pad_len = 65535 - base_datasize - 4 - "HTTP_X_PAD".len();
    let pad = vec![b'p'; pad_len];
    let packet = request_packet(
        "GET",
        "/environ",
        "",
        "HTTP/1.1",
        &[("HTTP_X_PAD", &pad)],
        b"",
    );
    assert_eq!(u16::from_le_bytes([packet[1], packet[2]]), 65535);
    let env = environ_over(&addr, &packet);
    assert_eq!(
        env.get("HTTP_X_PAD").map(String::len),
        Some(pad_len),
        "the padding var did not arrive whole"
    );
}

#[test]
fn a_vars_block_over_buffer_size_is_refused_and_logged() {
    let (mut server, addr) = uwsgi_server(&["--buffer-size", "4096"]);
    let pad = vec![b'p'; 5000];
    let packet = request_packet("GET", "/", "", "HTTP/1.1", &[("HTTP_X_PAD", &pad)], b"");
    let datasize = u16::from_le_bytes([packet[1], packet[2]]).to_string();
    let from = server.log().len();
    let mut c = addr.connect();
    c.send(&packet);
    let got = c.read_to_close();
    assert!(
        got.is_empty(),
        "refused packet answered {:?}",
        String::from_utf8_lossy(&got)
    );
    let line = server.wait_for_log_from(from, "naming the limit", PROMPT, |l| {
        l.contains(&datasize) && l.contains("4096") && l.contains("--buffer-size")
    });
    assert!(line.contains("uwsgi"), "{line}");
    // Just under the limit still works.
    let pad = vec![b'p'; 3000];
    let r = addr.connect().call(&request_packet(
        "GET",
        "/",
        "",
        "HTTP/1.1",
        &[("HTTP_X_PAD", &pad)],
        b"",
    ));
    assert_eq!(r.status(), 200, "{r:?}");
}

/// A POST whose body stops 90 bytes short of its CONTENT_LENGTH.
fn good_head_then_short_body() -> Vec<u8> {
    let mut p = request_packet("POST", "/echo", "", "HTTP/1.1", &[], &[b'b'; 100]);
    p.truncate(p.len() - 90);
    p
}

#[test]
fn malformed_input_closes_the_connection_with_a_specific_log_line() {
    let (server, addr) = uwsgi_server(&[]);
    let worker = server.children();
    assert_eq!(worker.len(), 1, "{}", server.log_text());
    let good = request_packet("GET", "/", "", "HTTP/1.1", &[], b"");
    let has = |words: &'static [&'static str]| move |l: &str| words.iter().all(|w| l.contains(w));
    let incomplete = |l: &str| {
        l.contains("uwsgi")
            && ["incomplete", "truncated", "before a complete"]
                .iter()
                .any(|w| l.contains(w))
    };
    // (what, bytes, close our side after sending, log line check)
    type Check = Box<dyn Fn(&str) -> bool>;
    let cases: Vec<(&str, Vec<u8>, bool, Check)> =
        vec![
        (
            "truncated header, then close",
            good[..2].to_vec(),
            true,
            Box::new(incomplete),
        ),
        (
            "datasize beyond the bytes sent, then close",
            good[..good.len() - 7].to_vec(),
            true,
            Box::new(incomplete),
        ),
        (
            "body shorter than CONTENT_LENGTH, then close",
            good_head_then_short_body(),
            true,
            Box::new(incomplete),
        ),
        (
            "truncated var (value length past the block)",
            {
                // key "A", then a value length of 50 with 3 bytes in the block.
                let block = [1u8, 0, b'A', 50, 0, b'x', b'y', b'z'];
                let mut p = vec![0, block.len() as u8, 0, 0];
                p.extend_from_slice(&block);
                p
            },
            false,
            Box::new(has(&["uwsgi", "runs past the end of the vars block"])),
        ),
        (
            "zero-length key",
            encode(0, 0, &[(b"REQUEST_METHOD", b"GET"), (b"", b"x")]),
            false,
            Box::new(has(&["uwsgi", "empty key"])),
        ),
        (
            "CONTENT_LENGTH not a number",
            encode(0, 0, &[(b"CONTENT_LENGTH", b"12x")]),
            false,
            Box::new(has(&["CONTENT_LENGTH", "12x", "not a decimal number"])),
        ),
        (
            "conflicting CONTENT_LENGTH",
            encode(0, 0, &[(b"CONTENT_LENGTH", b"1"), (b"CONTENT_LENGTH", b"2")]),
            false,
            Box::new(has(&["conflicting CONTENT_LENGTH"])),
        ),
        (
            "CR LF in REQUEST_URI (nginx never forwards one)",
            encode(0, 0, &[(b"REQUEST_URI", b"/a\r\nforged")]),
            false,
            Box::new(has(&["a control byte in REQUEST_URI"])),
        ),
        (
            "ESC in QUERY_STRING",
            encode(0, 0, &[(b"QUERY_STRING", b"a=\x1b[2J")]),
            false,
            Box::new(has(&["a control byte in QUERY_STRING"])),
        ),
        (
            "modifier1 5",
            encode(5, 0, &[(b"REQUEST_METHOD", b"GET")]),
            false,
            Box::new(has(&["uwsgi", "modifier1 5"])),
        ),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            false,
            Box::new(has(&[
                "this looks like an HTTP request on a uwsgi socket; use --http for HTTP clients",
            ])),
        ),
    ];
    let mut failures = Vec::new();
    for (what, bytes, close, check) in cases {
        let from = server.log().len();
        let mut c = addr.connect();
        c.send(&bytes);
        if close {
            c.shutdown_write();
        }
        match c.try_read_to_close() {
            Ok(got) if got.is_empty() => {}
            Ok(got) => failures.push(format!(
                "{what}: answered {:?} instead of just closing",
                String::from_utf8_lossy(&got)
            )),
            Err((e, _)) => failures.push(format!("{what}: connection not closed ({e})")),
        }
        // The log line may follow the close by a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        let logged = loop {
            if let Some(l) = server.log().iter().skip(from).find(|l| check(l)) {
                break Some(l.clone());
            }
            if Instant::now() >= deadline {
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        if logged.is_none() {
            failures.push(format!(
                "{what}: no specific log line; new lines: {:?}",
                &server.log()[from..]
            ));
        }
        // The same worker serves a good request right after.
        assert_serves(&addr, &format!("after {what}"));
        assert_eq!(server.children(), worker, "after {what}: worker changed");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_sender_that_stalls_midway_is_cut_off_after_http_timeout() {
    let (mut server, addr) = uwsgi_server(&["--http-timeout", "2"]);
    let good = request_packet("GET", "/", "", "HTTP/1.1", &[("HTTP_X_A", b"b")], b"");
    let from = server.log().len();
    let mut c = addr.connect();
    c.set_read_timeout(Duration::from_secs(15));
    let started = Instant::now();
    c.send(&good[..good.len() / 2]);
    let got = c.try_read_to_close();
    let took = started.elapsed();
    let got = match got {
        Ok(got) => got,
        Err((e, _)) => panic!("stalled connection still open after {took:?} ({e})"),
    };
    // Nothing, or a 408 (which nginx would pass on to its client).
    if !got.is_empty() {
        assert_eq!(RawResponse::parse(&got).status(), 408, "{got:?}");
    }
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "closed after {took:?}; --http-timeout is 2 s"
    );
    assert_serves(&addr, "after a stalled sender");
    server.wait_for_log_from(
        from,
        "about the stalled uwsgi peer",
        Duration::from_secs(5),
        |l| l.contains("--http-timeout"),
    );
}

// ---------------------------------------------------------------- sockets

#[test]
fn http_and_uwsgi_listeners_on_one_server_both_serve() {
    let dir = TempDir::new("both");
    let sock = dir.path().join("app.sock");
    let server = Server::start(&[
        "--wsgi-file",
        &app("nginx_app.py"),
        "--socket",
        "127.0.0.1:0",
        "--uwsgi-socket",
        sock.to_str().unwrap(),
    ]);
    let r = server.connect().get("/");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"ok"[..]),
        "HTTP: {r:?}"
    );
    let addrs = uwsgi_addrs(&server);
    assert_eq!(addrs.len(), 2, "{addrs:?}; log:\n{}", server.log_text());
    assert!(
        matches!(&addrs[1], Addr::Unix(p) if *p == sock),
        "{addrs:?}"
    );
    for a in &addrs {
        assert_serves(a, &format!("uwsgi on {a:?}"));
    }
    // And HTTP again, after the uwsgi requests.
    assert_eq!(server.connect().get("/").body, b"ok");
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn chmod_socket_sets_the_socket_file_mode() {
    let dir = TempDir::new("chmod");
    for (flag, want) in [(Some("660"), 0o660), (None, 0o666)] {
        let sock = dir.path().join("app.sock");
        let mut args = vec!["--socket", sock.to_str().unwrap(), "--wsgi-file"];
        let a = app("nginx_app.py");
        args.push(&a);
        args.push("--chmod-socket");
        args.extend(flag);
        let server = Server::start_exact(&args);
        assert_eq!(
            mode_of(&sock),
            want,
            "--chmod-socket {flag:?} gave mode {:o}",
            mode_of(&sock)
        );
        assert_serves(&Addr::Unix(sock.clone()), "unix socket");
        drop(server);
    }
}

#[test]
fn vacuum_removes_the_socket_file_on_exit_and_without_it_the_file_stays() {
    let dir = TempDir::new("vacuum");
    for vacuum in [true, false] {
        let sock = dir.path().join(if vacuum { "v.sock" } else { "nv.sock" });
        let a = app("nginx_app.py");
        let mut args = vec!["--socket", sock.to_str().unwrap(), "--wsgi-file", &a];
        if vacuum {
            args.push("--vacuum");
        }
        let mut server = Server::start_exact(&args);
        assert!(sock.exists());
        assert_serves(&Addr::Unix(sock.clone()), "before TERM");
        server.signal("TERM");
        let status = server.wait_exit(PROMPT);
        assert_eq!(status.code(), Some(0), "{}", server.log_text());
        assert_eq!(
            sock.exists(),
            !vacuum,
            "vacuum={vacuum}: socket file exists={}; log:\n{}",
            sock.exists(),
            server.log_text()
        );
    }
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new("stale");
    let sock = dir.path().join("app.sock");
    // A socket file nobody listens on, as a killed server leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(UnixStream::connect(&sock).is_err(), "stale socket accepts");
    let a = app("nginx_app.py");
    let server = Server::start_exact(&["--socket", sock.to_str().unwrap(), "--wsgi-file", &a]);
    assert_serves(&Addr::Unix(sock.clone()), "on the replaced socket");
    drop(server);
}

#[test]
fn a_regular_file_at_the_socket_path_is_an_error_and_is_kept() {
    let dir = TempDir::new("regular");
    let path = dir.path().join("app.sock");
    std::fs::write(&path, "precious data").unwrap();
    let a = app("nginx_app.py");
    let mut server = Server::spawn(&["--socket", path.to_str().unwrap(), "--wsgi-file", &a]);
    let status = server.wait_exit(STARTUP);
    let log = server.log_text();
    assert_eq!(status.code(), Some(3), "{status}; log:\n{log}");
    assert!(
        log.contains(path.to_str().unwrap()),
        "the error does not name {}:\n{log}",
        path.display()
    );
    assert!(!log.contains("] ready: "), "{log}");
    assert_eq!(
        std::fs::read_to_string(&path).ok().as_deref(),
        Some("precious data"),
        "the regular file was changed or deleted"
    );
}
