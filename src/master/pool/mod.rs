//! The set of live workers: forking them, reaping them, replacing them, and
//! the generation bookkeeping behind a reload.

mod guard;
mod recycle;
mod respawn;

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::config::{Config, ReloadMode};
use crate::supervise::{RetireReason, WorkerContext, WorkerEntry, EXIT_APP_LOAD_ERROR};
use std::collections::HashMap;

use crate::scoreboard::{now_us, Counters, Scoreboard};
use crate::socket::Listener;
use crate::sys::{self, ExitStatus, Forked};

use guard::{CrashGuard, Fork};
use respawn::Respawn;

/// Longest wait for killed starting workers to be reaped before forking.
const SUPERSEDED_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Worker {
    pub pid: libc::pid_t,
    pub slot: usize,
    pub id: usize,
    pub generation: u64,
    pub spawned: Instant,
    pub ready: bool,
    pub stopping: bool,
    /// Asked to be recycled; stopped once a successor is ready.
    pub retiring: bool,
    /// A recycle request deferred until `--min-worker-lifetime` has passed.
    pub retire_at: Option<Instant>,
    /// A stopping worker still alive then is killed (`--shutdown-timeout`).
    pub kill_at: Option<Instant>,
    /// When it was killed while starting (its reload was overtaken or
    /// failed); the next generation is forked once these are reaped.
    pub superseded: Option<Instant>,
    /// Stopped by harakiri: SIGKILLed at `kill_at`, after its stack dump.
    pub harakiri: bool,
}

/// Where workers come from: forked by the master, or by the `--preload`
/// template (then `inherited`, the master's private fds, are its business).
pub enum ForkFrom<'a> {
    Master(&'a [RawFd]),
    Template(&'a mut super::template::Templates),
}

/// What reaping a pid meant.
pub enum Reaped {
    /// A worker we had asked to stop.
    Expected,
    /// A worker died on its own; `load_error` if it never loaded the app.
    Crashed { load_error: bool },
    /// Not one of our workers (an orphan reaped as PID 1).
    Unknown,
}

pub struct Pool {
    /// Counters of workers that have exited (stats totals never go down).
    pub retired: Counters,
    /// Replacements by cause, indexed by [`Respawn::index`] (named in the
    /// order of `stats::RESPAWN_CAUSES`).
    pub respawns: [u64; 5],
    /// How often each worker id was spawned, and killed by harakiri.
    pub spawns: HashMap<usize, u64>,
    pub harakiris: HashMap<usize, u64>,
    entry: WorkerEntry,
    /// How long a stopped worker may take to finish (`--shutdown-timeout`).
    grace: Duration,
    target: usize,
    mode: ReloadMode,
    generation: u64,
    /// Generation to fall back to if a reload's new code does not load.
    reload_from: Option<u64>,
    workers: Vec<Worker>,
    /// Back-off and fork budget for workers that died on their own.
    guard: CrashGuard,
    /// When `spawn_missing` may fork again (a back-off or the fork budget).
    respawn_at: Option<Instant>,
}

impl Pool {
    pub fn new(entry: WorkerEntry, target: usize, mode: ReloadMode, grace: Duration) -> Pool {
        Pool {
            grace,
            retired: Counters::default(),
            respawns: [0; 5],
            spawns: HashMap::new(),
            harakiris: HashMap::new(),
            entry,
            target,
            mode,
            generation: 1,
            reload_from: None,
            workers: Vec::new(),
            guard: CrashGuard::new(Instant::now(), target),
            respawn_at: None,
        }
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }
    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }
    pub fn target(&self) -> usize {
        self.target
    }
    pub fn set_target(&mut self, n: usize) -> usize {
        self.target = n.clamp(1, crate::scoreboard::MAX_SLOTS / 2);
        self.target
    }
    pub fn respawn_at(&self) -> Option<Instant> {
        self.respawn_at
    }
    /// A fork failed: try again after `delay` (unless something earlier is due).
    pub fn retry_after(&mut self, delay: Duration) {
        let at = Instant::now() + delay;
        self.respawn_at = Some(self.respawn_at.map_or(at, |t| t.min(at)));
    }

    /// Workers of the current generation that are meant to keep serving.
    fn current(&self) -> impl Iterator<Item = &Worker> {
        self.workers
            .iter()
            .filter(move |w| w.generation == self.generation && !w.stopping && !w.retiring)
    }

    /// Workers waiting to be replaced: an older generation, or retiring.
    fn replaceable(&self, w: &Worker) -> bool {
        !w.stopping && (w.generation < self.generation || w.retiring)
    }

    /// Stops replaceable workers while the ready current workers plus the
    /// replaceable ones exceed the target: a worker being replaced is only
    /// stopped once a successor is ready, so capacity never dips.
    pub fn rebalance(&mut self, scoreboard: &Scoreboard) {
        loop {
            let ready = self.current().filter(|w| w.ready).count();
            let replaceable = self.workers.iter().filter(|w| self.replaceable(w)).count();
            if replaceable == 0 || ready + replaceable <= self.target {
                return;
            }
            let generation = self.generation;
            let pick = self
                .workers
                .iter()
                .position(|w| !w.stopping && w.generation < generation)
                .or_else(|| self.workers.iter().position(|w| !w.stopping && w.retiring));
            match pick {
                Some(i) => {
                    if self.workers[i].generation < generation {
                        self.respawns[Respawn::Reload.index()] += 1;
                    }
                    Self::stop(&mut self.workers[i], scoreboard, self.grace)
                }
                None => return,
            }
        }
    }

    pub fn all_ready(&self) -> bool {
        self.current().count() >= self.target && self.current().all(|w| w.ready)
    }

    /// Forks workers until the current generation has `target` of them,
    /// unless the back-off, the fork budget (see `guard`) or killed starters
    /// not yet reaped have us wait (`respawn_at` says until when). A rolling
    /// reload starts one at a time.
    pub fn spawn_missing(
        &mut self,
        config: &Config,
        listeners: &[Listener],
        scoreboard: &Scoreboard,
        notify_fd: RawFd,
        from: &mut ForkFrom<'_>,
    ) -> io::Result<()> {
        self.respawn_at = None;
        // Forks wait for the killed starters to be reaped (milliseconds), but
        // not for ever: one stuck in the kernel must not stall the pool.
        if let Some(at) = self.workers.iter().filter_map(|w| w.superseded).min() {
            let until = at + SUPERSEDED_WAIT;
            if Instant::now() < until {
                self.respawn_at = Some(until);
                return Ok(());
            }
        }
        let missing = self.target.saturating_sub(self.current().count());
        self.guard.owe_at_most(missing);
        while self.current().count() < self.target {
            let rolling = self.reload_from.is_some() && self.mode == ReloadMode::Rolling;
            if rolling && self.current().any(|w| !w.ready) {
                break;
            }
            let live = self.workers.iter().filter(|w| !w.stopping).count();
            let floor = match self.guard.may_fork(Instant::now(), self.target, live) {
                Fork::Now => "",
                Fork::Floor => "; fork budget spent, but no worker is left",
                Fork::At(at) => {
                    self.respawn_at = Some(at);
                    break;
                }
            };
            let Some(slot) = scoreboard.free_slot() else {
                return Err(io::Error::other("no free scoreboard slot"));
            };
            let id = (1..)
                .find(|i| !self.workers.iter().any(|w| w.id == *i))
                .unwrap_or(1);
            scoreboard.slot(slot).reset(-1, self.generation, now_us());
            let ctx = WorkerContext {
                config,
                listeners,
                scoreboard,
                slot,
                id,
                generation: self.generation,
                master_pid: sys::getpid(),
                notify_fd,
            };
            let forked = match from {
                ForkFrom::Master(inherited) => {
                    let entry = self.entry;
                    fork_child(inherited, move || entry(ctx))
                }
                ForkFrom::Template(t) => t.fork(&ctx),
            };
            let pid = match forked {
                Ok(pid) => pid,
                Err(e) => {
                    scoreboard.slot(slot).free();
                    return Err(e);
                }
            };
            scoreboard.slot(slot).set_pid(pid);
            *self.spawns.entry(id).or_default() += 1;
            log::info!(
                "spawned worker {id} (pid {pid}, generation {}{floor})",
                self.generation
            );
            self.workers.push(Worker {
                pid,
                slot,
                id,
                generation: self.generation,
                spawned: Instant::now(),
                ready: false,
                stopping: false,
                retiring: false,
                retire_at: None,
                kill_at: None,
                harakiri: false,
                superseded: None,
            });
        }
        Ok(())
    }

    pub fn mark_ready(&mut self, slot: usize, pid: libc::pid_t) -> Option<Worker> {
        let w = self
            .workers
            .iter_mut()
            .find(|w| w.slot == slot && w.pid == pid)?;
        w.ready = true;
        self.guard.ready();
        Some(w.clone())
    }

    /// Forwards a signal to every worker (e.g. USR1: reopen the log file).
    pub fn signal_all(&self, sig: libc::c_int) {
        for w in &self.workers {
            sys::kill(w.pid, sig);
        }
    }

    /// Signals every worker; they are all stopping from now on.
    pub fn stop_all(&mut self, sig: libc::c_int) {
        for w in &mut self.workers {
            w.stopping = true;
            sys::kill(w.pid, sig);
        }
    }

    fn stop(w: &mut Worker, scoreboard: &Scoreboard, grace: Duration) {
        log::info!("stopping worker {} (pid {})", w.id, w.pid);
        w.stopping = true;
        w.kill_at = Some(crate::sys::deadline(Instant::now(), grace));
        scoreboard
            .slot(w.slot)
            .set_state(crate::scoreboard::WorkerState::Stopping);
        sys::kill(w.pid, libc::SIGTERM);
    }

    /// Starts a new generation. A reload already under way is superseded:
    /// the workers of the overtaken generations that are still starting are
    /// killed (they have not served, and would only add to the processes),
    /// and the new generation is forked once they are reaped. Their ready
    /// workers keep serving and are replaced like the old ones, so the pool
    /// stays within 2 × processes (+ workers finishing their last requests).
    pub fn begin_reload(&mut self) {
        match self.reload_from {
            None => self.reload_from = Some(self.generation),
            Some(from) => self.kill_starting(from, "overtaken by a newer reload"),
        }
        self.generation += 1;
        self.guard.reset();
        self.respawn_at = None;
    }

    /// A reload's workers are being started (and the old ones replaced).
    pub fn reloading(&self) -> bool {
        self.reload_from.is_some()
    }

    /// True once no worker of an older generation is left.
    pub fn reload_done(&mut self) -> bool {
        let done = self.reload_from.is_some()
            && !self.workers.iter().any(|w| w.generation < self.generation)
            && self.all_ready();
        if done {
            self.reload_from = None;
        }
        done
    }

    /// The new generation cannot load the app: stop its workers and keep
    /// serving with the old ones.
    pub fn abort_reload(&mut self, scoreboard: &Scoreboard) {
        let Some(old) = self.reload_from.take() else {
            return;
        };
        // Every generation newer than the one we fall back to goes, including
        // one left over from an earlier reload that was overtaken by this one.
        self.kill_starting(old, "its generation does not load");
        let grace = self.grace;
        for w in self.workers.iter_mut().filter(|w| w.generation > old) {
            if !w.stopping {
                Self::stop(w, scoreboard, grace);
            }
        }
        self.generation = old;
        // Old workers already retired are replaced by respawns that import the
        // code on disk, so give them the crash-loop back-off, not a fork storm.
        self.guard
            .hold_until(Instant::now() + Duration::from_secs(1));
    }

    /// Kills the workers of generations newer than `generation` that are still
    /// starting: they have served nothing, and a SIGTERM would only be seen
    /// once their import ends. Forks wait until they are reaped.
    fn kill_starting(&mut self, generation: u64, why: &str) {
        for w in self.workers.iter_mut() {
            if w.generation > generation && !w.ready && !w.stopping {
                log::info!(
                    "worker {} (pid {}) of generation {} killed while starting: {why}",
                    w.id,
                    w.pid,
                    w.generation
                );
                w.stopping = true;
                w.superseded = Some(Instant::now());
                sys::kill(w.pid, libc::SIGKILL);
            }
        }
    }

    /// TTOU: stop workers above the target, newest first.
    pub fn stop_surplus(&mut self, scoreboard: &Scoreboard) {
        let grace = self.grace;
        while self.current().count() > self.target {
            let generation = self.generation;
            let Some(w) = self
                .workers
                .iter_mut()
                .filter(|w| w.generation == generation && !w.stopping)
                .max_by_key(|w| w.id)
            else {
                break;
            };
            Self::stop(w, scoreboard, grace);
        }
    }

    /// Accounts for a reaped child.
    pub fn reaped(
        &mut self,
        pid: libc::pid_t,
        status: ExitStatus,
        scoreboard: &Scoreboard,
    ) -> Reaped {
        let Some(pos) = self.workers.iter().position(|w| w.pid == pid) else {
            return Reaped::Unknown;
        };
        let w = self.workers.swap_remove(pos);
        self.retired.add(&scoreboard.slot(w.slot).counters());
        if w.stopping {
            scoreboard.slot(w.slot).free();
            log::info!("worker {} (pid {}) stopped ({status})", w.id, pid);
            return Reaped::Expected;
        }
        let lived = w.spawned.elapsed();
        let load_error = !w.ready && status == ExitStatus::Code(EXIT_APP_LOAD_ERROR);
        log::error!(
            "worker {} (pid {}) died after {} ms and {} request(s){}: {status}{}",
            w.id,
            pid,
            lived.as_millis(),
            scoreboard.slot(w.slot).requests(),
            scoreboard.in_flight(w.slot, sys::monotonic_usec()),
            if load_error {
                " (the app failed to load)"
            } else {
                ""
            }
        );
        if w.ready {
            // Served, then died (a request crashed it): replaced at once,
            // within the fork budget.
            self.guard.crashed_after_ready();
        } else if let Some(delay) = self.guard.died_before_ready(Instant::now()) {
            log::warn!(
                "workers keep dying before they are ready ({} in a row); next respawn in {} ms",
                self.guard.load_failures(),
                delay.as_millis()
            );
        }
        scoreboard.slot(w.slot).free();
        self.respawns[Respawn::Crash.index()] += 1;
        Reaped::Crashed { load_error }
    }
}

/// Forks a child of the master (a worker, or the preload template). The
/// child closes the master's private fds, restores the default disposition
/// of the master's signals (they are still blocked, so none is lost or
/// misrouted), runs `body` and never returns.
pub(super) fn fork_child(
    inherited: &[RawFd],
    body: impl FnOnce() -> i32,
) -> io::Result<libc::pid_t> {
    sys::block_all_signals(true);
    // SAFETY: the master is single-threaded (DESIGN §1).
    let forked = unsafe { sys::fork() };
    match forked {
        Ok(Forked::Child) => {
            for &fd in inherited {
                // SAFETY: the master's private fds; the child never uses
                // them, and never drops their owners (it ends in _exit).
                unsafe { sys::close(fd) };
            }
            let _ = sys::default_signals(super::signals::HANDLED);
            // A panic in the child must never unwind into the master's
            // frames (and their destructors).
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
            sys::exit_now(code);
        }
        Ok(Forked::Parent(pid)) => {
            sys::block_all_signals(false);
            Ok(pid)
        }
        Err(e) => {
            sys::block_all_signals(false);
            Err(e)
        }
    }
}
