//! A load generator for the supervision tests: client threads that speak raw
//! HTTP/1.1 over std's `TcpStream` the way real clients do, and record the
//! outcome of every request.
//!
//! - A keep-alive client reuses its connection until a response says
//!   `Connection: close` (or the connection fails), then opens a new one.
//! - A connection-per-request client sends `Connection: close` and opens a
//!   new connection for every request.
//!
//! Nothing is retried: a request that fails is recorded as failed, with how
//! it failed. Every thread is bounded by a time limit and a request count, and
//! stops as soon as the `Load` is finished or dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

mod connection;
pub use connection::{get_once, get_request, Connection};

/// Longest a client waits for one response; far above any response time the
/// tests expect, so only a hung request reaches it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests per client thread at most (a bound on memory, not a target).
const MAX_REQUESTS_PER_CLIENT: usize = 200_000;
/// A response head larger than this is malformed (ours are ~150 bytes).
const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    KeepAlive,
    PerRequest,
}

/// How a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// `connect()` failed (e.g. refused).
    Connect(ErrorKind, String),
    /// The request could not be written.
    Send(String),
    /// The connection ended (EOF or reset) before any byte of the response.
    NoResponse(String),
    /// The connection ended or failed in the middle of the response.
    Truncated(String),
    /// No (complete) response within `RESPONSE_TIMEOUT`.
    Timeout,
    /// Not an HTTP/1.x response with a Content-Length.
    Malformed(String),
    /// A complete response with a status other than 200.
    Status(u16),
}

impl Failure {
    /// The kind, without details (for summaries).
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Connect(..) => "connect",
            Failure::Send(_) => "send",
            Failure::NoResponse(_) => "no-response",
            Failure::Truncated(_) => "truncated",
            Failure::Timeout => "timeout",
            Failure::Malformed(_) => "malformed",
            Failure::Status(_) => "status",
        }
    }
}

/// A complete 200 response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub body: Vec<u8>,
    /// The serving worker, from the app's `X-Pid` header.
    pub pid: Option<u32>,
    /// The server asked to close the connection after this response.
    pub close: bool,
}

/// One request and what became of it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub client: usize,
    pub mode: Mode,
    /// The client's connection number (a new number per connection).
    pub conn: u64,
    /// When `connect()` returned for that connection (None: it failed).
    pub conn_opened: Option<Instant>,
    /// Not the first request on its connection.
    pub reused: bool,
    pub start: Instant,
    pub end: Instant,
    pub result: Result<Reply, Failure>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }

    pub fn body(&self) -> Option<&[u8]> {
        self.result.as_ref().ok().map(|r| r.body.as_slice())
    }

    pub fn pid(&self) -> Option<u32> {
        self.result.as_ref().ok().and_then(|r| r.pid)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {} ({:?}) conn #{}{}: ",
            self.client,
            self.mode,
            self.conn,
            if self.reused { " (reused)" } else { "" }
        )?;
        match &self.result {
            Ok(r) => write!(
                f,
                "200 {:?} pid {:?}{}",
                String::from_utf8_lossy(&r.body),
                r.pid,
                if r.close { " close" } else { "" }
            ),
            Err(e) => write!(f, "FAILED {e:?}"),
        }?;
        write!(f, " after {:?}", self.end - self.start)
    }
}

/// What to run: how many clients of each kind, against which path.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub keepalive: usize,
    pub per_request: usize,
    pub path: String,
    /// Hard bound on the run; tests normally stop it far earlier.
    pub limit: Duration,
}

impl LoadSpec {
    pub fn new(keepalive: usize, per_request: usize, path: &str) -> LoadSpec {
        LoadSpec {
            keepalive,
            per_request,
            path: path.to_string(),
            limit: Duration::from_secs(60),
        }
    }
}

/// What the running clients share with the test thread.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
    by_pid: Mutex<BTreeMap<u32, u64>>,
}

/// Client threads running against a server.
pub struct Load {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Vec<Outcome>>>,
    pub started: Instant,
}

impl Load {
    pub fn start(port: u16, spec: &LoadSpec) -> Load {
        let shared = Arc::new(Shared::default());
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        let deadline = started + spec.limit;
        let modes = std::iter::repeat(Mode::KeepAlive)
            .take(spec.keepalive)
            .chain(std::iter::repeat(Mode::PerRequest).take(spec.per_request));
        let threads = modes
            .enumerate()
            .map(|(id, mode)| {
                let shared = Arc::clone(&shared);
                let path = spec.path.clone();
                thread::Builder::new()
                    .name(format!("load-{id}"))
                    .spawn(move || run_client(id, mode, addr, &path, &shared, deadline))
                    .expect("spawn a load thread")
            })
            .collect();
        Load {
            shared,
            threads,
            started,
        }
    }

    /// Successful requests so far.
    pub fn ok(&self) -> u64 {
        self.shared.ok.load(Ordering::Relaxed)
    }

    /// Failed requests so far.
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Successful requests per serving worker pid, so far.
    pub fn by_pid(&self) -> BTreeMap<u32, u64> {
        self.shared.by_pid.lock().unwrap().clone()
    }

    /// Polls until `pred` holds; panics after `timeout` with `what`.
    pub fn wait_until(&self, what: &str, timeout: Duration, pred: impl Fn(&Load) -> bool) {
        let deadline = Instant::now() + timeout;
        while !pred(self) {
            assert!(
                Instant::now() < deadline,
                "load: {what} not reached within {timeout:?} (ok {}, failed {}, by pid {:?})",
                self.ok(),
                self.failed(),
                self.by_pid()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Keeps the load running for `at_least` from now, and until `n` more
    /// requests have succeeded (panics if that takes longer than `timeout`).
    pub fn run_for(&self, at_least: Duration, n: u64, timeout: Duration) {
        let until = Instant::now() + at_least;
        let target = self.ok() + n;
        self.wait_until(
            &format!("{n} more successful requests"),
            timeout.max(at_least),
            |l| l.ok() >= target && Instant::now() >= until,
        );
    }

    /// Stops the clients (each finishes its current request) and collects
    /// every outcome.
    pub fn finish(mut self) -> Report {
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut outcomes: Vec<Outcome> = std::mem::take(&mut self.threads)
            .into_iter()
            .flat_map(|t| t.join().expect("a load thread panicked"))
            .collect();
        outcomes.sort_by_key(|o| o.start);
        Report {
            outcomes,
            duration: self.started.elapsed(),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // A test that panics mid-way must not leave clients running.
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Every request of a finished load, in order of start.
pub struct Report {
    pub outcomes: Vec<Outcome>,
    pub duration: Duration,
}

impl Report {
    pub fn ok(&self) -> usize {
        self.outcomes.iter().filter(|o| o.ok()).count()
    }

    pub fn failures(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| !o.ok()).collect()
    }

    /// Requests, successes, failures by kind, connections of each mode.
    pub fn summary(&self) -> String {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for o in self.failures() {
            if let Err(e) = &o.result {
                *kinds.entry(e.kind()).or_default() += 1;
            }
        }
        let conns = |mode| {
            self.outcomes
                .iter()
                .filter(|o| o.mode == mode)
                .map(|o| (o.client, o.conn))
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        format!(
            "{} requests in {:.1} s: {} ok, {} failed {:?}; {} keep-alive and {} per-request connections",
            self.outcomes.len(),
            self.duration.as_secs_f64(),
            self.ok(),
            self.outcomes.len() - self.ok(),
            kinds,
            conns(Mode::KeepAlive),
            conns(Mode::PerRequest),
        )
    }

    /// The summary plus the first failures, for assertion messages.
    pub fn describe(&self) -> String {
        let mut s = self.summary();
        for o in self.failures().iter().take(20) {
            s.push_str(&format!("\n  {o}"));
        }
        s
    }

    /// Panics (with details) if any request failed.
    pub fn assert_no_failures(&self, what: &str) {
        assert!(
            self.failures().is_empty(),
            "{what}: requests failed: {}",
            self.describe()
        );
    }

    /// Successful requests from clients of `mode`.
    pub fn ok_of(&self, mode: Mode) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.mode == mode && o.ok())
            .count()
    }
}

fn run_client(
    id: usize,
    mode: Mode,
    addr: SocketAddr,
    path: &str,
    shared: &Shared,
    deadline: Instant,
) -> Vec<Outcome> {
    let request = get_request(path, mode == Mode::PerRequest);
    let mut out = Vec::new();
    let mut conn: Option<Connection> = None;
    let mut conn_no = 0u64;
    while !shared.stop.load(Ordering::Relaxed)
        && Instant::now() < deadline
        && out.len() < MAX_REQUESTS_PER_CLIENT
    {
        let start = Instant::now();
        if conn.is_none() {
            conn_no += 1;
            match Connection::open(addr) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                    out.push(Outcome {
                        client: id,
                        mode,
                        conn: conn_no,
                        conn_opened: None,
                        reused: false,
                        start,
                        end: Instant::now(),
                        result: Err(Failure::Connect(e.kind(), e.to_string())),
                    });
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let reused = c.requests > 0;
        c.requests += 1;
        let opened = c.opened;
        let result = c.exchange(request.as_bytes());
        let keep = matches!(&result, Ok(r) if !r.close) && mode == Mode::KeepAlive;
        if !keep {
            conn = None;
        }
        match &result {
            Ok(r) => {
                shared.ok.fetch_add(1, Ordering::Relaxed);
                if let Some(pid) = r.pid {
                    *shared.by_pid.lock().unwrap().entry(pid).or_default() += 1;
                }
            }
            Err(_) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        out.push(Outcome {
            client: id,
            mode,
            conn: conn_no,
            conn_opened: Some(opened),
            reused,
            start,
            end: Instant::now(),
            result,
        });
    }
    out
}
