//! Shutting the server down: the optional delay, the drain of the workers,
//! and the listeners shut with a 503 for whatever still waits in them.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::{Master, Phase};
use crate::sys;

impl Master {
    /// Shuts the server down; `why` (a signal's name, or a reason) is logged.
    pub(super) fn shutdown(&mut self, graceful: bool, why: &str) {
        if self.phase() == Phase::ShuttingDown && graceful {
            return;
        }
        log::info!(
            "{why}: {} shutdown of {} worker(s)",
            if graceful { "graceful" } else { "fast" },
            self.pool.len(),
        );
        if self.upgrading() {
            log::info!("an upgrade is under way: the sockets are left to the new master");
            self.leave_sockets_to_new_master();
        }
        self.set_phase(Phase::ShuttingDown);
        let delay = self.config.shutdown_delay;
        let Some(state) = self.shutdown_state() else {
            return;
        };
        if graceful && !delay.is_zero() && state.drain_at.is_none() {
            log::info!(
                "still serving for {} s before draining (--shutdown-delay)",
                delay.as_secs()
            );
            state.drain_at = Some(crate::sys::deadline(Instant::now(), delay));
            return;
        }
        state.drain_at = None;
        self.drain(graceful);
    }

    /// Stops the workers. The master closes its copies of the listeners, so
    /// once the workers have taken what waits in the queue and closed theirs,
    /// new connections are refused rather than accepted and then reset.
    pub(super) fn drain(&mut self, graceful: bool) {
        let grace = if graceful {
            self.config.shutdown_timeout
        } else {
            Duration::from_secs(1)
        };
        log::info!(
            "draining {} worker(s); killing stragglers after {} s",
            self.pool.len(),
            grace.as_secs_f32()
        );
        if self.pool.is_empty() {
            self.shut_listeners();
        }
        if let Some(t) = &mut self.templates {
            // A template serves nobody: it goes at once (one still
            // importing is killed, it would only notice after the import).
            t.signal_all(
                if graceful {
                    libc::SIGTERM
                } else {
                    libc::SIGINT
                },
                true,
            );
        }
        // USR2: each worker takes what is queued, then shuts the shared
        // listeners, so later connections are refused, never queued and reset.
        // After an upgrade's handover the listeners are the new master's:
        // TERM stops each worker alone, as in a reload.
        let stop = self.pool.drain(match (graceful, self.handed_over) {
            (true, false) => libc::SIGUSR2,
            (true, true) => libc::SIGTERM,
            (false, _) => libc::SIGINT,
        });
        self.execute(stop);
        let kill_at = crate::sys::deadline(Instant::now(), grace);
        if let Some(s) = self.shutdown_state() {
            s.kill_at = Some(s.kill_at.map_or(kill_at, |k| k.min(kill_at)));
        }
    }

    /// Answers whatever still waits in the accept queues with 503 (only
    /// stragglers are left to serve it) and shuts the listeners, so nothing
    /// accepted by the kernel is reset without an answer.
    pub(super) fn shut_listeners(&mut self) {
        for l in &self.listeners {
            if l.inherited {
                // [systemd hook] Not ours to shut: systemd keeps the socket,
                // and what waits in it is served by our successor.
                continue;
            }
            let fd = l.raw_fd();
            let mut answered = 0;
            while let Some(conn) = sys::accept_nonblocking(fd) {
                if l.protocol == crate::config::Protocol::Http {
                    let mut out = Vec::new();
                    let now = crate::scoreboard::now_us() / 1_000_000;
                    let date = crate::protocol::date::http_date(now);
                    crate::protocol::http::write_simple_response(&mut out, 503, &date, true);
                    let _ = sys::send_all(conn.as_raw_fd(), &[&out], Duration::from_millis(100));
                }
                answered += 1;
            }
            if answered > 0 {
                log::warn!(
                    "answered {answered} queued connection(s) on {} with 503: shutting down",
                    l.addr
                );
            }
            sys::shutdown_listener(fd);
        }
    }
}
