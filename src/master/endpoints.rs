//! The master's own small servers: `--stats` (uWSGI's stats JSON, written on
//! connect, or served over HTTP with `--stats-http`) and `--metrics`
//! (Prometheus text at `/metrics`). Everything is non-blocking inside the
//! master's loop: a client that does not read cannot stall supervision.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::socket::{BoundAddr, Listener};
use crate::stats::{render_json, render_prometheus, Snapshot};

/// Tokens: listeners from `LISTENER_BASE`, client connections from `CONN_BASE`.
pub const LISTENER_BASE: usize = 16;
pub const CONN_BASE: usize = 1024;
/// A client gets this long to send its request and take the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REQUEST: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Raw stats: the JSON document written on connect, then close (uWSGI's).
    Stats,
    /// The same JSON as an HTTP response.
    StatsHttp,
    /// Prometheus text at `/metrics`.
    Metrics,
}

impl Kind {
    /// The name a socket of this kind is handed over by (SIGUSR2).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Stats => "stats",
            Kind::StatsHttp => "stats-http",
            Kind::Metrics => "metrics",
        }
    }
}

enum Sock {
    TcpListener(TcpListener),
    UnixListener(UnixListener),
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

struct Client {
    stream: Stream,
    kind: Kind,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    deadline: Instant,
}

pub struct Endpoints {
    listeners: Vec<(Kind, Sock)>,
    /// Each listener's key and fd, to hand them over (SIGUSR2).
    keys: Vec<(String, RawFd)>,
    clients: HashMap<usize, Client>,
    next: usize,
}

impl Endpoints {
    /// Takes ownership of the bound endpoint sockets and registers them.
    pub fn new(bound: Vec<(Kind, Listener)>, registry: &Registry) -> io::Result<Endpoints> {
        let mut listeners = Vec::new();
        let keys = bound
            .iter()
            .map(|(_, l)| (l.key.clone(), l.raw_fd()))
            .collect();
        for (i, (kind, l)) in bound.into_iter().enumerate() {
            // The fd's ownership moves into the mio listener (one owner).
            let mut sock = match l.addr {
                BoundAddr::Tcp(_) => {
                    Sock::TcpListener(TcpListener::from_std(std::net::TcpListener::from(l.fd)))
                }
                BoundAddr::Unix(_) => Sock::UnixListener(UnixListener::from_std(
                    std::os::unix::net::UnixListener::from(l.fd),
                )),
            };
            let source: &mut dyn mio::event::Source = match &mut sock {
                Sock::TcpListener(s) => s,
                Sock::UnixListener(s) => s,
            };
            registry.register(source, Token(LISTENER_BASE + i), Interest::READABLE)?;
            listeners.push((kind, sock));
        }
        Ok(Endpoints {
            listeners,
            keys,
            clients: HashMap::new(),
            next: 0,
        })
    }

    /// The listeners' keys and fds, for a new master to take over.
    pub fn handover(&self) -> impl Iterator<Item = (&str, RawFd)> {
        self.keys.iter().map(|(k, fd)| (k.as_str(), *fd))
    }

    /// Fds a forked worker must close.
    pub fn fds(&self) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = self
            .listeners
            .iter()
            .map(|(_, s)| match s {
                Sock::TcpListener(l) => l.as_raw_fd(),
                Sock::UnixListener(l) => l.as_raw_fd(),
            })
            .collect();
        fds.extend(self.clients.values().map(|c| match &c.stream {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }));
        fds
    }

    /// Handles readiness of an endpoint token; `snapshot` is taken only when
    /// an answer is due.
    pub fn on_event(
        &mut self,
        token: Token,
        registry: &Registry,
        snapshot: &mut dyn FnMut(Kind) -> Snapshot,
    ) {
        let t = token.0;
        if (LISTENER_BASE..LISTENER_BASE + self.listeners.len()).contains(&t) {
            self.accept(t - LISTENER_BASE, registry, snapshot);
        } else if t >= CONN_BASE {
            self.progress(t - CONN_BASE, registry, snapshot);
        }
    }

    fn accept(
        &mut self,
        i: usize,
        registry: &Registry,
        snapshot: &mut dyn FnMut(Kind) -> Snapshot,
    ) {
        loop {
            let (kind, sock) = &self.listeners[i];
            let stream = match sock {
                Sock::TcpListener(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
                Sock::UnixListener(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            };
            let mut stream = match stream {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("stats/metrics accept failed: {e}");
                    return;
                }
            };
            let id = self.next;
            self.next += 1;
            let interest = Interest::READABLE | Interest::WRITABLE;
            if registry
                .register(stream.source(), Token(CONN_BASE + id), interest)
                .is_err()
            {
                continue;
            }
            let mut client = Client {
                stream,
                kind: *kind,
                input: Vec::new(),
                output: Vec::new(),
                written: 0,
                deadline: Instant::now() + CLIENT_TIMEOUT,
            };
            if client.kind == Kind::Stats {
                client.output = render_json(&snapshot(Kind::Stats)).into_bytes();
            }
            self.clients.insert(id, client);
            self.progress(id, registry, snapshot);
        }
    }

    fn progress(
        &mut self,
        id: usize,
        registry: &Registry,
        snapshot: &mut dyn FnMut(Kind) -> Snapshot,
    ) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        if c.output.is_empty() {
            let mut buf = [0u8; 2048];
            loop {
                match c.stream.io().read(&mut buf) {
                    // A client may half-close right after its request: answer
                    // a complete head, drop anything less.
                    Ok(0) if c.input.windows(4).any(|w| w == b"\r\n\r\n") => break,
                    Ok(0) => return self.drop_client(id, registry),
                    Ok(n) => c.input.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return self.drop_client(id, registry),
                }
                if c.input.len() > MAX_REQUEST {
                    return self.drop_client(id, registry);
                }
            }
            if !c.input.windows(4).any(|w| w == b"\r\n\r\n") {
                return; // wait for the whole request head
            }
            c.output = http_answer(c.kind, &c.input, snapshot);
        }
        while c.written < c.output.len() {
            match c.stream.io().write(&c.output[c.written..]) {
                Ok(0) => break,
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        self.drop_client(id, registry);
    }

    fn drop_client(&mut self, id: usize, registry: &Registry) {
        if let Some(mut c) = self.clients.remove(&id) {
            let _ = registry.deregister(c.stream.source());
        }
    }

    /// Drops clients past their deadline.
    pub fn expire(&mut self, registry: &Registry) {
        let now = Instant::now();
        let late: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            self.drop_client(id, registry);
        }
    }
}

/// The HTTP response for a stats-over-HTTP or metrics request.
fn http_answer(kind: Kind, request: &[u8], snapshot: &mut dyn FnMut(Kind) -> Snapshot) -> Vec<u8> {
    let line = request.split(|&b| b == b'\r').next().unwrap_or(b"");
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or(b"");
    let path = parts.next().unwrap_or(b"");
    let path = path.split(|&b| b == b'?').next().unwrap_or(b"");
    let (status, ctype, body) = if method != b"GET" && method != b"HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        )
    } else {
        match kind {
            Kind::Metrics if path == b"/metrics" || path == b"/" => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                render_prometheus(&snapshot(kind)),
            ),
            Kind::Metrics => (
                "404 Not Found",
                "text/plain",
                "metrics are at /metrics\n".into(),
            ),
            Kind::Stats | Kind::StatsHttp => {
                ("200 OK", "application/json", render_json(&snapshot(kind)))
            }
        }
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != b"HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    out
}
