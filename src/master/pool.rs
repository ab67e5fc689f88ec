//! The set of live workers: forking them, reaping them, replacing them, and
//! the generation bookkeeping behind a reload.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::{RetireReason, WorkerContext, WorkerEntry, EXIT_APP_LOAD_ERROR};
use crate::config::Config;
use std::collections::HashMap;

use crate::scoreboard::{now_us, Counters, Scoreboard};
use crate::socket::Listener;
use crate::sys::{self, ExitStatus, Forked};

/// A worker that lived less than this counts as dying "right after start".
const QUICK_DEATH: Duration = Duration::from_secs(2);
/// Longest wait between respawns of a crash-looping app.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How a reload replaces workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadMode {
    /// One new worker at a time; each ready one retires one old worker.
    Rolling,
    /// All new workers at once; old ones retire as new ones become ready.
    All,
}

impl ReloadMode {
    pub fn name(self) -> &'static str {
        match self {
            ReloadMode::Rolling => "rolling",
            ReloadMode::All => "all",
        }
    }
}

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
    /// Replacements by cause, in the order of `stats::RESPAWN_CAUSES`.
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
    quick_deaths: u32,
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
            quick_deaths: 0,
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
                        self.respawns[4] += 1;
                    }
                    Self::stop(&mut self.workers[i], scoreboard, self.grace)
                }
                None => return,
            }
        }
    }

    /// A worker asked to be recycled: mark it retiring (so a successor is
    /// spawned), or defer that until it has lived `min_lifetime`.
    pub fn retire(
        &mut self,
        slot: usize,
        pid: libc::pid_t,
        reason: RetireReason,
        min_lifetime: Duration,
    ) {
        let why = reason.flag();
        let cause = match reason {
            RetireReason::MaxRequests => 1,
            RetireReason::Rss => 2,
        };
        let Some(w) = self
            .workers
            .iter_mut()
            .find(|w| w.slot == slot && w.pid == pid)
        else {
            return;
        };
        if w.stopping || w.retiring || w.retire_at.is_some() {
            return;
        }
        self.respawns[cause] += 1;
        let due = w.spawned + min_lifetime;
        if Instant::now() < due {
            log::debug!(
                "worker {} recycle ({why}) deferred by --min-worker-lifetime",
                w.id
            );
            w.retire_at = Some(due);
        } else {
            log::info!(
                "worker {} (pid {}) retiring ({why}); starting its successor",
                w.id,
                w.pid
            );
            w.retiring = true;
        }
    }

    /// Deferred recycle requests whose time has come.
    pub fn retire_due(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            if w.retire_at.is_some_and(|at| now >= at) && !w.stopping {
                log::info!(
                    "worker {} (pid {}) retiring; starting its successor",
                    w.id,
                    w.pid
                );
                w.retire_at = None;
                w.retiring = true;
            }
        }
    }

    /// Kills stopped workers that outlived their grace (a request that never
    /// ends must not keep a reload from completing).
    pub fn kill_overdue(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            if w.stopping && w.kill_at.is_some_and(|at| now >= at) {
                log::warn!(
                    "worker {} (pid {}) still running {} s after it was stopped (--shutdown-timeout); killing it",
                    w.id,
                    w.pid,
                    self.grace.as_secs()
                );
                w.kill_at = None;
                sys::kill(w.pid, libc::SIGKILL);
            }
        }
    }

    /// The earliest stop deadline.
    pub fn next_kill(&self) -> Option<Instant> {
        self.workers.iter().filter_map(|w| w.kill_at).min()
    }

    /// The earliest deferred recycle.
    pub fn next_retire(&self) -> Option<Instant> {
        self.workers.iter().filter_map(|w| w.retire_at).min()
    }

    /// Kills workers whose current request has run longer than `limit`
    /// (`--harakiri`); they are replaced like any stopped worker.
    pub fn harakiri(&mut self, limit: Duration, scoreboard: &Scoreboard) -> usize {
        let now = crate::sys::monotonic_usec();
        let mut killed = 0;
        let harakiris = &mut self.harakiris;
        for w in self.workers.iter_mut().filter(|w| !w.stopping) {
            let slot = scoreboard.slot(w.slot);
            let start = slot.request_start_us();
            if start == 0 || now.saturating_sub(start) <= limit.as_micros() as u64 {
                continue;
            }
            log::error!(
                "harakiri: worker {} (pid {}) has been serving \"{}\" for {:.1} s (limit --harakiri {}); killing it",
                w.id,
                w.pid,
                slot.label(),
                now.saturating_sub(start) as f64 / 1e6,
                limit.as_secs()
            );
            w.stopping = true;
            sys::kill(w.pid, libc::SIGKILL);
            *harakiris.entry(w.id).or_default() += 1;
            killed += 1;
        }
        self.respawns[3] += killed as u64;
        killed
    }

    pub fn all_ready(&self) -> bool {
        self.current().count() >= self.target && self.current().all(|w| w.ready)
    }

    /// Forks workers until the current generation has `target` of them,
    /// unless a crash loop has us waiting. A rolling reload starts one at a time.
    pub fn spawn_missing(
        &mut self,
        config: &Config,
        listeners: &[Listener],
        scoreboard: &Scoreboard,
        notify_fd: RawFd,
        inherited: &[RawFd],
    ) -> io::Result<()> {
        if let Some(at) = self.respawn_at {
            if Instant::now() < at {
                return Ok(());
            }
            self.respawn_at = None;
        }
        while self.current().count() < self.target {
            let rolling = self.reload_from.is_some() && self.mode == ReloadMode::Rolling;
            if rolling && self.current().any(|w| !w.ready) {
                break;
            }
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
            let pid = match fork_worker(self.entry, ctx, inherited) {
                Ok(pid) => pid,
                Err(e) => {
                    scoreboard.slot(slot).free();
                    return Err(e);
                }
            };
            scoreboard.slot(slot).set_pid(pid);
            *self.spawns.entry(id).or_default() += 1;
            log::info!(
                "spawned worker {id} (pid {pid}, generation {})",
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
        w.kill_at = Some(Instant::now() + grace);
        scoreboard
            .slot(w.slot)
            .set_state(crate::scoreboard::WorkerState::Stopping);
        sys::kill(w.pid, libc::SIGTERM);
    }

    pub fn begin_reload(&mut self) {
        if self.reload_from.is_none() {
            self.reload_from = Some(self.generation);
        }
        self.generation += 1;
        self.quick_deaths = 0;
        self.respawn_at = None;
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
        let grace = self.grace;
        for w in self.workers.iter_mut().filter(|w| w.generation > old) {
            if !w.stopping {
                Self::stop(w, scoreboard, grace);
            }
        }
        self.generation = old;
        // Old workers already retired are replaced by respawns that import the
        // code on disk, so give them the crash-loop back-off, not a fork storm.
        self.respawn_at = Some(Instant::now() + Duration::from_secs(1));
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
            scoreboard.slot(w.slot).in_flight(sys::monotonic_usec()),
            if load_error {
                " (the app failed to load)"
            } else {
                ""
            }
        );
        if lived < QUICK_DEATH {
            self.quick_deaths += 1;
            if self.quick_deaths >= 2 {
                let delay =
                    Duration::from_millis(50 << (self.quick_deaths - 2).min(10)).min(MAX_BACKOFF);
                log::warn!(
                    "workers keep dying right after start ({} in a row); next respawn in {} ms",
                    self.quick_deaths,
                    delay.as_millis()
                );
                self.respawn_at = Some(Instant::now() + delay);
            }
        } else {
            self.quick_deaths = 0;
        }
        scoreboard.slot(w.slot).free();
        self.respawns[0] += 1;
        Reaped::Crashed { load_error }
    }
}

/// Forks one worker. The child closes the master's private fds, restores the
/// default disposition of the master's signals (they are still blocked, so
/// none is lost or misrouted), runs the entry and never returns.
fn fork_worker(
    entry: WorkerEntry,
    ctx: WorkerContext<'_>,
    inherited: &[RawFd],
) -> io::Result<libc::pid_t> {
    sys::block_all_signals(true);
    let forked = sys::fork();
    match forked {
        Ok(Forked::Child) => {
            for &fd in inherited {
                sys::close(fd);
            }
            let _ = sys::default_signals(super::signals::HANDLED);
            // A panic in the worker must never unwind into the master's
            // frames (and their destructors) inside the child.
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry(ctx)))
                .unwrap_or(101);
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
