//! A worker's client connections: the slab that holds them, their epoll
//! registration, reading, deadlines and closing. The request cycle on them
//! is in `serve.rs`; where jobs go is the [`Dispatch`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};

use super::clock::DateCache;
use super::conn::{Buffers, Conn, Phase, Progress, State, Stream};
use super::job::{self, Job};
use super::outbound::Outbound;
use super::recycle::Recycler;
use super::session::{conn_kind, cut_level, peer};
use super::slab::Slab;
use super::threads::Shared;
use crate::config::{Config, Protocol};
use crate::scoreboard::{Core, Slot};
use crate::wsgi::{Caller, Gil};

/// Tokens of connections start here (below: the signal pipe, listeners, waker).
pub const CONN_BASE: usize = 1 << 16;
/// Closed connections' allocations kept for new ones (see `Buffers`).
const SPARE_BUFFERS: usize = 32;
/// How long idle keep-alive connections stay open once the worker stops, so a
/// request already on its way is still answered (with `Connection: close`).
pub const STOP_IDLE_GRACE: Duration = Duration::from_millis(500);

/// Where jobs go.
pub enum Dispatch {
    /// `--threads 1`: the I/O thread runs each job itself, in turn, holding
    /// the GIL (no hand-off: as fast as a single thread can be).
    Inline {
        caller: Box<Caller>,
        ready: VecDeque<Job>,
    },
    /// `--threads N`: a pool of app threads.
    Pool(Arc<Shared>),
}

impl Dispatch {
    pub fn submit(&mut self, job: Job) {
        match self {
            Dispatch::Inline { ready, .. } => ready.push_back(job),
            Dispatch::Pool(shared) => shared.submit(job),
        }
    }
}

pub struct Connections<'a> {
    pub config: &'a Config,
    pub slot: &'a Slot,
    pub cores: &'a [Core],
    pub id: usize,
    pub slot_index: usize,
    pub notify_fd: std::os::fd::RawFd,
    registry: Registry,
    pub conns: Slab<Conn>,
    spare: Vec<Buffers>,
    pub dispatch: Dispatch,
    /// `--static-map`, its directories open (after any `--uid` switch).
    pub statics: Option<crate::static_files::StaticFiles>,
    pub date: DateCache,
    /// Reused buffer for access-log lines.
    pub log_line: String,
    pub recycler: Recycler,
    pub stopping: bool,
    pub next_sweep: Instant,
    /// Jobs handed to app threads and not completed yet.
    in_app: usize,
    /// A connection closed since the event loop last looked (its descriptor
    /// is free: a starved accept may retry).
    pub freed: bool,
    /// Bytes of request bodies being received held in memory, all
    /// connections together (bounded by `--body-memory`).
    pub body_memory: usize,
    /// Children the app forked and left: reaped after a grace.
    reaper: crate::sys::Reaper,
    /// Connections answered from the static map this turn, to drain (see
    /// `drain_answered`).
    pub answered: Vec<usize>,
}

impl<'a> Connections<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &'a Config,
        slot: &'a Slot,
        cores: &'a [Core],
        id: usize,
        slot_index: usize,
        notify_fd: std::os::fd::RawFd,
        registry: Registry,
        dispatch: Dispatch,
        statics: Option<crate::static_files::StaticFiles>,
    ) -> Connections<'a> {
        Connections {
            config,
            slot,
            cores,
            id,
            slot_index,
            notify_fd,
            registry,
            conns: Slab::new(),
            spare: Vec::new(),
            dispatch,
            statics,
            date: DateCache::new(),
            log_line: String::with_capacity(256),
            recycler: Recycler::new(
                &config.recycle,
                u64::from(crate::sys::getpid().unsigned_abs()) ^ crate::scoreboard::now_us(),
            ),
            stopping: false,
            next_sweep: Instant::now() + Duration::from_secs(1),
            in_app: 0,
            answered: Vec::new(),
            freed: false,
            body_memory: 0,
            reaper: crate::sys::Reaper::default(),
        }
        .with_threads_published()
    }

    fn with_threads_published(self) -> Self {
        self.slot.set_free_threads(self.config.threads);
        self
    }

    /// Hands a job to the app threads (or to the inline turn).
    pub fn submit(&mut self, job: Job) {
        self.in_app += 1;
        self.publish_free_threads();
        self.dispatch.submit(job);
    }

    /// A job came back.
    pub fn job_done(&mut self) {
        self.in_app = self.in_app.saturating_sub(1);
        self.publish_free_threads();
    }

    /// App threads free to take a request now.
    pub fn idle_threads(&self) -> usize {
        match &self.dispatch {
            Dispatch::Inline { .. } => self.config.threads.saturating_sub(self.in_app),
            Dispatch::Pool(shared) => shared.idle(),
        }
    }

    /// For siblings' fair admission (see `Listeners::defer`); the pool
    /// publishes its own as threads take and end jobs.
    fn publish_free_threads(&self) {
        if let Dispatch::Inline { .. } = self.dispatch {
            self.slot.set_free_threads(self.idle_threads());
        }
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Takes a new connection and reads its first request at once (it often
    /// arrives with the connection). One whose request is complete already
    /// (typical behind nginx) is put in epoll only if it has to wait.
    pub fn insert(
        &mut self,
        stream: Stream,
        protocol: Protocol,
        fill: impl FnOnce(&mut crate::wsgi::ConnInfo),
    ) {
        let mut spare = self.spare.pop().unwrap_or_default();
        fill(&mut spare.info);
        let deadline = crate::sys::deadline(Instant::now(), self.config.limits.http_timeout);
        let fd = stream.raw_fd();
        crate::sys::guard_socket(fd);
        let mut conn = Conn::new(stream, protocol, spare, deadline, &self.config.limits);
        conn.out = Some(Box::new(Outbound::new(fd, self.config.limits.http_timeout)));
        let idx = self.conns.insert(conn);
        self.slot.set_conns(self.conns.len());
        self.on_readable(idx);
        let waits = self
            .conns
            .get_mut(idx)
            .is_some_and(|c| matches!(c.phase, Phase::Reading) && !c.watched);
        if waits {
            self.watch(idx);
        }
    }

    pub fn on_readable(&mut self, idx: usize) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        conn.readable = true;
        if !matches!(conn.phase, Phase::Reading) {
            return; // read once the current request is answered
        }
        if let Some(progress) = self.read_request(idx, Instant::now()) {
            self.on_progress(idx, progress);
        }
    }

    /// Reads and parses what connection `idx` has, within the worker's
    /// `--body-memory`, and moves its deadline. `--http-timeout` limits
    /// inactivity once a request has begun (a body arriving steadily keeps
    /// its connection alive), and the head must be complete within
    /// `--http-timeout` of its first byte (one dripped a byte at a time
    /// does not live forever).
    pub fn read_request(&mut self, idx: usize, now: Instant) -> Option<Progress> {
        let limits = self.config.limits;
        let budget_left = limits.body_memory.saturating_sub(self.body_memory);
        let conn = self.conns.get_mut(idx)?;
        conn.spool_above = conn.mem_counted.saturating_add(budget_left);
        let was_idle = conn.is_idle();
        let had = conn.buf.len() as u64 + conn.body.len();
        let progress = conn.read_and_parse(&limits);
        let progressed = conn.buf.len() as u64 + conn.body.len() != had;
        if !conn.is_idle() {
            let later = crate::sys::deadline(now, limits.http_timeout);
            if was_idle {
                conn.head_by = later;
            }
            if was_idle || progressed {
                conn.deadline = match conn.state {
                    State::Head => later.min(conn.head_by),
                    _ => later,
                };
            }
        }
        let held = conn.body.memory_len();
        self.body_memory = self.body_memory.saturating_sub(conn.mem_counted) + held;
        conn.mem_counted = held;
        Some(progress)
    }

    /// A request's body leaves the connection (for the app) or the
    /// connection closes: it no longer counts against `--body-memory`.
    pub fn uncount_body(&mut self, idx: usize) {
        if let Some(conn) = self.conns.get_mut(idx) {
            self.body_memory = self.body_memory.saturating_sub(conn.mem_counted);
            conn.mem_counted = 0;
        }
    }

    /// Closes a connection (never one an app thread holds).
    pub fn close(&mut self, idx: usize) {
        if self
            .conns
            .get_mut(idx)
            .is_some_and(|c| matches!(c.phase, Phase::Queued | Phase::InApp))
        {
            return;
        }
        self.uncount_body(idx);
        if let Some(mut conn) = self.conns.remove(idx) {
            crate::sys::forget_socket(conn.stream.raw_fd());
            self.freed = true;
            if conn.watched {
                let _ = self.registry.deregister(conn.stream.source());
            }
            if self.spare.len() < SPARE_BUFFERS {
                self.spare.extend(conn.into_buffers());
            }
        }
        self.slot.set_conns(self.conns.len());
    }

    /// Puts a connection in epoll once it has to wait for bytes. Registering
    /// late is safe with edge triggering: epoll reports data already there.
    pub fn watch(&mut self, idx: usize) {
        self.register(idx, Interest::READABLE);
    }

    /// Adds (or drops) interest in writability while a response drains.
    pub fn want_writable(&mut self, idx: usize, on: bool) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        if conn.writing == on && conn.watched {
            return;
        }
        let interest = if on {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        conn.writing = on;
        self.register(idx, interest);
    }

    fn register(&mut self, idx: usize, interest: Interest) {
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        let token = Token(CONN_BASE + idx);
        let r = if conn.watched {
            self.registry
                .reregister(conn.stream.source(), token, interest)
        } else {
            self.registry
                .register(conn.stream.source(), token, interest)
        };
        match r {
            Ok(()) => conn.watched = true,
            Err(e) => {
                log::warn!("worker {}: cannot watch a connection: {e}", self.id);
                conn.phase = Phase::Reading;
                self.close(idx);
            }
        }
    }

    /// `--threads 1`: runs the jobs whose turn it is, each holding the GIL,
    /// round-robin: jobs that follow from these wait for the next turn.
    pub fn run_ready(&mut self, gil: &Gil<'_>) {
        let n = match &self.dispatch {
            Dispatch::Inline { ready, .. } => ready.len(),
            Dispatch::Pool(_) => 0,
        };
        for _ in 0..n {
            let Dispatch::Inline { caller, ready } = &mut self.dispatch else {
                return;
            };
            let Some(job) = ready.pop_front() else {
                return;
            };
            let Some(core) = self.cores.first() else {
                return;
            };
            let done = job::run(caller, gil, core, 0, job);
            self.on_completion(done);
        }
    }

    /// Jobs waiting for the inline turn, or static answers to drain.
    pub fn has_ready(&self) -> bool {
        !self.answered.is_empty()
            || matches!(&self.dispatch, Dispatch::Inline { ready, .. } if !ready.is_empty())
    }

    /// Graceful stop: idle keep-alive connections get a short grace, then
    /// close; requests in progress finish.
    pub fn begin_stop(&mut self) {
        self.stopping = true;
        let grace = Instant::now() + STOP_IDLE_GRACE;
        for idx in self.conns.keys() {
            if let Some(c) = self.conns.get_mut(idx) {
                if c.is_idle() && matches!(c.phase, Phase::Reading) {
                    c.deadline = c.deadline.min(grace);
                }
            }
        }
        self.next_sweep = self.next_sweep.min(grace);
    }

    /// Closes connections whose deadline passed: idle ones silently, ones in
    /// the middle of sending a request with 408, ones whose client stopped
    /// reading a response as gone.
    pub fn sweep(&mut self) {
        let now = Instant::now();
        self.next_sweep = now + Duration::from_secs(1);
        let reaped = self.reaper.sweep(now);
        if reaped > 0 {
            log::debug!(
                "worker {}: reaped {reaped} child process(es) the app left unwaited for",
                self.id
            );
        }
        for idx in self.conns.keys() {
            let Some(conn) = self.conns.get_mut(idx) else {
                continue;
            };
            if conn.deadline > now {
                continue;
            }
            match &conn.phase {
                Phase::Queued | Phase::InApp => continue,
                Phase::Draining(_) => {
                    log::debug!(
                        "closing a connection from {}: it read nothing of its response for --http-timeout",
                        peer(&conn.info.remote_addr)
                    );
                    let Phase::Draining(after) = std::mem::replace(&mut conn.phase, Phase::Reading)
                    else {
                        continue;
                    };
                    match after {
                        super::conn::After::Resume(stream) => self.abandon(idx, stream),
                        super::conn::After::Finish(_) => self.close(idx),
                    }
                }
                Phase::Reading if conn.is_idle() => self.close(idx),
                Phase::Reading => {
                    log::log!(
                        cut_level(conn.protocol),
                        "closing {} from {}: request not complete within --http-timeout",
                        conn_kind(conn.protocol),
                        peer(&conn.info.remote_addr)
                    );
                    self.refuse(idx, 408);
                }
            }
        }
    }
}
