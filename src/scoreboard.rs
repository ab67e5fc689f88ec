//! The scoreboard: one shared-memory slot per worker, written by the worker
//! with atomics and read by the master (timeouts, recycling, stats).
//!
//! It is mapped before the first fork, so every process sees the same memory.
//! No locks are shared across processes: each field is an atomic and each slot
//! has one writer (its worker) besides the master resetting it on spawn.

use std::io;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::sys::SharedMap;

/// How many slots exist: the workers of an old and a new generation overlap
/// during a reload, and TTIN can add workers, so this is a generous fixed cap.
pub const MAX_SLOTS: usize = 1024;

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
    /// `METHOD target` of the current request (for the harakiri log line):
    /// byte 0 is the length, then up to LABEL_BYTES bytes, packed in atomics.
    label: [AtomicU64; LABEL_WORDS],
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

const LABEL_WORDS: usize = 16;
const LABEL_BYTES: usize = LABEL_WORDS * 8 - 1;

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

    /// Worker: records what the current request is (truncated to fit).
    pub fn set_label(&self, parts: &[&[u8]]) {
        write_label(&self.label, parts);
    }

    /// Master: the current request's label, escaped for a log line (may be
    /// torn if read while the worker writes it; only ever used in a log line).
    pub fn label(&self) -> String {
        read_label(&self.label)
    }

    /// Master: the request in flight, for a log line about the worker (its
    /// death): ` while serving "GET /x" for 1.2 s`, or "" between requests.
    /// `now_us` is CLOCK_MONOTONIC, as `begin_request`'s.
    pub fn in_flight(&self, now_us: u64) -> String {
        let start = self.request_start_us();
        if start == 0 {
            return String::new();
        }
        format!(
            " while serving \"{}\" for {:.1} s",
            self.label(),
            now_us.saturating_sub(start) as f64 / 1e6
        )
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

/// One app thread's slot ("core", as uWSGI's stats call it): written by that
/// thread only, read by the master and the stats endpoint.
#[repr(C)]
pub struct Core {
    requests: AtomicU64,
    /// Start of the current request in µs on CLOCK_MONOTONIC; 0 when idle.
    request_start_us: AtomicU64,
    label: [AtomicU64; LABEL_WORDS],
}

impl Core {
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }
    pub fn request_start_us(&self) -> u64 {
        self.request_start_us.load(Relaxed)
    }
    /// The current (or last) request's `METHOD target`.
    pub fn label(&self) -> String {
        read_label(&self.label)
    }
    /// Worker, at start: a clean core.
    pub fn reset(&self) {
        self.requests.store(0, Relaxed);
        self.request_start_us.store(0, Relaxed);
        self.label[0].store(0, Relaxed);
    }
    /// The thread takes a request (`now_us` on CLOCK_MONOTONIC).
    pub fn begin(&self, parts: &[&[u8]], now_us: u64) {
        write_label(&self.label, parts);
        self.request_start_us.store(now_us.max(1), Relaxed);
    }
    /// The thread is done with its request.
    pub fn end(&self) {
        self.request_start_us.store(0, Relaxed);
        self.requests.fetch_add(1, Relaxed);
    }
}

fn write_label(label: &[AtomicU64; LABEL_WORDS], parts: &[&[u8]]) {
    let mut bytes = [0u8; LABEL_WORDS * 8];
    let mut n = 0;
    for part in parts {
        let take = part.len().min(LABEL_BYTES - n);
        bytes[1 + n..1 + n + take].copy_from_slice(&part[..take]);
        n += take;
    }
    bytes[0] = n as u8;
    let words = (1 + n).div_ceil(8);
    for (i, word) in label.iter().enumerate().take(words) {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        word.store(u64::from_le_bytes(w), Relaxed);
    }
}

/// A label as written by [`write_label`] (may be torn if read while it is
/// written; only ever used in log lines and stats).
fn read_label(label: &[AtomicU64; LABEL_WORDS]) -> String {
    let mut bytes = [0u8; LABEL_WORDS * 8];
    for (i, word) in label.iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&word.load(Relaxed).to_le_bytes());
    }
    let n = usize::from(bytes[0]).min(LABEL_BYTES);
    // Client bytes, for a log line: escaped (see log::escape).
    crate::log::Escaped(&bytes[1..1 + n]).to_string()
}

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
        slot.set_label(&[b"GET", b" ", b"/x"]);
        assert_eq!(slot.label(), "GET /x");
        assert_eq!(slot.in_flight(5_000_000), "");
        slot.begin_request(3_800_000);
        assert_eq!(
            slot.in_flight(5_000_000),
            " while serving \"GET /x\" for 1.2 s"
        );
        slot.set_label(&[b"GET", b" ", b"/\r\nforged \"x\""]);
        assert_eq!(
            slot.in_flight(5_000_000),
            " while serving \"GET /\\x0D\\x0Aforged \\x22x\\x22\" for 1.2 s"
        );
        slot.end_request(0, false, 200, 1);
        assert_eq!(slot.in_flight(5_000_000), "");
        let long = [b'a'; 300];
        slot.set_label(&[&long]);
        assert_eq!(slot.label().len(), LABEL_BYTES);
        slot.free();
        assert_eq!(sb.free_slot(), Some(0));
    }
}
