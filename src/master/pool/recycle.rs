//! Recycling: retiring workers (max-requests, reload-on-rss), and killing
//! the ones that overstay (harakiri, --shutdown-timeout). What a worker's
//! RSS is, or how long its request has run, the master reads
//! (`master::watch`); here is what follows from it.

use std::time::{Duration, Instant};

use super::{Command, Pool, Respawn, State, Stop, Stopping, Worker};
use crate::supervise::RetireReason;

/// How long a harakiri victim has to dump its stacks and answer 504 before
/// SIGKILL.
pub const HARAKIRI_GRACE: Duration = Duration::from_millis(300);

impl Pool {
    /// A worker asked to be recycled: mark it retiring (so a successor is
    /// spawned), or defer that until it has lived `min_lifetime`.
    pub fn retire(
        &mut self,
        slot: usize,
        pid: libc::pid_t,
        reason: RetireReason,
        min_lifetime: Duration,
        now: Instant,
    ) {
        if self.closed {
            return;
        }
        let why = reason.flag();
        let Some(w) = self.find(slot, pid) else {
            return;
        };
        // Only a serving worker asks (after a request); one already retiring
        // or stopping has been asked before.
        if w.state != State::Ready {
            return;
        }
        let due = w.spawned + min_lifetime;
        if now < due {
            log::debug!(
                "worker {} recycle ({why}) deferred by --min-worker-lifetime",
                w.id
            );
            w.state = State::RetireAt(due);
        } else {
            log::info!(
                "worker {} (pid {}) retiring ({why}); starting its successor",
                w.id,
                w.pid
            );
            w.state = State::Retiring;
        }
        self.respawns[Respawn::from(reason).index()] += 1;
    }

    /// What is due at `now`: deferred recycles start (their successors are
    /// then forked by `next_spawn`; not once the pool is closed), and
    /// stopped workers that outlived their grace are killed (a request that
    /// never ends must not keep a reload from completing).
    pub fn tick(&mut self, now: Instant) -> Vec<Command> {
        let mut out = Vec::new();
        let grace = self.grace;
        let closed = self.closed;
        for w in &mut self.workers {
            match &mut w.state {
                State::RetireAt(at) if now >= *at && !closed => {
                    log::info!(
                        "worker {} (pid {}) retiring; starting its successor",
                        w.id,
                        w.pid
                    );
                    w.state = State::Retiring;
                }
                State::Stopping(Stopping { why, kill_at })
                    if kill_at.is_some_and(|at| now >= at) =>
                {
                    if *why != Stop::Harakiri {
                        log::warn!(
                            "worker {} (pid {}) still running {} s after it was stopped \
                             (--shutdown-timeout); killing it",
                            w.id,
                            w.pid,
                            grace.as_secs()
                        );
                    }
                    *kill_at = None;
                    out.push(Command::Kill { pid: w.pid });
                }
                _ => {}
            }
        }
        out
    }

    /// Serving workers that are not stopping: harakiri's candidates.
    pub fn serving(&self) -> impl Iterator<Item = &Worker> {
        self.workers.iter().filter(|w| !w.is_stopping())
    }

    /// Ready workers not already being recycled: `--reload-on-rss`'s
    /// candidates.
    pub fn recyclable(&self) -> impl Iterator<Item = &Worker> {
        let closed = self.closed;
        self.workers
            .iter()
            .filter(move |w| !closed && w.state == State::Ready)
    }

    /// The worker's request has run past `--harakiri`: it gets the harakiri
    /// signal (Python dumps every thread's stack to the log, the stuck
    /// clients that got nothing yet get 504) and SIGKILL [`HARAKIRI_GRACE`]
    /// later; it is replaced like any stopped worker.
    pub fn harakiri(&mut self, pid: libc::pid_t, now: Instant) -> Vec<Command> {
        let Some(w) = self
            .workers
            .iter_mut()
            .find(|w| w.pid == pid && !w.is_stopping())
        else {
            return Vec::new();
        };
        w.state = State::Stopping(Stopping {
            why: Stop::Harakiri,
            kill_at: Some(now + HARAKIRI_GRACE),
        });
        *self.harakiris.entry(w.id).or_default() += 1;
        self.respawns[Respawn::Harakiri.index()] += 1;
        vec![Command::Harakiri { pid }]
    }
}
