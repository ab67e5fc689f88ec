//! The worker's mio loop: accept on the shared listeners, read and parse
//! every connection without blocking, and serve complete requests one at a
//! time, round-robin, returning to poll between rounds so no connection
//! (idle keep-alive or slow) can pin the worker.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UnixListener};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::conn::{Conn, Stream};
use super::slab::Slab;
use crate::config::Config;
use crate::master::WorkerContext;
use crate::scoreboard::Slot;
use crate::socket::BoundAddr;
use crate::sys;
use crate::wsgi::{Bridge, Gil};

const SIGNAL: Token = Token(0);
const LISTENER_BASE: usize = 1;
const CONN_BASE: usize = 1 << 16;
/// Connections accepted per listener per loop turn, so one worker does not
/// grab a whole burst while its siblings idle.
const ACCEPT_BATCH: usize = 8;
/// How long a worker leaves a new connection to a less loaded idle sibling
/// before it accepts it itself.
const ACCEPT_DEFER: Duration = Duration::from_millis(5);
/// Closed connections' allocations kept for new ones (see `Buffers`).
const SPARE_BUFFERS: usize = 32;
/// How long idle keep-alive connections stay open once the worker stops, so a
/// request already on its way is still answered (with `Connection: close`).
const STOP_IDLE_GRACE: Duration = Duration::from_millis(500);

pub enum ListenSocket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

struct Listener {
    socket: ListenSocket,
    protocol: crate::config::Protocol,
    server_name: String,
    server_port: String,
    /// Passed in by systemd / `fd://N`: never shut (it outlives us). [systemd hook]
    inherited: bool,
}

pub struct EventLoop<'a> {
    pub(super) config: &'a Config,
    pub(super) slot: &'a Slot,
    scoreboard: &'a crate::scoreboard::Scoreboard,
    pub(super) id: usize,
    poll: Poll,
    events: Events,
    tokens: Vec<Token>,
    listeners: Vec<Option<Listener>>,
    pub(super) conns: Slab<Conn>,
    spare: Vec<super::conn::Buffers>,
    pub(super) ready: VecDeque<usize>,
    signal_fd: OwnedFd,
    pub(super) bridge: Bridge,
    /// `--static-map`, its directories open (after any `--uid` switch).
    pub(super) static_files: Option<crate::static_files::StaticFiles>,
    pub(super) date: super::serve::DateCache,
    pub(super) stopping: bool,
    /// Reused buffer for access-log lines.
    pub(super) log_line: String,
    pub(super) recycler: super::recycle::Recycler,
    pub(super) notify_fd: std::os::fd::RawFd,
    pub(super) slot_index: usize,
    exit_now: bool,
    accept_more: bool,
    /// A deferred accept (see [`ACCEPT_DEFER`]) to retry at this time.
    retry_accept_at: Option<Instant>,
    next_sweep: Instant,
}

impl<'a> EventLoop<'a> {
    pub fn new(
        ctx: &WorkerContext<'a>,
        signal_fd: OwnedFd,
        bridge: Bridge,
    ) -> io::Result<EventLoop<'a>> {
        let poll = Poll::new()?;
        poll.registry().register(
            &mut SourceFd(&signal_fd.as_raw_fd()),
            SIGNAL,
            Interest::READABLE,
        )?;
        let mut listeners = Vec::new();
        for (i, l) in ctx.listeners.iter().enumerate() {
            // The fd is this process's own copy (inherited across fork); the
            // master's `Listener` is never dropped here (workers end in _exit).
            let raw = l.raw_fd();
            let (mut socket, server_name, server_port) = match &l.addr {
                // SAFETY: `raw` is a listening TCP socket this process owns a copy of.
                BoundAddr::Tcp(a) => (
                    ListenSocket::Tcp(unsafe { TcpListener::from_raw_fd(raw) }),
                    a.ip().to_string(),
                    a.port().to_string(),
                ),
                // SAFETY: `raw` is a listening unix socket this process owns a copy of.
                BoundAddr::Unix(p) => (
                    ListenSocket::Unix(unsafe { UnixListener::from_raw_fd(raw) }),
                    p.display().to_string(),
                    String::new(),
                ),
            };
            let source: &mut dyn mio::event::Source = match &mut socket {
                ListenSocket::Tcp(s) => s,
                ListenSocket::Unix(s) => s,
            };
            poll.registry()
                .register(source, Token(LISTENER_BASE + i), Interest::READABLE)?;
            listeners.push(Some(Listener {
                socket,
                protocol: l.protocol,
                inherited: l.inherited,
                server_name,
                server_port,
            }));
        }
        let s = &ctx.config.static_files;
        let static_files = match s.map.is_empty() {
            true => None,
            false => Some(crate::static_files::StaticFiles::open(
                &s.map,
                s.index.as_deref(),
                s.expires,
            )?),
        };
        Ok(EventLoop {
            static_files,
            config: ctx.config,
            slot: ctx.scoreboard.slot(ctx.slot),
            scoreboard: ctx.scoreboard,
            id: ctx.id,
            poll,
            events: Events::with_capacity(256),
            tokens: Vec::with_capacity(256),
            listeners,
            conns: Slab::new(),
            spare: Vec::new(),
            ready: VecDeque::new(),
            signal_fd,
            bridge,
            date: super::serve::DateCache::new(),
            stopping: false,
            log_line: String::with_capacity(256),
            recycler: super::recycle::Recycler::new(
                &ctx.config.recycle,
                u64::from(sys::getpid().unsigned_abs()) ^ crate::scoreboard::now_us(),
            ),
            notify_fd: ctx.notify_fd,
            slot_index: ctx.slot,
            exit_now: false,
            accept_more: false,
            retry_accept_at: None,
            next_sweep: Instant::now() + Duration::from_secs(1),
        })
    }

    pub fn run(&mut self, gil: &Gil<'_>) {
        loop {
            if self.exit_now || (self.stopping && self.conns.len() == 0) {
                return;
            }
            let now = Instant::now();
            let timeout = if !self.ready.is_empty() || self.accept_more {
                Duration::ZERO
            } else {
                let wake = self
                    .retry_accept_at
                    .map_or(self.next_sweep, |r| r.min(self.next_sweep));
                wake.saturating_duration_since(now)
            };
            let (poll, events) = (&mut self.poll, &mut self.events);
            if let Err(e) = gil.release(|| poll.poll(events, Some(timeout))) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("worker {}: poll failed: {e}", self.id);
                    return;
                }
            }
            self.tokens.clear();
            self.tokens.extend(self.events.iter().map(|e| e.token()));
            let accept_again = std::mem::take(&mut self.accept_more);
            for i in 0..self.tokens.len() {
                match self.tokens[i] {
                    SIGNAL => self.on_signals(),
                    Token(t) if t >= CONN_BASE => self.on_readable(t - CONN_BASE),
                    Token(t) => {
                        self.accept(t - LISTENER_BASE, true);
                    }
                }
            }
            if accept_again {
                for i in 0..self.listeners.len() {
                    self.accept(i, true);
                }
            }
            if self.retry_accept_at.is_some_and(|r| Instant::now() >= r) {
                self.retry_accept_at = None;
                for i in 0..self.listeners.len() {
                    self.accept(i, false);
                }
            }
            for _ in 0..self.ready.len() {
                match self.ready.pop_front() {
                    Some(idx) => self.serve(gil, idx),
                    None => break,
                }
                if self.exit_now {
                    return;
                }
            }
            if Instant::now() >= self.next_sweep {
                self.sweep();
            }
        }
    }

    /// Flushes Python's output and runs its exit handlers.
    pub fn shutdown(&self) {
        self.bridge.shutdown();
    }

    fn on_signals(&mut self) {
        let mut sigs = Vec::new();
        sys::drain_signals(self.signal_fd.as_raw_fd(), &mut sigs);
        for sig in sigs {
            match sig {
                libc::SIGTERM => self.begin_stop(false),
                libc::SIGUSR2 => self.begin_stop(true),
                libc::SIGUSR1 => crate::process::reopen_log(self.config),
                _ => self.exit_now = true,
            }
        }
    }

    /// Graceful stop: no new connections; requests in progress finish; idle
    /// keep-alive connections get a short grace, then close. With
    /// `shut_listeners` (the whole server is draining) the shared listening
    /// sockets are shut after the queue is taken, so the kernel refuses new
    /// connections instead of queueing them for nobody.
    fn begin_stop(&mut self, shut_listeners: bool) {
        if self.stopping {
            if shut_listeners {
                log::debug!("worker {}: already stopping", self.id);
            }
            return;
        }
        // Take what already waits in the accept queue before letting go of
        // the listeners: those clients connected while we were serving and
        // are answered (with `Connection: close`), not reset.
        for i in 0..self.listeners.len() {
            while self.accept(i, false) {}
            // [systemd hook] an inherited socket outlives us: never shut it.
            let inherited = matches!(self.listeners.get(i), Some(Some(l)) if l.inherited);
            if shut_listeners && !inherited {
                if let Some(Some(l)) = self.listeners.get(i) {
                    sys::shutdown_listener(match &l.socket {
                        ListenSocket::Tcp(s) => s.as_raw_fd(),
                        ListenSocket::Unix(s) => s.as_raw_fd(),
                    });
                }
            }
        }
        self.stopping = true;
        self.slot
            .set_state(crate::scoreboard::WorkerState::Stopping);
        for l in self.listeners.iter_mut() {
            if let Some(mut l) = l.take() {
                let source: &mut dyn mio::event::Source = match &mut l.socket {
                    ListenSocket::Tcp(s) => s,
                    ListenSocket::Unix(s) => s,
                };
                let _ = self.poll.registry().deregister(source);
            }
        }
        let grace = Instant::now() + STOP_IDLE_GRACE;
        for idx in self.conns.keys() {
            if let Some(c) = self.conns.get_mut(idx) {
                if c.is_idle() {
                    c.deadline = c.deadline.min(grace);
                }
            }
        }
        self.next_sweep = self.next_sweep.min(grace);
    }

    /// Accepts up to a batch of connections; true if the batch was full (the
    /// queue may hold more). With `balance`, a worker holding clearly more
    /// connections than an idle sibling leaves the new one to it (the sibling
    /// was woken by the same event), so keep-alive clients spread over the
    /// workers instead of piling onto whichever woke first.
    fn accept(&mut self, i: usize, balance: bool) -> bool {
        if self.stopping {
            return false;
        }
        if balance {
            let mine = self.conns.len() as u32;
            if let Some(fewest) = self.scoreboard.fewest_idle_conns(self.slot_index) {
                if mine > fewest + 1 {
                    // A preference, not a rule: if the sibling has not taken
                    // the connection shortly, this worker does.
                    let retry = Instant::now() + ACCEPT_DEFER;
                    self.retry_accept_at.get_or_insert(retry);
                    return false;
                }
            }
        }
        for _ in 0..ACCEPT_BATCH {
            let Some(Some(l)) = self.listeners.get(i) else {
                return false;
            };
            let accepted = match &l.socket {
                // TCP_NODELAY comes from the listener (set when it was bound).
                ListenSocket::Tcp(s) => s
                    .accept()
                    .map(|(stream, peer)| (Stream::Tcp(stream), Some(peer))),
                ListenSocket::Unix(s) => s.accept().map(|(stream, _)| (Stream::Unix(stream), None)),
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A sibling shut the shared listener for a server-wide drain.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return false,
                Err(e) => {
                    log::warn!("worker {}: accept failed: {e}", self.id);
                    return false;
                }
            };
            let mut spare = self.spare.pop().unwrap_or_default();
            spare.info.fill(peer, &l.server_name, &l.server_port);
            let deadline = Instant::now() + self.config.limits.http_timeout;
            let idx = self.conns.insert(Conn::new(
                stream,
                l.protocol,
                spare,
                deadline,
                &self.config.limits,
            ));
            self.slot.set_conns(self.conns.len());
            // The request often arrives with the connection: read it now
            // rather than after another trip through poll. A connection whose
            // request is already complete (typical behind nginx) is only put
            // in epoll if it has to wait for more (see `watch`).
            self.on_readable(idx);
            if self
                .conns
                .get_mut(idx)
                .is_some_and(|c| !matches!(c.state, super::conn::State::Ready { .. }))
            {
                self.watch(idx);
            }
        }
        self.accept_more = true;
        true
    }

    fn on_readable(&mut self, idx: usize) {
        let limits = self.config.limits;
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        let was_idle = conn.is_idle();
        let had = conn.buf.len() as u64 + conn.body.len();
        conn.readable = true;
        let progress = conn.read_and_parse(&limits);
        // --http-timeout is a limit on inactivity once a request has begun:
        // a body arriving steadily keeps its connection alive.
        let progressed = conn.buf.len() as u64 + conn.body.len() != had;
        if (was_idle || progressed) && !conn.is_idle() {
            conn.deadline = Instant::now() + limits.http_timeout;
        }
        self.on_progress(idx, progress);
    }

    pub(super) fn close(&mut self, idx: usize) {
        if let Some(mut conn) = self.conns.remove(idx) {
            if conn.watched {
                let _ = self.poll.registry().deregister(conn.stream.source());
            }
            if self.spare.len() < SPARE_BUFFERS {
                self.spare.extend(conn.into_buffers());
            }
        }
        self.slot.set_conns(self.conns.len());
    }

    /// Puts a connection in epoll once it has to wait for bytes. Registering
    /// late is safe with edge triggering: epoll reports data already there.
    pub(super) fn watch(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        if conn.watched {
            return;
        }
        match self.poll.registry().register(
            conn.stream.source(),
            Token(CONN_BASE + idx),
            Interest::READABLE,
        ) {
            Ok(()) => conn.watched = true,
            Err(e) => {
                log::warn!("worker {}: cannot watch a connection: {e}", self.id);
                self.close(idx);
            }
        }
    }

    /// Closes connections whose deadline passed: idle ones silently, ones in
    /// the middle of sending a request with 408.
    fn sweep(&mut self) {
        let now = Instant::now();
        self.next_sweep = now + Duration::from_secs(1);
        for idx in self.conns.keys() {
            let Some(conn) = self.conns.get_mut(idx) else {
                continue;
            };
            if conn.deadline > now || matches!(conn.state, super::conn::State::Ready { .. }) {
                continue;
            }
            if !conn.is_idle() {
                let why = "request not complete within --http-timeout";
                match conn.protocol {
                    // nginx does not stall mid-packet: on a uwsgi socket it is worth a warning.
                    crate::config::Protocol::Uwsgi => {
                        log::warn!("closing a uwsgi connection: {why}")
                    }
                    crate::config::Protocol::Http => {
                        log::debug!("closing a connection from {}: {why}", conn.info.remote_addr)
                    }
                }
                self.refuse(idx, 408);
            } else {
                self.close(idx);
            }
        }
    }
}
