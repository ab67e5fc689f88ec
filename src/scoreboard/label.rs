//! A request's label (`METHOD target`) packed into atomics: byte 0 is the
//! length, then up to [`LABEL_BYTES`] bytes. Written by one thread, read by
//! any process; a read during a write may be torn (log lines and stats only).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub const LABEL_WORDS: usize = 16;
pub const LABEL_BYTES: usize = LABEL_WORDS * 8 - 1;

pub fn write_label(label: &[AtomicU64; LABEL_WORDS], parts: &[&[u8]]) {
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
pub fn read_label(label: &[AtomicU64; LABEL_WORDS]) -> String {
    let mut bytes = [0u8; LABEL_WORDS * 8];
    for (i, word) in label.iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&word.load(Relaxed).to_le_bytes());
    }
    let n = usize::from(bytes[0]).min(LABEL_BYTES);
    // Client bytes, for a log line: escaped (see log::escape).
    crate::log::Escaped(&bytes[1..1 + n]).to_string()
}
