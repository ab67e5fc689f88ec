//! A reload's generations: starting a new one, finishing it, falling back
//! to the old one when the new code does not load, and overtaking a reload
//! still under way.

use std::time::{Duration, Instant};

use super::{Command, Pool, State, Stop, Stopping};

/// How long forks wait after a failed reload: old workers already retired
/// are replaced by forks that import the code on disk, so they get the
/// crash-loop back-off, not a fork storm.
const AFTER_ROLLBACK: Duration = Duration::from_secs(1);

impl Pool {
    /// Starts a new generation. A reload already under way is superseded:
    /// the workers of the overtaken generations that are still starting are
    /// killed (they have not served, and would only add to the processes),
    /// and the new generation is forked once they are reaped. Their ready
    /// workers keep serving and are replaced like the old ones, so the pool
    /// stays within 2 × processes (+ workers finishing their last requests).
    pub fn begin_reload(&mut self, now: Instant) -> Vec<Command> {
        let out = match self.reload_from {
            None => {
                self.reload_from = Some(self.generation);
                Vec::new()
            }
            Some(from) => self.kill_starting(from, "overtaken by a newer reload", now),
        };
        self.generation += 1;
        self.guard.reset();
        self.respawn_at = None;
        self.retry_at = None;
        out
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
    pub fn abort_reload(&mut self, now: Instant) -> Vec<Command> {
        let Some(old) = self.reload_from.take() else {
            return Vec::new();
        };
        // Every generation newer than the one we fall back to goes, including
        // one left over from an earlier reload that was overtaken by this one.
        let mut out = self.kill_starting(old, "its generation does not load", now);
        for i in 0..self.workers.len() {
            let w = &self.workers[i];
            if w.generation > old && !w.is_stopping() {
                out.push(self.stop(i, now));
            }
        }
        self.generation = old;
        self.guard.hold_until(now + AFTER_ROLLBACK);
        out
    }

    /// Kills the workers of generations newer than `generation` that are still
    /// starting: they have served nothing, and a SIGTERM would only be seen
    /// once their import ends. Forks wait until they are reaped.
    fn kill_starting(&mut self, generation: u64, why: &str, now: Instant) -> Vec<Command> {
        let mut out = Vec::new();
        for w in self.workers.iter_mut() {
            if w.generation > generation && w.state == State::Starting {
                log::info!(
                    "worker {} (pid {}) of generation {} killed while starting: {why}",
                    w.id,
                    w.pid,
                    w.generation
                );
                w.state = State::Stopping(Stopping {
                    why: Stop::Superseded { since: now },
                    kill_at: None,
                });
                out.push(Command::Kill { pid: w.pid });
            }
        }
        out
    }
}
