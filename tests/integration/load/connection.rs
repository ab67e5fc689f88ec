//! One raw HTTP/1.1 client connection, for the load generator and the
//! tests that need a single exchange.

use super::*;

/// One client connection that never panics: every error is a `Failure`.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    pub(super) opened: Instant,
    pub(super) requests: u64,
}

/// `GET path` on a new connection (with `Connection: close`).
pub fn get_once(port: u16, path: &str) -> Result<Reply, Failure> {
    let mut c = Connection::connect(port).map_err(|e| Failure::Connect(e.kind(), e.to_string()))?;
    c.exchange(get_request(path, true).as_bytes())
}

/// A `GET` request, optionally with `Connection: close`.
pub fn get_request(path: &str, close: bool) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )
}

impl Connection {
    /// Connects to the server on 127.0.0.1:`port`.
    pub fn connect(port: u16) -> io::Result<Connection> {
        Connection::open(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// How long reads wait (`RESPONSE_TIMEOUT` by default).
    pub fn set_read_timeout(&self, t: Duration) {
        self.stream
            .set_read_timeout(Some(t))
            .expect("set a read timeout");
    }

    /// `GET path` on this (keep-alive) connection.
    pub fn get(&mut self, path: &str) -> Result<Reply, Failure> {
        self.exchange(get_request(path, false).as_bytes())
    }

    /// Sends bytes without reading anything.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.stream
            .write_all(bytes)
            .map_err(|e| Failure::Send(e.to_string()))
    }

    pub(super) fn open(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr, RESPONSE_TIMEOUT)?;
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
        stream.set_write_timeout(Some(RESPONSE_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Vec::new(),
            opened: Instant::now(),
            requests: 0,
        })
    }

    /// Sends one request and reads its response.
    pub fn exchange(&mut self, request: &[u8]) -> Result<Reply, Failure> {
        if !self.buf.is_empty() {
            return Err(Failure::Malformed(format!(
                "unsolicited bytes before the request: {:?}",
                String::from_utf8_lossy(&self.buf)
            )));
        }
        self.send(request)?;
        self.read_response()
    }

    /// Reads one response (the request must have a body-carrying answer).
    pub fn read_response(&mut self) -> Result<Reply, Failure> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Failure::Malformed("response head too large".into()));
            }
            let before = self.buf.len();
            match self.fill() {
                Ok(0) if before == 0 => return Err(Failure::NoResponse("EOF".into())),
                Ok(0) => return Err(Failure::Truncated("EOF in the response head".into())),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Err(Failure::Timeout),
                Err(e) if before == 0 => return Err(Failure::NoResponse(e.to_string())),
                Err(e) => return Err(Failure::Truncated(e.to_string())),
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end - 4]).into_owned();
        self.buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|_| version.starts_with("HTTP/1."))
            .ok_or_else(|| Failure::Malformed(format!("status line {status_line:?}")))?;
        let mut length = None;
        let mut pid = None;
        let mut close = version == "HTTP/1.0";
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(Failure::Malformed(format!("header line {line:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("x-pid") {
                pid = value.parse().ok();
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let length = length.ok_or_else(|| Failure::Malformed("no Content-Length".into()))?;
        while self.buf.len() < length {
            match self.fill() {
                Ok(0) => {
                    return Err(Failure::Truncated(format!(
                        "EOF after {} of {length} body bytes",
                        self.buf.len()
                    )))
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Err(Failure::Timeout),
                Err(e) => return Err(Failure::Truncated(e.to_string())),
            }
        }
        let body: Vec<u8> = self.buf.drain(..length).collect();
        if status != 200 {
            return Err(Failure::Status(status));
        }
        Ok(Reply { body, pid, close })
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 8192];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
