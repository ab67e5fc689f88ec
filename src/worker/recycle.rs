//! Deciding when this worker should retire: after `--max-requests` (plus its
//! jitter) or above `--reload-on-rss`. The worker only asks; the master starts
//! the successor first and then stops this worker, so capacity never dips.

use std::time::{Duration, Instant};

use crate::config::Recycle;
use crate::scoreboard::Slot;
use crate::supervise::RetireReason;

/// How often the resident set size is read (and published for stats).
const RSS_EVERY: Duration = Duration::from_secs(1);

pub struct Recycler {
    /// This worker's request budget (max-requests + its jitter); None = unlimited.
    budget: Option<u64>,
    rss_limit: u64,
    next_rss_check: Instant,
    asked: bool,
}

impl Recycler {
    /// `seed` varies per worker so jitter differs between workers.
    pub fn new(cfg: &Recycle, seed: u64) -> Recycler {
        let jitter = if cfg.max_requests_jitter > 0 {
            // A multiplicative hash of the seed is random enough to spread workers.
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (cfg.max_requests_jitter + 1)
        } else {
            0
        };
        Recycler {
            budget: (cfg.max_requests > 0).then(|| cfg.max_requests + jitter),
            rss_limit: cfg.reload_on_rss,
            next_rss_check: Instant::now(),
            asked: false,
        }
    }

    /// Called after each request; returns why the worker should retire, once.
    pub fn after_request(
        &mut self,
        served: u64,
        slot: &Slot,
        now: Instant,
    ) -> Option<RetireReason> {
        if now >= self.next_rss_check {
            self.next_rss_check = now + RSS_EVERY;
            if let Some((rss, vsz)) = crate::sys::memory_bytes() {
                slot.set_memory(rss, vsz);
            }
        }
        if self.asked {
            return None;
        }
        let reason = if self.budget.is_some_and(|b| served >= b) {
            RetireReason::MaxRequests
        } else if self.rss_limit > 0 && slot.rss_bytes() > self.rss_limit {
            RetireReason::Rss
        } else {
            return None;
        };
        self.asked = true;
        Some(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::Scoreboard;

    fn cfg(max: u64, jitter: u64, rss: u64) -> Recycle {
        Recycle {
            max_requests: max,
            max_requests_jitter: jitter,
            reload_on_rss: rss,
            harakiri: None,
            min_worker_lifetime: Duration::ZERO,
        }
    }

    #[test]
    fn retires_once_at_the_budget() {
        let sb = Scoreboard::new().unwrap();
        let mut r = Recycler::new(&cfg(3, 0, 0), 7);
        let now = Instant::now();
        assert_eq!(r.after_request(2, sb.slot(0), now), None);
        assert_eq!(
            r.after_request(3, sb.slot(0), now),
            Some(RetireReason::MaxRequests)
        );
        assert_eq!(r.after_request(4, sb.slot(0), now), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for seed in 0..50 {
            let r = Recycler::new(&cfg(100, 10, 0), seed);
            let b = r.budget.unwrap();
            assert!((100..=110).contains(&b), "{b}");
        }
    }

    #[test]
    fn rss_limit_reads_real_memory() {
        let sb = Scoreboard::new().unwrap();
        let mut r = Recycler::new(&cfg(0, 0, 1), 1);
        assert_eq!(
            r.after_request(1, sb.slot(0), Instant::now()),
            Some(RetireReason::Rss)
        );
        assert!(sb.slot(0).rss_bytes() > 1);
    }
}
