//! What the master reads about its workers on its timers — how long their
//! requests have run (the scoreboard, for `--harakiri`) and how much memory
//! idle ones hold (/proc, for `--reload-on-rss`) — handed to the pool as
//! events.

use std::time::{Duration, Instant};

use super::Master;
use crate::supervise::RetireReason;
use crate::sys;

impl Master {
    /// Workers whose current request has run longer than `limit` are
    /// harakiri'd (and replaced by the next `fill_pool`).
    pub(super) fn check_harakiri(&mut self, limit: Duration) {
        let now_us = sys::monotonic_usec();
        let stuck: Vec<(libc::pid_t, String)> = self
            .pool
            .serving()
            .filter_map(|w| {
                let line = self.stuck_line(w.slot, now_us, limit)?;
                Some((w.pid, format!("worker {} (pid {}) {line}", w.id, w.pid)))
            })
            .collect();
        for (pid, line) in &stuck {
            log::error!("harakiri: {line}; its Python stacks follow, then killing it");
            let commands = self.pool.harakiri(*pid, Instant::now());
            self.execute(commands);
        }
    }

    /// "has been serving … (limit …) [threads]" when the slot's oldest
    /// request in the app is past the limit. The app threads' cores say what
    /// runs in the app now; a response waiting for a slow client to read it
    /// is not (the slot still shows its request) and is never harakiri's.
    fn stuck_line(&self, slot: usize, now: u64, limit: Duration) -> Option<String> {
        let limit_us = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
        let cores = self.scoreboard.cores(slot);
        let oldest = cores
            .iter()
            .filter(|c| c.request_start_us() != 0)
            .min_by_key(|c| c.request_start_us())?;
        let start = oldest.request_start_us();
        if now.saturating_sub(start) <= limit_us {
            return None;
        }
        let threads = if cores.len() > 1 {
            let stuck: Vec<String> = cores
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    c.request_start_us() != 0 && now.saturating_sub(c.request_start_us()) > limit_us
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
        Some(format!(
            "has been serving \"{}\" for {:.1} s (limit --harakiri {}){threads}",
            oldest.label(),
            now.saturating_sub(start) as f64 / 1e6,
            limit.as_secs()
        ))
    }

    /// Reads every idle worker's resident set size from /proc and retires
    /// those above `--reload-on-rss`: a worker that grew in a burst and then
    /// went quiet never asks by itself, since it checks only after a
    /// request. A busy worker checks when its request ends.
    pub(super) fn check_idle_rss(&mut self) {
        let limit = self.config.recycle.reload_on_rss;
        let min = self.config.recycle.min_worker_lifetime;
        let over: Vec<(usize, libc::pid_t, usize, u64)> = self
            .pool
            .recyclable()
            .filter(|w| self.scoreboard.slot(w.slot).request_start_us() == 0)
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
            self.pool
                .retire(slot, pid, RetireReason::Rss, min, Instant::now());
        }
    }
}
