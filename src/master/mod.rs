//! The master: binds nothing itself (main hands it the listeners), forks the
//! workers and supervises them from a single-threaded mio loop. It never
//! initialises Python; it receives the worker entry point as a function.

mod drain;
pub mod endpoints;
mod execute;
mod phase;
mod pool;
mod preload;
mod reap;
mod signals;
mod snapshot;
pub mod template;
pub mod upgrade;
mod watch;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::config::Config;
use crate::scoreboard::Scoreboard;
use crate::socket::Listener;
use crate::sys;

use crate::supervise::{Notice, Phase, WorkerEntry, EXIT_APP_LOAD_ERROR, NOTICE_LEN};
use phase::Stage;
use pool::Pool;
use signals::Action;

/// How often the master reads the workers' RSS for `--reload-on-rss`.
const RSS_EVERY: Duration = Duration::from_secs(1);

const SIGNAL: Token = Token(0);
const NOTIFY: Token = Token(1);

pub struct Master {
    config: Config,
    listeners: Vec<Listener>,
    scoreboard: Scoreboard,
    poll: Poll,
    signal_fd: OwnedFd,
    notify_read: OwnedFd,
    notify_write: OwnedFd,
    pool: Pool,
    endpoints: endpoints::Endpoints,
    /// Request counts at the previous stats snapshot (for delta_requests).
    last_requests: std::collections::HashMap<i32, u64>,
    stage: Stage,
    started: Instant,
    /// Unix socket files this master created (for `--vacuum`).
    unix_paths: Vec<crate::socket::SocketFile>,
    exit_code: i32,
    /// systemd notifications (READY=1 …) on phase changes. [systemd hook]
    notifier: crate::systemd::Notifier,
    /// When the next `WATCHDOG=1` is due (systemd's `WatchdogSec=`).
    watchdog_at: Option<Instant>,
    /// When the workers' RSS is read next (with `--reload-on-rss`).
    rss_check_at: Option<Instant>,
    /// The binary's path at start, run again on SIGUSR2.
    exe: Option<std::path::PathBuf>,
    /// A SIGUSR2 upgrade under way (this is the old master).
    upgrade: Option<upgrade::Upgrade>,
    /// Started by SIGUSR2: the pipe to tell the previous master we are ready.
    tell_ready: Option<OwnedFd>,
    /// `<pidfile>.oldbin` while this master is the old one of an upgrade.
    oldbin: Option<std::path::PathBuf>,
    /// The new master took over the sockets; this one is winding down.
    handed_over: bool,
    /// Socket files taken over from the previous master: this one's to
    /// remove (`--vacuum`) once it is ready.
    handed_files: Vec<crate::socket::SocketFile>,
    /// The `--preload` template processes (None without it).
    templates: Option<template::Templates>,
    /// What a worker forked by the master runs.
    entry: WorkerEntry,
}

impl Master {
    pub fn new(
        config: Config,
        listeners: Vec<Listener>,
        endpoints: Vec<(endpoints::Kind, Listener)>,
        entry: WorkerEntry,
    ) -> io::Result<Master> {
        let scoreboard = Scoreboard::with_threads(config.threads)?;
        let signal_fd = sys::install_signal_pipe(signals::HANDLED)?;
        sys::ignore_signals(&[libc::SIGPIPE])?;
        let (notify_read, notify_write) = sys::pipe()?;
        let poll = Poll::new()?;
        poll.registry().register(
            &mut SourceFd(&signal_fd.as_raw_fd()),
            SIGNAL,
            Interest::READABLE,
        )?;
        poll.registry().register(
            &mut SourceFd(&notify_read.as_raw_fd()),
            NOTIFY,
            Interest::READABLE,
        )?;
        for l in &listeners {
            // Workers inherit listeners across fork; exec'd programs must not.
            sys::set_cloexec(l.raw_fd(), true)?;
        }
        let unix_paths = listeners
            .iter()
            .chain(endpoints.iter().map(|(_, l)| l))
            .filter(|l| !l.inherited) // [systemd hook] the parent owns those files
            .filter_map(|l| l.file.clone())
            .collect();
        let handed_files = listeners
            .iter()
            .chain(endpoints.iter().map(|(_, l)| l))
            .filter(|l| l.handed)
            .filter_map(|l| l.file.clone())
            .collect();
        let endpoints = endpoints::Endpoints::new(endpoints, poll.registry())?;
        let pool = Pool::new(
            config.processes,
            config.reload_mode,
            config.shutdown_timeout,
            Instant::now(),
        );
        let rss_check_at = (config.recycle.reload_on_rss > 0).then(|| Instant::now() + RSS_EVERY);
        Ok(Master {
            config,
            listeners,
            scoreboard,
            poll,
            signal_fd,
            notify_read,
            notify_write,
            pool,
            endpoints,
            last_requests: std::collections::HashMap::new(),
            stage: Stage::Starting,
            started: Instant::now(),
            unix_paths,
            exit_code: 0,
            notifier: crate::systemd::Notifier::from_env(), // [systemd hook]
            watchdog_at: None,
            rss_check_at,
            exe: std::env::current_exe().ok(),
            upgrade: None,
            tell_ready: None,
            oldbin: None,
            handed_over: false,
            handed_files,
            templates: None,
            entry,
        })
    }

    /// Runs until shutdown; returns the process exit code.
    pub fn run(mut self) -> i32 {
        log::info!(
            "master pid {} starting {} worker(s) for {}",
            sys::getpid(),
            self.config.processes,
            self.config.app
        );
        let n = self.config.processes; // [systemd hook] STATUS=starting N worker(s)
        self.notifier.phase(Phase::Starting, n, &self.listeners);
        if self.templates.is_some() {
            self.start_template(template::Start::Boot);
        }
        self.fill_pool();
        let mut events = Events::with_capacity(64);
        let mut sigs = Vec::new();
        loop {
            let templates_gone = !self.templates.as_ref().is_some_and(|t| !t.is_empty());
            // Only once the drain has begun: during a --shutdown-delay the
            // pool still serves, and a worker that died is replaced.
            if self.pool.is_closed() && self.pool.is_empty() && templates_gone {
                break;
            }
            let timeout = self.next_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("master poll failed: {e}");
                    self.exit_code = 1;
                    break;
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    SIGNAL => sys::drain_signals(self.signal_fd.as_raw_fd(), &mut sigs),
                    NOTIFY => self.read_notices(),
                    upgrade::UPGRADE => self.on_upgrade_pipe(),
                    token => {
                        let Master {
                            endpoints,
                            pool,
                            scoreboard,
                            listeners,
                            last_requests,
                            poll,
                            ..
                        } = &mut self;
                        // Only stats documents advance delta_requests: a
                        // Prometheus scrape must not reset it for uwsgitop.
                        let mut snap = |kind: endpoints::Kind| {
                            let track = kind != endpoints::Kind::Metrics;
                            snapshot::take(pool, scoreboard, listeners, last_requests, track)
                        };
                        endpoints.on_event(token, poll.registry(), &mut snap);
                    }
                }
            }
            for sig in sigs.drain(..) {
                self.on_signal(sig);
            }
            self.reap();
            self.on_timers();
        }
        // Workers shut the listeners they were forked with as their own;
        // those a master started by SIGUSR2 forked before it was ready took
        // the handed-over ones for the previous master's: the master shuts
        // them (and answers what still waits with 503).
        if self.listeners.iter().any(|l| l.handed && !l.inherited) {
            self.shut_listeners();
        }
        if self.config.unix.vacuum {
            for f in &self.unix_paths {
                let path = f.path.display();
                match f.remove_if_ours() {
                    Ok(true) => log::info!("removed {path} (--vacuum)"),
                    Ok(false) => log::info!("--vacuum: {path} is not the socket rwsgi made; left"),
                    Err(e) => log::warn!("--vacuum: cannot remove {path}: {e}"),
                }
            }
        }
        self.remove_oldbin();
        log::info!("master exiting with code {}", self.exit_code);
        self.exit_code
    }

    fn next_timeout(&self) -> Duration {
        let now = Instant::now();
        // With --harakiri the scoreboard is checked often enough to end a
        // request within the limit plus a fraction of a second.
        let mut t = match self.config.recycle.harakiri {
            Some(_) => Duration::from_millis(200),
            None => Duration::from_secs(1),
        };
        let shutdown = self.stage.shutdown();
        let timers = [
            shutdown.kill_at,
            shutdown.drain_at,
            self.pool.wake_at(),
            self.watchdog_at, // [systemd hook] WATCHDOG=1
            self.rss_check_at,
            self.templates.as_ref().and_then(|t| t.restart_at()),
        ];
        for at in timers.into_iter().flatten() {
            t = t.min(at.saturating_duration_since(now));
        }
        t
    }

    fn on_signal(&mut self, sig: i32) {
        match signals::action(sig) {
            Action::Reap => {} // reaping happens every loop turn
            Action::GracefulShutdown => self.shutdown(true, sys::signal_name(sig)),
            Action::FastShutdown => self.shutdown(false, sys::signal_name(sig)),
            Action::AddWorker | Action::RemoveWorker | Action::Reload
                if self.phase() == Phase::ShuttingDown =>
            {
                log::info!(
                    "{}: ignored, the server is shutting down",
                    sys::signal_name(sig)
                );
            }
            Action::Reload => self.reload(),
            Action::AddWorker => {
                let n = self.pool.set_target(self.pool.target() + 1);
                log::info!("SIGTTIN: now {n} worker(s)");
                self.fill_pool();
            }
            Action::RemoveWorker => {
                let n = self
                    .pool
                    .set_target(self.pool.target().saturating_sub(1).max(1));
                log::info!("SIGTTOU: now {n} worker(s)");
                let stop = self.pool.stop_surplus(Instant::now());
                self.execute(stop);
            }
            Action::ReopenLogs => match &self.config.process.logto {
                Some(_) => {
                    crate::process::reopen_log(&self.config);
                    self.execute(self.pool.signal_all(libc::SIGUSR1));
                    if let Some(t) = &mut self.templates {
                        t.signal_all(libc::SIGUSR1, false);
                    }
                }
                None => log::info!("SIGUSR1: logs go to stderr; nothing to reopen"),
            },
            Action::Upgrade => self.upgrade(),
            Action::Ignore => {}
        }
    }

    fn reload(&mut self) {
        log::info!(
            "SIGHUP: reloading {} worker(s) ({} mode; the code is imported anew, the \
             configuration is the one read at start: SIGUSR2 or a restart applies a changed one)",
            self.pool.target(),
            self.config.reload_mode.name()
        );
        self.set_phase(Phase::Reloading);
        if self.templates.is_some() {
            // The pool's reload starts once the new template has imported.
            self.start_template(template::Start::Reload);
            return;
        }
        let kill = self.pool.begin_reload(Instant::now());
        self.execute(kill);
        self.fill_pool();
    }

    fn read_notices(&mut self) {
        let mut buf = [0u8; 256];
        while let Ok(n) = sys::read(self.notify_read.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            for msg in buf[..n].chunks_exact(NOTICE_LEN) {
                match Notice::decode(msg) {
                    Some((Notice::Ready, crate::supervise::template::TEMPLATE_SLOT, pid)) => {
                        self.on_template_ready(pid)
                    }
                    Some((Notice::Ready, slot, pid)) => self.on_ready(slot, pid),
                    Some((Notice::Retire(reason), slot, pid)) => {
                        // The pool ignores it once draining.
                        let min = self.config.recycle.min_worker_lifetime;
                        self.pool.retire(slot, pid, reason, min, Instant::now());
                        self.fill_pool();
                    }
                    None => log::warn!("unknown notice from a worker: {msg:?}"),
                }
            }
        }
    }

    fn on_ready(&mut self, slot: usize, pid: libc::pid_t) {
        let Some(w) = self.pool.mark_ready(slot, pid) else {
            log::debug!("ready notice from pid {pid} (slot {slot}), no longer a worker: ignored");
            self.kill_stray_worker(pid);
            return;
        };
        log::debug!("worker {} (pid {}) ready", w.id, w.pid);
        match self.phase() {
            Phase::Starting if self.pool.all_ready() => {
                log::info!(
                    "ready: {} worker(s) serving {} (startup {} ms; {}; {})",
                    self.pool.len(),
                    self.listeners
                        .iter()
                        .map(|l| format!("{}://{}", l.protocol.name(), l.addr))
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.started.elapsed().as_millis(),
                    self.mode_description(),
                    self.memory_summary()
                );
                self.set_phase(Phase::Running);
                self.tell_previous_master();
            }
            _ => {}
        }
        // A ready worker may free one being replaced (reload or recycling).
        let stop = self.pool.rebalance(Instant::now());
        self.execute(stop);
        self.fill_pool();
        self.finish_reload_if_done();
    }

    fn finish_reload_if_done(&mut self) {
        if self.phase() == Phase::Reloading && self.pool.reload_done() {
            if let Some(t) = &mut self.templates {
                t.reload_done();
            }
            log::info!(
                "reload complete: {} worker(s) of the new generation",
                self.pool.len()
            );
            self.set_phase(Phase::Running);
        }
    }

    fn on_timers(&mut self) {
        self.watchdog_at = self.notifier.watchdog(); // [systemd hook]
        self.template_timer();
        let due = self.pool.tick(Instant::now());
        self.execute(due);
        self.endpoints.expire(self.poll.registry());
        let now = Instant::now();
        if let Some(s) = self
            .shutdown_state()
            .filter(|s| s.drain_at.is_some_and(|at| now >= at))
        {
            s.drain_at = None;
            self.drain(true);
        }
        // Also during a --shutdown-delay (the workers still serve); in the
        // drain, --shutdown-timeout bounds what is left.
        if !self.pool.is_closed() {
            if let Some(limit) = self.config.recycle.harakiri {
                self.check_harakiri(limit);
            }
            if self.rss_check_at.is_some_and(|at| Instant::now() >= at) {
                self.rss_check_at = Some(Instant::now() + RSS_EVERY);
                self.check_idle_rss();
            }
        }
        if let Some(at) = self.shutdown_state().and_then(|s| s.kill_at) {
            let templates_left = self.templates.as_ref().is_some_and(|t| !t.is_empty());
            if Instant::now() >= at && (!self.pool.is_empty() || templates_left) {
                log::warn!(
                    "shutdown grace over: killing {} worker(s) still running",
                    self.pool.len()
                );
                self.shut_listeners();
                self.execute(self.pool.kill_all());
                if let Some(t) = &mut self.templates {
                    t.signal_all(libc::SIGKILL, true);
                }
                if let Some(s) = self.shutdown_state() {
                    s.kill_at = None;
                }
            }
        }
        self.fill_pool();
    }
}
