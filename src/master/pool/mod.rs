//! The set of live workers as a state machine without I/O: each worker has
//! an explicit [`State`], and every decision — fork one more, stop this one,
//! kill that one — is returned to the master, which carries it out
//! (`master::execute`). Time comes in as an argument, so the unit tests
//! (`tests.rs`) drive reloads, rollbacks, back-off, recycling and drains
//! with a fake clock. sozu's `workers_to_spawn` and pingora's server phases
//! are the models.

mod guard;
mod recycle;
mod reload;
mod respawn;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::ReloadMode;
use crate::scoreboard::Counters;
use crate::supervise::EXIT_APP_LOAD_ERROR;
use crate::sys::ExitStatus;

use guard::{CrashGuard, Fork};
use respawn::Respawn;

/// Longest wait for killed starting workers to be reaped before forking.
const SUPERSEDED_WAIT: Duration = Duration::from_secs(1);

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Forked, importing the app; not serving yet.
    Starting,
    /// Serving.
    Ready,
    /// Serving; asked to be recycled, which `--min-worker-lifetime` defers
    /// until then.
    RetireAt(Instant),
    /// Serving until a successor is ready, then stopped.
    Retiring,
    /// Asked to stop; reaped when it exits.
    Stopping(Stopping),
}

/// Why a worker is stopping, and when it is killed if still alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopping {
    pub why: Stop,
    /// SIGKILL then (`--shutdown-timeout`, or harakiri's grace).
    pub kill_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Replaced (reload, recycling, fewer workers): finishes its requests.
    Replaced,
    /// Stuck in a request past `--harakiri`: dumps its stacks, then killed.
    Harakiri,
    /// Killed while starting (its reload was overtaken or failed); forks
    /// wait until it is reaped, at most [`SUPERSEDED_WAIT`] after `since`.
    Superseded { since: Instant },
    /// The server is shutting down.
    Drain,
}

#[derive(Debug, Clone)]
pub struct Worker {
    pub pid: libc::pid_t,
    pub slot: usize,
    pub id: usize,
    pub generation: u64,
    pub spawned: Instant,
    pub state: State,
}

impl Worker {
    pub fn is_stopping(&self) -> bool {
        matches!(self.state, State::Stopping(_))
    }
    /// Has announced it serves (and is not stopping).
    pub fn is_ready(&self) -> bool {
        matches!(
            self.state,
            State::Ready | State::RetireAt(_) | State::Retiring
        )
    }
    /// Meant to keep serving: not stopping, not waiting for a successor.
    fn stays(&self) -> bool {
        matches!(
            self.state,
            State::Starting | State::Ready | State::RetireAt(_)
        )
    }
}

/// What the master is to do for the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// SIGTERM: finish the requests in hand and exit; its slot shows it
    /// stopping.
    Stop { pid: libc::pid_t, slot: usize },
    /// SIGKILL.
    Kill { pid: libc::pid_t },
    /// The harakiri signal: dump the Python stacks, answer 504.
    Harakiri { pid: libc::pid_t },
    /// Any other signal (USR1 to reopen logs; the drain's signal).
    Signal {
        pid: libc::pid_t,
        signal: libc::c_int,
    },
}

/// A worker to fork: the master picks its slot, forks it and reports back
/// with [`Pool::spawned`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawn {
    pub id: usize,
    pub generation: u64,
    /// Forked although the fork budget is spent: no worker was left.
    pub floor: bool,
}

/// What reaping a pid meant.
#[derive(Debug)]
pub enum Reaped {
    /// A worker we had asked to stop.
    Expected(Worker),
    /// A worker died on its own after `lived`; `load_error` if it never
    /// loaded the app; `backoff` if its replacement waits.
    Crashed {
        worker: Worker,
        lived: Duration,
        load_error: bool,
        backoff: Option<Duration>,
    },
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
    /// How long a stopped worker may take to finish (`--shutdown-timeout`).
    grace: Duration,
    target: usize,
    mode: ReloadMode,
    generation: u64,
    /// Generation to fall back to if a reload's new code does not load.
    reload_from: Option<u64>,
    /// Draining: nothing is forked or recycled any more.
    closed: bool,
    workers: Vec<Worker>,
    /// Back-off and fork budget for workers that died on their own.
    guard: CrashGuard,
    /// When forking may resume after the last `next_spawn` held it back (a
    /// back-off, the fork budget, killed starters not yet reaped).
    respawn_at: Option<Instant>,
    /// A fork failed: none is tried before then.
    retry_at: Option<Instant>,
}

impl Pool {
    pub fn new(target: usize, mode: ReloadMode, grace: Duration, now: Instant) -> Pool {
        Pool {
            grace,
            retired: Counters::default(),
            respawns: [0; 5],
            spawns: HashMap::new(),
            harakiris: HashMap::new(),
            target,
            mode,
            generation: 1,
            reload_from: None,
            closed: false,
            workers: Vec::new(),
            guard: CrashGuard::new(now, target),
            respawn_at: None,
            retry_at: None,
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

    /// The earliest moment something is due: a fork held back, a deferred
    /// recycle, a kill deadline.
    pub fn wake_at(&self) -> Option<Instant> {
        let deadlines = self.workers.iter().filter_map(|w| match w.state {
            State::RetireAt(at) if !self.closed => Some(at),
            State::Stopping(s) => s.kill_at,
            _ => None,
        });
        deadlines.chain(self.respawn_at).chain(self.retry_at).min()
    }

    /// A fork failed: no fork is tried again before `delay` has passed.
    pub fn retry_after(&mut self, now: Instant, delay: Duration) {
        self.retry_at = Some(now + delay);
    }

    /// Forks wait for an event, not a time (the `--preload` template is not
    /// ready): nothing is due until the master asks again.
    pub fn defer_forks(&mut self) {
        self.respawn_at = None;
        self.retry_at = None;
    }

    /// Workers of the current generation that are meant to keep serving.
    fn current(&self) -> impl Iterator<Item = &Worker> {
        self.workers
            .iter()
            .filter(move |w| w.generation == self.generation && w.stays())
    }

    /// Workers waiting to be replaced: an older generation, or retiring.
    fn replaceable(&self, w: &Worker) -> bool {
        !w.is_stopping() && (w.generation < self.generation || w.state == State::Retiring)
    }

    fn find(&mut self, slot: usize, pid: libc::pid_t) -> Option<&mut Worker> {
        self.workers
            .iter_mut()
            .find(|w| w.slot == slot && w.pid == pid)
    }

    /// Stops replaceable workers while the ready current workers plus the
    /// replaceable ones exceed the target: a worker being replaced is only
    /// stopped once a successor is ready, so capacity never dips.
    pub fn rebalance(&mut self, now: Instant) -> Vec<Command> {
        let mut out = Vec::new();
        loop {
            let ready = self.current().filter(|w| w.is_ready()).count();
            let replaceable = self.workers.iter().filter(|w| self.replaceable(w)).count();
            if replaceable == 0 || ready + replaceable <= self.target {
                return out;
            }
            let generation = self.generation;
            let pick = self
                .workers
                .iter()
                .position(|w| !w.is_stopping() && w.generation < generation)
                .or_else(|| self.workers.iter().position(|w| w.state == State::Retiring));
            let Some(i) = pick else { return out };
            if self.workers[i].generation < generation {
                self.respawns[Respawn::Reload.index()] += 1;
            }
            out.push(self.stop(i, now));
        }
    }

    /// Stops worker `i`: SIGTERM, and SIGKILL after the grace.
    fn stop(&mut self, i: usize, now: Instant) -> Command {
        let w = &mut self.workers[i];
        log::info!("stopping worker {} (pid {})", w.id, w.pid);
        w.state = State::Stopping(Stopping {
            why: Stop::Replaced,
            kill_at: Some(crate::sys::deadline(now, self.grace)),
        });
        Command::Stop {
            pid: w.pid,
            slot: w.slot,
        }
    }

    pub fn all_ready(&self) -> bool {
        self.current().count() >= self.target && self.current().all(|w| w.is_ready())
    }

    /// The next worker to fork so that the current generation has `target`
    /// of them, or None: none is missing, a rolling reload waits for the one
    /// starting, or the back-off, the fork budget (see `guard`) or killed
    /// starters not yet reaped hold forks back ([`Pool::wake_at`] says until
    /// when). The master forks it and calls [`Pool::spawned`], then asks again.
    pub fn next_spawn(&mut self, now: Instant) -> Option<Spawn> {
        self.respawn_at = None;
        if self.closed {
            return None;
        }
        match self.retry_at {
            Some(at) if now < at => return None,
            _ => self.retry_at = None,
        }
        // Forks wait for the killed starters to be reaped (milliseconds), but
        // not for ever: one stuck in the kernel must not stall the pool.
        let superseded = self.workers.iter().filter_map(|w| match w.state {
            State::Stopping(Stopping {
                why: Stop::Superseded { since },
                ..
            }) => Some(since),
            _ => None,
        });
        if let Some(since) = superseded.min() {
            let until = since + SUPERSEDED_WAIT;
            if now < until {
                self.respawn_at = Some(until);
                return None;
            }
        }
        let missing = self.target.saturating_sub(self.current().count());
        self.guard.owe_at_most(missing);
        if missing == 0 {
            return None;
        }
        let rolling = self.reload_from.is_some() && self.mode == ReloadMode::Rolling;
        if rolling && self.current().any(|w| !w.is_ready()) {
            return None;
        }
        let live = self.workers.iter().filter(|w| !w.is_stopping()).count();
        let floor = match self.guard.may_fork(now, self.target, live) {
            Fork::Now => false,
            Fork::Floor => true,
            Fork::At(at) => {
                self.respawn_at = Some(at);
                return None;
            }
        };
        let id = (1..)
            .find(|i| !self.workers.iter().any(|w| w.id == *i))
            .unwrap_or(1);
        Some(Spawn {
            id,
            generation: self.generation,
            floor,
        })
    }

    /// The master forked `spawn` as `pid` in scoreboard slot `slot`.
    pub fn spawned(&mut self, spawn: Spawn, pid: libc::pid_t, slot: usize, now: Instant) {
        *self.spawns.entry(spawn.id).or_default() += 1;
        log::info!(
            "spawned worker {} (pid {pid}, generation {}{})",
            spawn.id,
            spawn.generation,
            if spawn.floor {
                "; fork budget spent, but no worker is left"
            } else {
                ""
            }
        );
        self.workers.push(Worker {
            pid,
            slot,
            id: spawn.id,
            generation: spawn.generation,
            spawned: now,
            state: State::Starting,
        });
    }

    /// A worker says it serves. None if it is no longer one of ours.
    pub fn mark_ready(&mut self, slot: usize, pid: libc::pid_t) -> Option<Worker> {
        let w = self.find(slot, pid)?;
        if w.state == State::Starting {
            w.state = State::Ready;
        }
        let w = w.clone();
        self.guard.ready();
        Some(w)
    }

    /// Forwards a signal to every worker (e.g. USR1: reopen the log file).
    pub fn signal_all(&self, signal: libc::c_int) -> Vec<Command> {
        let each = |w: &Worker| Command::Signal { pid: w.pid, signal };
        self.workers.iter().map(each).collect()
    }

    /// Draining: nothing is forked or recycled from now on.
    pub fn close(&mut self) {
        self.closed = true;
        self.respawn_at = None;
        self.retry_at = None;
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Every worker gets `signal` and stops; the pool is closed. A worker
    /// already stopping keeps its deadline.
    pub fn drain(&mut self, signal: libc::c_int) -> Vec<Command> {
        self.close();
        for w in &mut self.workers {
            if !w.is_stopping() {
                w.state = State::Stopping(Stopping {
                    why: Stop::Drain,
                    kill_at: None,
                });
            }
        }
        self.signal_all(signal)
    }

    /// The drain's grace is over: every worker left is killed.
    pub fn kill_all(&self) -> Vec<Command> {
        let each = |w: &Worker| Command::Kill { pid: w.pid };
        self.workers.iter().map(each).collect()
    }

    /// TTOU: stop workers above the target, newest first.
    pub fn stop_surplus(&mut self, now: Instant) -> Vec<Command> {
        let mut out = Vec::new();
        while self.current().count() > self.target {
            let generation = self.generation;
            let newest = self
                .workers
                .iter()
                .enumerate()
                .filter(|(_, w)| w.generation == generation && !w.is_stopping())
                .max_by_key(|(_, w)| w.id)
                .map(|(i, _)| i);
            let Some(i) = newest else { break };
            out.push(self.stop(i, now));
        }
        out
    }

    /// Accounts for a reaped child: the worker is removed and returned.
    pub fn reaped(&mut self, pid: libc::pid_t, status: ExitStatus, now: Instant) -> Reaped {
        let Some(pos) = self.workers.iter().position(|w| w.pid == pid) else {
            return Reaped::Unknown;
        };
        let worker = self.workers.swap_remove(pos);
        if worker.is_stopping() {
            return Reaped::Expected(worker);
        }
        let ready = worker.is_ready();
        let load_error = !ready && status == ExitStatus::Code(EXIT_APP_LOAD_ERROR);
        let backoff = if ready {
            // Served, then died (a request crashed it): replaced at once,
            // within the fork budget.
            self.guard.crashed_after_ready();
            None
        } else {
            self.guard.died_before_ready(now)
        };
        self.respawns[Respawn::Crash.index()] += 1;
        Reaped::Crashed {
            lived: now.saturating_duration_since(worker.spawned),
            worker,
            load_error,
            backoff,
        }
    }

    /// How many workers in a row died before becoming ready.
    pub fn load_failures(&self) -> u32 {
        self.guard.load_failures()
    }
}
