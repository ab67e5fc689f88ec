//! When to fork the replacement of a worker that died on its own (DESIGN §2).
//!
//! Two kinds of death, two rules:
//! - A worker that dies **before it is ready** (the app does not import, or
//!   crashes while starting) makes the next fork wait: 50 ms after the second
//!   such death in a row, doubling up to 10 s. Any worker becoming ready ends
//!   the back-off.
//! - A worker that **was ready** and died (a request crashed it) is replaced
//!   at once, out of a token bucket: a burst of 2 × processes forks, refilled
//!   at `processes` per second. With the bucket empty a replacement waits for
//!   its token, except that the pool is never left empty: when no worker is
//!   alive or starting, one is forked at once. Such a worker has to import
//!   the app and take a request before it can crash again, so that floor
//!   forks at most one worker per start-up time.
//!
//! Pure bookkeeping over a clock the caller passes in, so it is unit tested
//! with fake instants.

use std::time::{Duration, Instant};

/// First back-off delay (after the second death before ready in a row).
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between forks for an app that does not start.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Token arithmetic is in thousandths of a fork.
const MILLI: u64 = 1000;

/// Whether a fork may happen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    Now,
    /// Now, though the budget is spent: no worker is alive or starting.
    Floor,
    /// Not before then (a back-off, or no token for a crash replacement).
    At(Instant),
}

#[derive(Debug)]
pub struct CrashGuard {
    /// Consecutive workers that died before becoming ready.
    load_failures: u32,
    backoff_until: Option<Instant>,
    /// Replacements of ready-then-crashed workers not forked yet.
    owed: usize,
    /// Thousandths of a fork in the bucket, as of `refilled`.
    tokens: u64,
    refilled: Instant,
    /// Throttling has been logged for the current episode.
    throttle_logged: bool,
}

impl CrashGuard {
    pub fn new(now: Instant, target: usize) -> CrashGuard {
        CrashGuard {
            load_failures: 0,
            backoff_until: None,
            owed: 0,
            tokens: capacity(target),
            refilled: now,
            throttle_logged: false,
        }
    }

    /// A worker died before it was ready; returns the back-off it causes.
    pub fn died_before_ready(&mut self, now: Instant) -> Option<Duration> {
        self.load_failures = self.load_failures.saturating_add(1);
        if self.load_failures < 2 {
            return None;
        }
        let doublings = (self.load_failures - 2).min(10);
        let delay = (FIRST_BACKOFF * (1u32 << doublings)).min(MAX_BACKOFF);
        self.backoff_until = Some(now + delay);
        Some(delay)
    }

    /// How many workers in a row died before becoming ready.
    pub fn load_failures(&self) -> u32 {
        self.load_failures
    }

    /// A ready worker died on its own: it is owed a replacement.
    pub fn crashed_after_ready(&mut self) {
        self.owed = self.owed.saturating_add(1);
    }

    /// A worker became ready: the app imports, so no back-off.
    pub fn ready(&mut self) {
        self.load_failures = 0;
        self.backoff_until = None;
    }

    /// A reload starts over: new code, a fresh start.
    pub fn reset(&mut self) {
        self.load_failures = 0;
        self.backoff_until = None;
        self.owed = 0;
    }

    /// Makes every fork wait until `at` (e.g. after a failed reload).
    pub fn hold_until(&mut self, at: Instant) {
        self.backoff_until = Some(at);
    }

    /// At most `missing` replacements can be owed (the target may have shrunk).
    pub fn owe_at_most(&mut self, missing: usize) {
        self.owed = self.owed.min(missing);
    }

    /// May one more worker be forked now? `live` counts the workers alive or
    /// starting that are not being stopped. A `Now` for a crash replacement
    /// takes its token.
    pub fn may_fork(&mut self, now: Instant, target: usize, live: usize) -> Fork {
        if let Some(at) = self.backoff_until {
            if now < at {
                return Fork::At(at);
            }
            self.backoff_until = None;
        }
        if self.owed == 0 {
            return Fork::Now;
        }
        self.refill(now, target);
        if self.tokens < MILLI && live > 0 {
            let rate = rate(target);
            let wait_ms = (MILLI - self.tokens).div_ceil(rate);
            if !self.throttle_logged {
                self.throttle_logged = true;
                log::warn!(
                    "workers keep crashing in requests: replacing them at most {} per second \
                     (keeping at least one worker)",
                    target.max(1)
                );
            }
            return Fork::At(now + Duration::from_millis(wait_ms));
        }
        let floor = self.tokens < MILLI;
        if !floor {
            self.tokens -= MILLI;
        }
        self.owed -= 1;
        if self.owed == 0 {
            self.throttle_logged = false;
        }
        if floor {
            Fork::Floor
        } else {
            Fork::Now
        }
    }

    fn refill(&mut self, now: Instant, target: usize) {
        let ms = now.saturating_duration_since(self.refilled).as_millis();
        let ms = u64::try_from(ms).unwrap_or(u64::MAX);
        self.tokens = self
            .tokens
            .saturating_add(ms.saturating_mul(rate(target)))
            .min(capacity(target));
        self.refilled = now;
    }
}

/// Bucket size in thousandths of a fork: 2 × processes forks.
fn capacity(target: usize) -> u64 {
    (target.max(1) as u64).saturating_mul(2 * MILLI)
}

/// Refill in thousandths of a fork per millisecond: `processes` per second.
fn rate(target: usize) -> u64 {
    target.max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn back_off_only_for_deaths_before_ready_and_doubles_to_ten_seconds() {
        let t = Instant::now();
        let mut g = CrashGuard::new(t, 2);
        assert_eq!(g.died_before_ready(t), None);
        assert_eq!(g.died_before_ready(t), Some(ms(50)));
        assert_eq!(g.may_fork(t, 2, 1), Fork::At(t + ms(50)));
        assert_eq!(g.may_fork(t + ms(50), 2, 1), Fork::Now);
        assert_eq!(g.died_before_ready(t), Some(ms(100)));
        for _ in 0..20 {
            g.died_before_ready(t);
        }
        assert_eq!(g.died_before_ready(t), Some(MAX_BACKOFF));
        g.ready();
        assert_eq!(g.load_failures(), 0);
        assert_eq!(g.may_fork(t, 2, 1), Fork::Now);
        assert_eq!(g.died_before_ready(t), None);
    }

    #[test]
    fn crashes_after_ready_never_back_off_and_spend_a_bounded_budget() {
        let t = Instant::now();
        let mut g = CrashGuard::new(t, 2);
        // A burst of 2 × processes replacements at once.
        for _ in 0..4 {
            g.crashed_after_ready();
            assert_eq!(g.may_fork(t, 2, 1), Fork::Now);
        }
        // Then `processes` per second: the next token in 500 ms.
        g.crashed_after_ready();
        assert_eq!(g.may_fork(t, 2, 1), Fork::At(t + ms(500)));
        assert_eq!(g.may_fork(t + ms(499), 2, 1), Fork::At(t + ms(500)));
        assert_eq!(g.may_fork(t + ms(500), 2, 1), Fork::Now);
        // Nothing owed: forks for other reasons are never held.
        assert_eq!(g.may_fork(t + ms(500), 2, 1), Fork::Now);
        // The bucket refills up to its size only.
        let later = t + Duration::from_secs(60);
        for _ in 0..4 {
            g.crashed_after_ready();
            assert_eq!(g.may_fork(later, 2, 1), Fork::Now);
        }
        g.crashed_after_ready();
        assert!(matches!(g.may_fork(later, 2, 1), Fork::At(_)));
    }

    #[test]
    fn the_pool_is_never_left_empty_without_a_token() {
        let t = Instant::now();
        let mut g = CrashGuard::new(t, 1);
        for _ in 0..2 {
            g.crashed_after_ready();
            assert_eq!(g.may_fork(t, 1, 0), Fork::Now);
        }
        g.crashed_after_ready();
        assert!(matches!(g.may_fork(t, 1, 1), Fork::At(_)));
        // No worker alive or starting: fork anyway, as often as it happens.
        for _ in 0..10 {
            assert_eq!(g.may_fork(t, 1, 0), Fork::Floor);
            g.crashed_after_ready();
        }
    }

    #[test]
    fn owed_replacements_follow_the_target_and_a_reload_clears_them() {
        let t = Instant::now();
        let mut g = CrashGuard::new(t, 1);
        for _ in 0..5 {
            g.crashed_after_ready();
        }
        g.owe_at_most(0);
        assert_eq!(g.may_fork(t, 1, 1), Fork::Now);
        g.crashed_after_ready();
        g.died_before_ready(t);
        g.died_before_ready(t);
        g.reset();
        assert_eq!(g.may_fork(t, 1, 1), Fork::Now);
        g.hold_until(t + ms(1000));
        assert_eq!(g.may_fork(t, 1, 1), Fork::At(t + ms(1000)));
    }
}
