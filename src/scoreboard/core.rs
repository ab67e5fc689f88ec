//! One app thread's slot, and the labels (`METHOD target`) slots and cores
//! carry, packed into atomics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::label::{read_label, write_label, LABEL_WORDS};

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
