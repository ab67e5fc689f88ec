//! A request's label (`METHOD target`) packed into atomics: byte 0 is the
//! length, then up to [`LABEL_BYTES`] bytes. Written by one thread, read by
//! any process; a read during a write may be torn (log lines and stats only).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub const LABEL_WORDS: usize = 16;
pub const LABEL_BYTES: usize = LABEL_WORDS * 8 - 1;

pub fn write_label(label: &[AtomicU64; LABEL_WORDS], parts: &[&[u8]]) {
    // Packed straight into words (byte 0 of word 0 is the length), without
    // a staging buffer: this runs for every request.
    let mut word = 0u64;
    let mut at = 1; // byte position; 0 is the length
    let mut n = 0;
    for part in parts {
        for &b in &part[..part.len().min(LABEL_BYTES - n)] {
            word |= u64::from(b) << (8 * (at % 8));
            at += 1;
            if at % 8 == 0 {
                label[at / 8 - 1].store(word, Relaxed);
                word = 0;
            }
        }
        n = at - 1;
    }
    if at % 8 != 0 {
        label[at / 8].store(word, Relaxed);
    }
    // The length goes in last, into word 0's low byte: rewrite word 0 whole.
    let first = if at >= 8 {
        label[0].load(Relaxed)
    } else {
        word
    };
    label[0].store((first & !0xFF) | n as u64, Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> [AtomicU64; LABEL_WORDS] {
        std::array::from_fn(|_| AtomicU64::new(0))
    }

    #[test]
    fn labels_of_every_length_read_back_whole_or_cut_at_the_limit() {
        let l = label();
        for len in [0, 1, 5, 6, 7, 8, 9, 15, 63, 126, 127, 128, 300] {
            let target: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            write_label(&l, &[b"GET", b" ", &target]);
            let mut want = b"GET ".to_vec();
            want.extend_from_slice(&target);
            want.truncate(LABEL_BYTES);
            assert_eq!(read_label(&l).as_bytes(), &want[..], "length {len}");
        }
        // A short label after a long one shows none of the long one.
        write_label(&l, &[b"x".repeat(200).as_slice()]);
        write_label(&l, &[b"HEAD", b" ", b"/"]);
        assert_eq!(read_label(&l), "HEAD /");
        write_label(&l, &[]);
        assert_eq!(read_label(&l), "");
    }
}
