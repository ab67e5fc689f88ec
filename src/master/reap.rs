//! Reaping the master's children: a worker that stopped as asked, one that
//! died on its own (and what that means during start-up or a reload), a
//! template, or an orphan reaped as PID 1.

use std::time::Instant;

use super::pool::Reaped;
use super::{Master, Phase};
use crate::supervise::EXIT_APP_LOAD_ERROR;
use crate::sys;

impl Master {
    pub(super) fn reap(&mut self) {
        loop {
            let (pid, status) = match sys::reap_any() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    log::error!("waitpid failed: {e}");
                    break;
                }
            };
            if self.template_reaped(pid, status) {
                continue;
            }
            match self.pool.reaped(pid, status, Instant::now()) {
                Reaped::Expected(w) => {
                    self.pool
                        .retired
                        .add(&self.scoreboard.slot(w.slot).counters());
                    self.scoreboard.slot(w.slot).free();
                    log::info!("worker {} (pid {pid}) stopped ({status})", w.id);
                }
                Reaped::Crashed {
                    worker: w,
                    lived,
                    load_error,
                    backoff,
                } => {
                    self.pool
                        .retired
                        .add(&self.scoreboard.slot(w.slot).counters());
                    log::error!(
                        "worker {} (pid {pid}) died after {} ms and {} request(s){}: {status}{}",
                        w.id,
                        lived.as_millis(),
                        self.scoreboard.slot(w.slot).requests(),
                        self.scoreboard.in_flight(w.slot, sys::monotonic_usec()),
                        if load_error {
                            " (the app failed to load)"
                        } else {
                            ""
                        }
                    );
                    if let Some(delay) = backoff {
                        log::warn!(
                            "workers keep dying before they are ready ({} in a row); next respawn in {} ms",
                            self.pool.load_failures(),
                            delay.as_millis()
                        );
                    }
                    self.scoreboard.slot(w.slot).free();
                    self.crashed(load_error);
                }
                Reaped::Unknown => log::debug!("reaped process {pid} ({status})"),
            }
            self.finish_reload_if_done();
        }
        self.fill_pool();
    }

    /// A worker died on its own; one that could not load the app ends the
    /// start-up, or rolls a reload back.
    fn crashed(&mut self, load_error: bool) {
        let starting = self.stage.still_starting();
        if load_error && starting && !self.pool.reloading() {
            log::error!("the app failed to load (see the error above); shutting down");
            self.exit_code = EXIT_APP_LOAD_ERROR;
            self.shutdown(false, "the app did not load");
        } else if load_error && self.pool.reloading() {
            // Also when a TERM came during the reload (--shutdown-delay).
            log::error!("reload failed: the new code does not load; keeping the old workers");
            let stop = self.pool.abort_reload(Instant::now());
            self.execute(stop);
            if let Some(t) = &mut self.templates {
                t.revert();
            }
            self.set_phase(Phase::Running);
        }
    }
}
