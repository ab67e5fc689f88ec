//! The scoreboard: one shared-memory slot per worker, written by the worker
//! with atomics and read by the master (timeouts, recycling, stats).
//!
//! It is mapped before the first fork, so every process sees the same memory.
//! No locks are shared across processes: each field is an atomic and each slot
//! has one writer (its worker) besides the master resetting it on spawn.

mod core;
mod label;
mod slot;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use self::core::Core;
pub use slot::{Counters, Slot, WorkerState, DURATION_BUCKETS_US};

use crate::sys::SharedMap;

/// How many slots exist: the workers of an old and a new generation overlap
/// during a reload, and TTIN can add workers, so this is a generous fixed cap.
pub const MAX_SLOTS: usize = 1024;

/// The shared mapping of all slots.
pub struct Scoreboard {
    map: SharedMap,
    /// App threads per worker: each slot has this many cores.
    threads: usize,
}

/// Bytes before the slots: the header (one atomic, padded to a cache line).
const HEADER: usize = 64;
/// Where the cores start: after the slots, rounded to a cache line.
const CORES_AT: usize = (HEADER + MAX_SLOTS * std::mem::size_of::<Slot>()).div_ceil(64) * 64;
/// Most app threads a worker may run (`--threads`).
pub const MAX_THREADS: usize = 512;

impl Scoreboard {
    pub fn new() -> io::Result<Scoreboard> {
        Scoreboard::with_threads(1)
    }

    /// A scoreboard whose workers run `threads` app threads each (capped at
    /// [`MAX_THREADS`], which the config enforces).
    pub fn with_threads(threads: usize) -> io::Result<Scoreboard> {
        let threads = threads.clamp(1, MAX_THREADS);
        let size = CORES_AT + MAX_SLOTS * threads * std::mem::size_of::<Core>();
        let map = SharedMap::new(size)?;
        Ok(Scoreboard { map, threads })
    }

    /// A handle that lives for the rest of this process, for a worker's app
    /// threads (they outlive any borrow of the master's scoreboard).
    pub fn leak_for_worker(&self) -> &'static Scoreboard {
        // SAFETY: a worker never unmaps the master's mapping: it ends with
        // `_exit`, so the alias stays valid for the rest of the process.
        let map = unsafe { self.map.alias() };
        Box::leak(Box::new(Scoreboard {
            map,
            threads: self.threads,
        }))
    }

    /// Master: the request an app thread of slot `index` has been in the
    /// longest, for a log line about the worker (its death):
    /// ` while serving "GET /x" for 1.2 s`, or "" when none is. `now_us` is
    /// CLOCK_MONOTONIC, as the cores' starts.
    pub fn in_flight(&self, index: usize, now_us: u64) -> String {
        let Some(core) = self
            .cores(index)
            .iter()
            .filter(|c| c.request_start_us() != 0)
            .min_by_key(|c| c.request_start_us())
        else {
            return String::new();
        };
        format!(
            " while serving \"{}\" for {:.1} s",
            core.label(),
            now_us.saturating_sub(core.request_start_us()) as f64 / 1e6
        )
    }

    /// The app threads' cores of slot `index`.
    pub fn cores(&self, index: usize) -> &[Core] {
        let index = index.min(MAX_SLOTS - 1);
        // SAFETY: the cores start at CORES_AT (a multiple of Core's 8-byte
        // alignment) in the zero-filled mapping sized for MAX_SLOTS * threads
        // of them (a valid Core is all atomics); `index` is clamped to a slot
        // that exists, and the mapping lives as long as `self`.
        unsafe {
            let base = self.map.as_ptr().add(CORES_AT).cast::<Core>();
            std::slice::from_raw_parts(base.add(index * self.threads), self.threads)
        }
    }

    /// One past the highest slot ever used: scans stop there.
    fn high_water(&self) -> &AtomicU64 {
        // SAFETY: the mapping starts page-aligned and zero-filled with HEADER
        // bytes reserved for this atomic; it lives as long as `self`.
        unsafe { &*self.map.as_ptr().cast::<AtomicU64>() }
    }

    pub fn slots(&self) -> &[Slot] {
        debug_assert!(self.map.size() >= CORES_AT);
        // SAFETY: the slots start HEADER (64, a multiple of Slot's alignment)
        // bytes into a page-aligned, zero-filled mapping (a valid Slot is all
        // atomics), there are MAX_SLOTS of them, and the mapping lives as long
        // as `self`. Slots are only accessed through atomics, so concurrent
        // access from other processes is sound.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(HEADER).cast::<Slot>(), MAX_SLOTS)
        }
    }

    /// The slots that may be in use.
    pub fn used(&self) -> &[Slot] {
        let n = (self.high_water().load(Relaxed) as usize).min(MAX_SLOTS);
        &self.slots()[..n]
    }

    pub fn slot(&self, index: usize) -> &Slot {
        &self.slots()[index]
    }

    /// The first free slot, if any (the master then claims it with `reset`).
    pub fn free_slot(&self) -> Option<usize> {
        let i = self
            .slots()
            .iter()
            .position(|s| s.state() == WorkerState::Free && s.pid() == 0)?;
        self.high_water().fetch_max(i as u64 + 1, Relaxed);
        Some(i)
    }

    /// The fewest connections held by another worker that is idle (between
    /// requests, so it will take a new connection at once), if any.
    pub fn fewest_idle_conns(&self, except: usize) -> Option<u32> {
        self.used()
            .iter()
            .enumerate()
            .filter(|(i, s)| *i != except && s.pid() > 0 && s.state() == WorkerState::Ready)
            .map(|(_, s)| s.conns())
            .min()
    }

    /// Other workers that serve (ready, or busy in a request).
    fn serving_siblings(&self, except: usize) -> impl Iterator<Item = &Slot> {
        self.used().iter().enumerate().filter_map(move |(i, s)| {
            (i != except
                && s.pid() > 0
                && matches!(s.state(), WorkerState::Ready | WorkerState::Busy))
            .then_some(s)
        })
    }

    /// Whether another serving worker has an app thread free right now.
    pub fn sibling_has_free_thread(&self, except: usize) -> bool {
        self.serving_siblings(except).any(|s| s.free_threads() > 0)
    }

    /// The fewest connections another serving worker holds (`--threads`:
    /// a worker in a request still takes new connections).
    pub fn fewest_serving_conns(&self, except: usize) -> Option<u32> {
        self.serving_siblings(except).map(Slot::conns).min()
    }
}

/// Microseconds since the Unix epoch (wall clock), the scoreboard's time unit.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_start_free_and_track_requests() {
        let sb = Scoreboard::new().expect("mmap");
        assert_eq!(sb.free_slot(), Some(0));
        let slot = sb.slot(0);
        slot.reset(42, 1, 10);
        assert_eq!(slot.state(), WorkerState::Starting);
        assert_eq!(sb.free_slot(), Some(1));
        slot.set_state(WorkerState::Ready);
        slot.begin_request(100);
        assert_eq!(slot.state(), WorkerState::Busy);
        assert_eq!(slot.end_request(13, true, 500, 3_000), 1);
        let c = slot.counters();
        assert_eq!((c.exceptions, c.tx_bytes, c.running_us), (1, 13, 3_000));
        assert_eq!(c.by_class, [0, 0, 0, 0, 1]);
        assert_eq!(c.buckets[2], 1, "3 ms falls in the 5 ms bucket");
        assert_eq!(slot.state(), WorkerState::Ready);
        assert_eq!(slot.requests(), 1);
        slot.set_state(WorkerState::Stopping);
        slot.begin_request(200);
        assert_eq!(slot.state(), WorkerState::Stopping, "stopping sticks");
        slot.end_request(0, false, 200, 1);
        assert_eq!(slot.state(), WorkerState::Stopping, "stopping sticks");
        slot.count_static(200, 10);
        slot.count_static(304, 0);
        let c = slot.counters();
        assert_eq!(
            (c.static_requests, c.static_bytes, c.static_not_modified),
            (2, 10, 1)
        );
        let core = &sb.cores(0)[0];
        assert_eq!(sb.in_flight(0, 5_000_000), "");
        core.begin(&[b"GET", b" ", b"/x"], 3_800_000);
        assert_eq!(core.label(), "GET /x");
        assert_eq!(
            sb.in_flight(0, 5_000_000),
            " while serving \"GET /x\" for 1.2 s"
        );
        core.begin(&[b"GET", b" ", b"/\r\nforged \"x\""], 3_800_000);
        assert_eq!(
            sb.in_flight(0, 5_000_000),
            " while serving \"GET /\\x0D\\x0Aforged \\x22x\\x22\" for 1.2 s"
        );
        core.end();
        assert_eq!(sb.in_flight(0, 5_000_000), "");
        let long = [b'a'; 300];
        core.begin(&[&long], 1);
        assert_eq!(core.label().len(), label::LABEL_BYTES);
        slot.free();
        assert_eq!(sb.free_slot(), Some(0));
    }
}
