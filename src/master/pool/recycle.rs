//! Recycling decisions: retiring workers (max-requests, reload-on-rss, both
//! asked by the worker and, for RSS, checked by the master's timer), and
//! killing the ones that overstay (harakiri, --shutdown-timeout).

use std::time::{Duration, Instant};

use super::{Pool, Respawn, RetireReason};
use crate::scoreboard::Scoreboard;
use crate::sys;

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
    ) {
        let why = reason.flag();
        let cause = Respawn::from(reason).index();
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
            if w.stopping && w.harakiri && w.kill_at.is_some_and(|at| now >= at) {
                w.kill_at = None;
                sys::kill(w.pid, libc::SIGKILL);
            } else if w.stopping && w.kill_at.is_some_and(|at| now >= at) {
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
    /// (`--harakiri`); they are replaced like any stopped worker. The worker
    /// first gets [`sys::HARAKIRI_SIGNAL`]: Python dumps every thread's stack
    /// to the log and the stuck clients that got nothing yet get 504; the
    /// SIGKILL follows [`HARAKIRI_GRACE`] later (`kill_overdue`).
    pub fn harakiri(&mut self, limit: Duration, scoreboard: &Scoreboard) -> usize {
        let now = crate::sys::monotonic_usec();
        let limit_us = limit.as_micros() as u64;
        let mut killed = 0;
        let harakiris = &mut self.harakiris;
        for w in self.workers.iter_mut().filter(|w| !w.stopping) {
            // The app threads' cores say what is running in the app now; a
            // response waiting for a slow client to read it is not (the
            // slot still shows its request) and is never harakiri's.
            let cores = scoreboard.cores(w.slot);
            let Some(oldest) = cores
                .iter()
                .filter(|c| c.request_start_us() != 0)
                .min_by_key(|c| c.request_start_us())
            else {
                continue;
            };
            let start = oldest.request_start_us();
            if now.saturating_sub(start) <= limit_us {
                continue;
            }
            let threads = if cores.len() > 1 {
                let stuck: Vec<String> = cores
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| {
                        c.request_start_us() != 0
                            && now.saturating_sub(c.request_start_us()) > limit_us
                    })
                    .map(|(i, c)| {
                        format!(
                            "thread {} \"{}\" for {:.1} s",
                            i + 1,
                            c.label(),
                            now.saturating_sub(c.request_start_us()) as f64 / 1e6
                        )
                    })
                    .collect();
                format!(" [{}]", stuck.join(", "))
            } else {
                String::new()
            };
            log::error!(
                "harakiri: worker {} (pid {}) has been serving \"{}\" for {:.1} s (limit --harakiri {}){threads}; \
                 its Python stacks follow, then killing it",
                w.id,
                w.pid,
                oldest.label(),
                now.saturating_sub(start) as f64 / 1e6,
                limit.as_secs()
            );
            w.stopping = true;
            w.harakiri = true;
            w.kill_at = Some(Instant::now() + HARAKIRI_GRACE);
            sys::kill(w.pid, sys::HARAKIRI_SIGNAL);
            *harakiris.entry(w.id).or_default() += 1;
            killed += 1;
        }
        self.respawns[Respawn::Harakiri.index()] += killed as u64;
        killed
    }

    /// Reads every idle worker's resident set size from /proc and retires
    /// those above `limit` bytes (`--reload-on-rss`): a worker that grew in
    /// a burst and then went quiet never asks by itself, since it checks
    /// only after a request. A busy worker checks when its request ends.
    pub fn retire_over_rss(
        &mut self,
        limit: u64,
        min_lifetime: Duration,
        scoreboard: &Scoreboard,
    ) -> bool {
        let over: Vec<(usize, libc::pid_t, usize, u64)> = self
            .workers
            .iter()
            .filter(|w| w.ready && !w.stopping && !w.retiring && w.retire_at.is_none())
            .filter(|w| scoreboard.slot(w.slot).request_start_us() == 0)
            .filter_map(|w| {
                let (rss, _) = sys::memory_of(w.pid)?;
                (rss > limit).then_some((w.slot, w.pid, w.id, rss))
            })
            .collect();
        for &(slot, pid, id, rss) in &over {
            log::info!(
                "worker {id} (pid {pid}) uses {} MiB while idle, above --reload-on-rss {} MiB",
                rss >> 20,
                limit >> 20
            );
            self.retire(slot, pid, RetireReason::Rss, min_lifetime);
        }
        !over.is_empty()
    }
}
