//! One worker's slot: its state, counters and current request, written by
//! the worker with atomics and read by the master.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};

/// A worker's state as the scoreboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum WorkerState {
    Free = 0,
    Starting = 1,
    Ready = 2,
    Busy = 3,
    Stopping = 4,
}

impl WorkerState {
    fn from_u32(v: u32) -> WorkerState {
        match v {
            1 => WorkerState::Starting,
            2 => WorkerState::Ready,
            3 => WorkerState::Busy,
            4 => WorkerState::Stopping,
            _ => WorkerState::Free,
        }
    }
}

/// One worker's slot. `repr(C)` and atomics only, so it is valid in shared memory
/// when zero-filled.
#[repr(C)]
pub struct Slot {
    pid: AtomicI32,
    state: AtomicU32,
    generation: AtomicU64,
    requests: AtomicU64,
    /// Start of the current request in µs on CLOCK_MONOTONIC; 0 when idle.
    request_start_us: AtomicU64,
    exceptions: AtomicU64,
    tx_bytes: AtomicU64,
    rss_bytes: AtomicU64,
    vsz_bytes: AtomicU64,
    spawned_at_us: AtomicU64,
    /// Total time spent serving requests, µs.
    running_us: AtomicU64,
    /// Responses by status class: 1xx .. 5xx.
    by_class: [AtomicU64; 5],
    /// Request durations, one counter per bucket of [`DURATION_BUCKETS_US`]
    /// (the last one is everything slower).
    buckets: [AtomicU64; DURATION_BUCKETS_US.len() + 1],
    /// Open connections of the worker (for accept balancing and stats).
    conns: AtomicU32,
    /// App threads free to take a request now (`--threads`).
    free_threads: AtomicU32,
    /// Static files (`--static-map`): responses, body bytes, 304s.
    static_requests: AtomicU64,
    static_bytes: AtomicU64,
    static_not_modified: AtomicU64,
    /// Time requests waited for a free app thread (µs), and how many waited.
    queue_wait_us: AtomicU64,
    queued: AtomicU64,
}

/// Upper bounds of the request-duration histogram buckets, in µs.
pub const DURATION_BUCKETS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// A plain copy of a slot's counters, for the stats and metrics endpoints,
/// and for keeping the totals of workers that are gone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests: u64,
    pub exceptions: u64,
    pub tx_bytes: u64,
    pub running_us: u64,
    pub by_class: [u64; 5],
    pub buckets: [u64; DURATION_BUCKETS_US.len() + 1],
    pub static_requests: u64,
    pub static_bytes: u64,
    pub static_not_modified: u64,
    pub queue_wait_us: u64,
    pub queued: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.exceptions += other.exceptions;
        self.tx_bytes += other.tx_bytes;
        self.running_us += other.running_us;
        self.static_requests += other.static_requests;
        self.static_bytes += other.static_bytes;
        self.static_not_modified += other.static_not_modified;
        self.queue_wait_us += other.queue_wait_us;
        self.queued += other.queued;
        for (a, b) in self.by_class.iter_mut().zip(other.by_class) {
            *a += b;
        }
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
    }
}

impl Slot {
    pub fn pid(&self) -> i32 {
        self.pid.load(Relaxed)
    }
    pub fn state(&self) -> WorkerState {
        WorkerState::from_u32(self.state.load(Relaxed))
    }
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }
    pub fn request_start_us(&self) -> u64 {
        self.request_start_us.load(Relaxed)
    }
    pub fn conns(&self) -> u32 {
        self.conns.load(Relaxed)
    }
    pub fn free_threads(&self) -> u32 {
        self.free_threads.load(Relaxed)
    }
    pub fn set_free_threads(&self, n: usize) {
        self.free_threads
            .store(u32::try_from(n).unwrap_or(u32::MAX), Relaxed);
    }
    pub fn set_conns(&self, n: usize) {
        self.conns
            .store(u32::try_from(n).unwrap_or(u32::MAX), Relaxed);
    }
    pub fn rss_bytes(&self) -> u64 {
        self.rss_bytes.load(Relaxed)
    }
    pub fn vsz_bytes(&self) -> u64 {
        self.vsz_bytes.load(Relaxed)
    }
    pub fn spawned_at_us(&self) -> u64 {
        self.spawned_at_us.load(Relaxed)
    }
    pub fn set_memory(&self, rss: u64, vsz: u64) {
        self.rss_bytes.store(rss, Relaxed);
        self.vsz_bytes.store(vsz, Relaxed);
    }

    /// The slot's counters as plain numbers.
    pub fn counters(&self) -> Counters {
        let mut c = Counters {
            requests: self.requests.load(Relaxed),
            exceptions: self.exceptions.load(Relaxed),
            tx_bytes: self.tx_bytes.load(Relaxed),
            running_us: self.running_us.load(Relaxed),
            static_requests: self.static_requests.load(Relaxed),
            static_bytes: self.static_bytes.load(Relaxed),
            static_not_modified: self.static_not_modified.load(Relaxed),
            queue_wait_us: self.queue_wait_us.load(Relaxed),
            queued: self.queued.load(Relaxed),
            ..Counters::default()
        };
        for (dst, src) in c.by_class.iter_mut().zip(&self.by_class) {
            *dst = src.load(Relaxed);
        }
        for (dst, src) in c.buckets.iter_mut().zip(&self.buckets) {
            *dst = src.load(Relaxed);
        }
        c
    }

    /// Master: claim the slot for a freshly forked worker.
    pub fn reset(&self, pid: i32, generation: u64, now_us: u64) {
        self.pid.store(pid, Relaxed);
        self.generation.store(generation, Relaxed);
        self.requests.store(0, Relaxed);
        self.request_start_us.store(0, Relaxed);
        self.exceptions.store(0, Relaxed);
        self.tx_bytes.store(0, Relaxed);
        self.rss_bytes.store(0, Relaxed);
        self.vsz_bytes.store(0, Relaxed);
        self.conns.store(0, Relaxed);
        self.free_threads.store(0, Relaxed);
        self.running_us.store(0, Relaxed);
        let statics = [
            &self.static_requests,
            &self.static_bytes,
            &self.static_not_modified,
            &self.queue_wait_us,
            &self.queued,
        ];
        for c in self.by_class.iter().chain(&self.buckets).chain(statics) {
            c.store(0, Relaxed);
        }
        self.spawned_at_us.store(now_us, Relaxed);
        self.state.store(WorkerState::Starting as u32, Relaxed);
    }

    /// Master: the forked worker's pid, once known.
    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Relaxed);
    }

    /// Master: the worker is gone.
    pub fn free(&self) {
        self.pid.store(0, Relaxed);
        self.request_start_us.store(0, Relaxed);
        self.state.store(WorkerState::Free as u32, Relaxed);
    }

    pub fn set_state(&self, state: WorkerState) {
        self.state.store(state as u32, Relaxed);
    }

    /// Worker: a request starts (for harakiri and stats), at `now_us` on
    /// CLOCK_MONOTONIC (system-wide, so the master can compare).
    pub fn begin_request(&self, now_us: u64) {
        self.request_start_us.store(now_us.max(1), Relaxed);
        // Only idle -> busy: a stopping worker stays "stopping".
        let _ = self.state.compare_exchange(
            WorkerState::Ready as u32,
            WorkerState::Busy as u32,
            Relaxed,
            Relaxed,
        );
    }

    /// Worker: a static file was answered (on top of `end_request`, which
    /// counts it as a request like any other).
    pub fn count_static(&self, status: u16, body_bytes: u64) {
        self.static_requests.fetch_add(1, Relaxed);
        self.static_bytes.fetch_add(body_bytes, Relaxed);
        if status == 304 {
            self.static_not_modified.fetch_add(1, Relaxed);
        }
    }

    /// Worker: a request waited `us` for a free app thread.
    pub fn add_queue_wait(&self, us: u64) {
        self.queue_wait_us.fetch_add(us, Relaxed);
        self.queued.fetch_add(1, Relaxed);
    }

    /// Worker: the request is answered. Returns the requests served so far.
    pub fn end_request(&self, tx: u64, exception: bool, status: u16, micros: u64) -> u64 {
        self.request_start_us.store(0, Relaxed);
        self.tx_bytes.fetch_add(tx, Relaxed);
        self.running_us.fetch_add(micros, Relaxed);
        if (100..600).contains(&status) {
            self.by_class[usize::from(status / 100 - 1)].fetch_add(1, Relaxed);
        }
        let bucket = DURATION_BUCKETS_US
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(DURATION_BUCKETS_US.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        if exception {
            self.exceptions.fetch_add(1, Relaxed);
        }
        let _ = self.state.compare_exchange(
            WorkerState::Busy as u32,
            WorkerState::Ready as u32,
            Relaxed,
            Relaxed,
        );
        self.requests.fetch_add(1, Relaxed) + 1
    }
}
