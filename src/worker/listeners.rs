//! The shared listening sockets as one worker sees them: accepting in
//! batches, leaving connections to less loaded siblings, surviving fd
//! exhaustion, and letting go of the sockets when the worker stops.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UnixListener};
use mio::{Interest, Registry, Token};

use super::conn::Stream;
use super::connections::Connections;
use crate::config::Protocol;
use crate::protocol::response as wire;
use crate::scoreboard::Scoreboard;
use crate::socket::BoundAddr;
use crate::supervise::WorkerContext;
use crate::sys;

/// Tokens of listeners start here.
pub const LISTENER_BASE: usize = 1;
/// Connections accepted per listener per loop turn, so one worker does not
/// grab a whole burst while its siblings idle.
const ACCEPT_BATCH: usize = 8;
/// How long a worker leaves a new connection to a less loaded idle sibling
/// before it accepts it itself.
const ACCEPT_DEFER: Duration = Duration::from_millis(5);
/// How often a worker whose app threads are all busy looks again at
/// connections it left to a sibling with a free thread.
const THREAD_DEFER: Duration = Duration::from_millis(50);
/// How soon accepting is retried after the process ran out of descriptors.
const EMFILE_RETRY: Duration = Duration::from_millis(100);

/// What a worker does with a new connection a sibling is better placed for.
enum Defer {
    No,
    /// Leave it to the sibling for [`ACCEPT_DEFER`], then take it.
    Briefly,
    /// Every app thread is busy: leave it until one is free.
    UntilThreadFree,
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Socket {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Socket::Tcp(s) => s,
            Socket::Unix(s) => s,
        }
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Socket::Tcp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
        }
    }
}

struct Listener {
    /// Never closed here: the fd belongs to the master's `Listener`.
    socket: ManuallyDrop<Socket>,
    protocol: Protocol,
    server_name: String,
    server_port: String,
    /// Passed in by systemd / `fd://N`: never shut (it outlives us).
    inherited: bool,
}

pub struct Listeners {
    list: Vec<Option<Listener>>,
    /// A deferred or failed accept to retry at this time.
    pub retry_at: Option<Instant>,
    /// A batch was full: the queue may hold more.
    pub more: bool,
    /// A descriptor kept free to accept-and-refuse with when none are left.
    reserve: Option<OwnedFd>,
    /// Out of descriptors now (logged once per episode).
    starved: bool,
    /// New connections were left to siblings because every app thread of
    /// this worker was busy.
    waiting_for_thread: bool,
}

impl Listeners {
    pub fn new(ctx: &WorkerContext<'_>, registry: &Registry) -> io::Result<Listeners> {
        // Children the app forks close the listeners and client sockets.
        sys::install_fork_guard();
        let mut list = Vec::new();
        for (i, l) in ctx.listeners.iter().enumerate() {
            // The fd's one owner is the master's `Listener` (`ctx`), which
            // lives as long as the worker (it ends in _exit); the mio
            // listener is a view of it that never closes it (ManuallyDrop),
            // so the number stays taken for the parent-death handler
            // (DESIGN-NOTES 14) even after `stop`.
            let raw = l.raw_fd();
            let (mut socket, server_name, server_port) = match &l.addr {
                // SAFETY: `raw` is a listening TCP socket owned by `ctx`,
                // which outlives this view; the view never closes it.
                BoundAddr::Tcp(a) => (
                    Socket::Tcp(unsafe { TcpListener::from_raw_fd(raw) }),
                    a.ip().to_string(),
                    a.port().to_string(),
                ),
                // SAFETY: as above, a listening unix socket.
                BoundAddr::Unix(p) => (
                    Socket::Unix(unsafe { UnixListener::from_raw_fd(raw) }),
                    p.display().to_string(),
                    String::new(),
                ),
            };
            sys::guard_socket(raw);
            registry.register(
                socket.source(),
                Token(LISTENER_BASE + i),
                Interest::READABLE,
            )?;
            list.push(Some(Listener {
                socket: ManuallyDrop::new(socket),
                protocol: l.protocol,
                inherited: l.inherited,
                server_name,
                server_port,
            }));
        }
        Ok(Listeners {
            list,
            retry_at: None,
            more: false,
            reserve: std::fs::File::open("/dev/null").ok().map(OwnedFd::from),
            starved: false,
            waiting_for_thread: false,
        })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Out of descriptors at the last accept: a closing connection should
    /// retry at once.
    pub fn starved(&self) -> bool {
        self.starved
    }

    /// Whether this worker should leave new connections to a sibling.
    fn defer(conns: &Connections<'_>, scoreboard: &Scoreboard) -> Defer {
        let mine = conns.len() as u32;
        if conns.config.threads > 1 {
            // With threads: a sibling with a free thread takes it if all of
            // ours are busy; a sibling holding clearly fewer connections is
            // preferred (keep-alive clients then spread evenly).
            if conns.idle_threads() == 0 {
                // A sibling's thread may be a moment from free (it sends its
                // response before it counts itself free): wait briefly even
                // when none shows free yet.
                return if scoreboard.sibling_has_free_thread(conns.slot_index) {
                    Defer::UntilThreadFree
                } else {
                    Defer::Briefly
                };
            }
            return match scoreboard.fewest_serving_conns(conns.slot_index) {
                Some(fewest) if mine > fewest + 1 => Defer::Briefly,
                _ => Defer::No,
            };
        }
        // One thread: a worker holding clearly more connections than an
        // idle sibling leaves the new one to it.
        match scoreboard.fewest_idle_conns(conns.slot_index) {
            Some(fewest) if mine > fewest + 1 => Defer::Briefly,
            _ => Defer::No,
        }
    }

    /// Accepts up to a batch on listener `i`; true if the batch was full.
    /// With `balance`, a loaded worker leaves the connection to an idle
    /// sibling (which the same event woke) for a moment.
    pub fn accept(
        &mut self,
        i: usize,
        balance: bool,
        conns: &mut Connections<'_>,
        scoreboard: &Scoreboard,
    ) -> bool {
        self.accept_up_to(i, balance, ACCEPT_BATCH, conns, scoreboard)
    }

    fn accept_up_to(
        &mut self,
        i: usize,
        balance: bool,
        batch: usize,
        conns: &mut Connections<'_>,
        scoreboard: &Scoreboard,
    ) -> bool {
        if conns.stopping {
            return false;
        }
        for _ in 0..batch {
            // Checked before each connection: a burst (a load balancer or
            // a benchmark opening its pool) spreads over the workers.
            match if balance {
                Self::defer(conns, scoreboard)
            } else {
                Defer::No
            } {
                Defer::No => {}
                Defer::UntilThreadFree => {
                    // The sibling with a free thread takes it; this worker looks
                    // again when one of its own threads is free (or a little
                    // later, in case the sibling is gone).
                    self.waiting_for_thread = true;
                    self.retry_at.get_or_insert(Instant::now() + THREAD_DEFER);
                    return false;
                }
                Defer::Briefly => {
                    // A preference, not a rule: if the sibling has not taken
                    // the connection shortly, this worker does.
                    self.retry_at.get_or_insert(Instant::now() + ACCEPT_DEFER);
                    return false;
                }
            }
            let Some(Some(l)) = self.list.get(i) else {
                return false;
            };
            let accepted = match &*l.socket {
                // TCP_NODELAY comes from the listener (set when it was bound).
                Socket::Tcp(s) => s
                    .accept()
                    .map(|(stream, peer)| (Stream::Tcp(stream), Some(peer))),
                Socket::Unix(s) => s.accept().map(|(stream, _)| (Stream::Unix(stream), None)),
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.starved = false;
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A sibling shut the shared listener for a server-wide drain.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return false,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    self.out_of_fds(i, conns, &e);
                    return false;
                }
                Err(e) => {
                    log::warn!("worker {}: accept failed: {e}", conns.id);
                    return false;
                }
            };
            self.starved = false;
            let stream = match stream.above_std_fds() {
                Ok(s) => s,
                Err(e) => {
                    log::warn!(
                        "worker {}: cannot move a connection off fds 0-2: {e}",
                        conns.id
                    );
                    continue;
                }
            };
            let (name, port) = (l.server_name.as_str(), l.server_port.as_str());
            conns.insert(stream, l.protocol, |info| info.fill(peer, name, port));
        }
        self.more = true;
        true
    }

    /// The process has no descriptor left for a new connection. Clients in
    /// the queue are refused with 503 through the reserve descriptor rather
    /// than left waiting for one to free up, accepting resumes on a timer
    /// (and when a connection closes), and the log says so once per episode.
    fn out_of_fds(&mut self, i: usize, conns: &Connections<'_>, e: &io::Error) {
        if !self.starved {
            log::error!(
                "worker {}: cannot accept connections: {e}; {} open connection(s). \
                 Raise the descriptor limit (LimitNOFILE= in systemd, ulimit -n) or look for an app that leaks files; \
                 waiting clients get 503 until descriptors free up",
                conns.id,
                conns.len()
            );
            self.starved = true;
        }
        self.retry_at = Some(Instant::now() + EMFILE_RETRY);
        let Some(Some(l)) = self.list.get(i) else {
            return;
        };
        let mut answer = Vec::with_capacity(160);
        let date = crate::protocol::date::http_date(crate::scoreboard::now_us() / 1_000_000);
        wire::simple(&mut answer, 503, &date, true, false);
        // Free the reserve, take one client with it, answer, close; repeat
        // while clients wait and the reserve can be had back.
        while let Some(reserve) = self.reserve.take() {
            drop(reserve);
            let Some(client) = sys::accept_nonblocking(l.socket.raw_fd()) else {
                self.reserve = std::fs::File::open("/dev/null").ok().map(OwnedFd::from);
                break;
            };
            let _ = sys::try_send(client.as_raw_fd(), &[&answer]);
            // Take the request (usually here already) out of the socket, so
            // the close is a FIN the client reads the 503 before, not a reset.
            let mut scratch = Vec::new();
            let _ = sys::read_into(client.as_raw_fd(), &mut scratch, 16 * 1024);
            drop(client);
            self.reserve = std::fs::File::open("/dev/null").ok().map(OwnedFd::from);
        }
    }

    /// Retries accepting on every listener (after a deferral or fd
    /// exhaustion). A worker that deferred for want of a free thread still
    /// leaves the connection to a sibling with one.
    pub fn retry(&mut self, conns: &mut Connections<'_>, scoreboard: &Scoreboard) {
        self.retry_at = None;
        let balance = std::mem::take(&mut self.waiting_for_thread);
        for i in 0..self.list.len() {
            // A sibling slow to take what was left to it: this worker takes
            // one, then weighs the next again (the loop comes back at once).
            if self.accept_up_to(i, balance, 1, conns, scoreboard) {
                self.more = true;
            }
        }
    }

    /// One of this worker's app threads is free again: take what it left
    /// to its siblings, if they have not.
    pub fn thread_freed(&mut self, conns: &mut Connections<'_>, scoreboard: &Scoreboard) {
        if self.waiting_for_thread {
            self.retry(conns, scoreboard);
        }
    }

    /// The worker stops: take what already waits in the accept queue (those
    /// clients connected while we were busy and are answered, with
    /// `Connection: close`, not reset), then let go of the listeners. With
    /// `shut` (the whole server drains) the shared sockets are shut, so the
    /// kernel refuses new connections instead of queueing them for nobody.
    pub fn stop(
        &mut self,
        shut: bool,
        conns: &mut Connections<'_>,
        scoreboard: &Scoreboard,
        registry: &Registry,
    ) {
        for i in 0..self.list.len() {
            while self.accept(i, false, conns, scoreboard) {}
            if let Some(Some(l)) = self.list.get(i) {
                // An inherited (systemd) socket outlives us: never shut it.
                if shut && !l.inherited {
                    sys::shutdown_listener(l.socket.raw_fd());
                }
            }
        }
        for l in self.list.iter_mut() {
            if let Some(mut l) = l.take() {
                let _ = registry.deregister(l.socket.source());
                sys::forget_socket(l.socket.raw_fd());
            }
        }
    }
}
