//! The worker's I/O thread: one mio loop that routes events — signals, new
//! connections, readable and writable clients, finished jobs — and never
//! waits on anything but poll. With `--threads 1` it also runs the app, in
//! turn between polls; with more, app threads do, and tell it through a waker.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::connections::{Connections, CONN_BASE};
use super::job::Completion;
use super::listeners::{Listeners, LISTENER_BASE};
use crate::scoreboard::Scoreboard;
use crate::sys;
use crate::wsgi::Gil;

const SIGNAL: Token = Token(0);
/// The app threads' waker (below the connections, above the listeners).
pub const WAKER: Token = Token(CONN_BASE - 1);

pub struct EventLoop<'a> {
    poll: Poll,
    events: Events,
    /// Readiness of this turn: (token, readable, writable).
    ready: Vec<(Token, bool, bool)>,
    signal_fd: OwnedFd,
    listeners: Listeners,
    pub conns: Connections<'a>,
    scoreboard: &'a Scoreboard,
    completions: Vec<Completion>,
    exit_now: bool,
}

impl<'a> EventLoop<'a> {
    pub fn new(
        poll: Poll,
        signal_fd: OwnedFd,
        listeners: Listeners,
        conns: Connections<'a>,
        scoreboard: &'a Scoreboard,
    ) -> io::Result<EventLoop<'a>> {
        poll.registry().register(
            &mut SourceFd(&signal_fd.as_raw_fd()),
            SIGNAL,
            Interest::READABLE,
        )?;
        Ok(EventLoop {
            poll,
            events: Events::with_capacity(256),
            ready: Vec::with_capacity(256),
            signal_fd,
            listeners,
            conns,
            scoreboard,
            completions: Vec::new(),
            exit_now: false,
        })
    }

    /// Runs until the worker stops and its last connection is done. `gil`
    /// is the I/O thread's own hold on Python with `--threads 1` (released
    /// around poll); `None` with app threads (this thread never takes it).
    pub fn run(&mut self, gil: Option<&Gil<'_>>) {
        loop {
            if self.exit_now || (self.conns.stopping && self.conns.len() == 0) {
                return;
            }
            let now = Instant::now();
            let timeout = if self.conns.has_ready() || self.listeners.more {
                Duration::ZERO
            } else {
                let wake = self
                    .listeners
                    .retry_at
                    .map_or(self.conns.next_sweep, |r| r.min(self.conns.next_sweep));
                wake.saturating_duration_since(now)
            };
            let (poll, events) = (&mut self.poll, &mut self.events);
            let polled = match gil {
                Some(gil) => gil.release(|| poll.poll(events, Some(timeout))),
                None => poll.poll(events, Some(timeout)),
            };
            if let Err(e) = polled {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("worker {}: poll failed: {e}", self.conns.id);
                    return;
                }
            }
            self.ready.clear();
            self.ready.extend(self.events.iter().map(|e| {
                (
                    e.token(),
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable() || e.is_write_closed(),
                )
            }));
            let accept_again = std::mem::take(&mut self.listeners.more);
            for i in 0..self.ready.len() {
                let (token, readable, writable) = self.ready[i];
                match token {
                    SIGNAL => self.on_signals(),
                    WAKER => {
                        self.take_completions();
                        self.listeners
                            .thread_freed(&mut self.conns, self.scoreboard);
                    }
                    Token(t) if t >= CONN_BASE => {
                        if writable {
                            self.conns.on_writable(t - CONN_BASE);
                        }
                        if readable {
                            self.conns.on_readable(t - CONN_BASE);
                        }
                    }
                    Token(t) => {
                        self.listeners.accept(
                            t - LISTENER_BASE,
                            true,
                            &mut self.conns,
                            self.scoreboard,
                        );
                    }
                }
            }
            if accept_again {
                for i in 0..self.listeners.len() {
                    self.listeners
                        .accept(i, true, &mut self.conns, self.scoreboard);
                }
            }
            // A closed connection freed a descriptor: a starved accept retries.
            if std::mem::take(&mut self.conns.freed) && self.listeners.starved() {
                self.listeners.retry_at = Some(Instant::now());
            }
            if self.listeners.retry_at.is_some_and(|r| Instant::now() >= r) {
                self.listeners.retry(&mut self.conns, self.scoreboard);
            }
            self.conns.drain_answered();
            if let Some(gil) = gil {
                self.conns.run_ready(gil);
            }
            if Instant::now() >= self.conns.next_sweep {
                self.conns.sweep();
            }
        }
    }

    /// App threads: no more jobs will come (they return once idle).
    pub fn close_jobs(&self) {
        if let super::connections::Dispatch::Pool(shared) = &self.conns.dispatch {
            shared.close();
        }
    }

    fn take_completions(&mut self) {
        if let super::connections::Dispatch::Pool(shared) = &self.conns.dispatch {
            shared.take_completions(&mut self.completions);
        }
        let mut done = std::mem::take(&mut self.completions);
        for c in done.drain(..) {
            self.conns.on_completion(c);
        }
        self.completions = done;
    }

    fn on_signals(&mut self) {
        let mut sigs = Vec::new();
        sys::drain_signals(self.signal_fd.as_raw_fd(), &mut sigs);
        for sig in sigs {
            match sig {
                libc::SIGTERM => self.begin_stop(false),
                libc::SIGUSR2 => self.begin_stop(true),
                libc::SIGUSR1 => crate::process::reopen_log(self.conns.config),
                _ => self.exit_now = true,
            }
        }
    }

    /// Graceful stop: no new connections; requests in progress finish; idle
    /// keep-alive connections get a short grace, then close. With
    /// `shut_listeners` (the whole server is draining) the shared listening
    /// sockets are shut once the queue is taken.
    fn begin_stop(&mut self, shut_listeners: bool) {
        if self.conns.stopping {
            return;
        }
        self.listeners.stop(
            shut_listeners,
            &mut self.conns,
            self.scoreboard,
            self.poll.registry(),
        );
        self.conns.begin_stop();
        self.conns
            .slot
            .set_state(crate::scoreboard::WorkerState::Stopping);
    }
}
