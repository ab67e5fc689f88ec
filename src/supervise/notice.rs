//! The worker-to-master notice pipe's messages: a worker is ready, or asks
//! to be recycled.

/// Notifications a worker writes to the master's pipe: 8 bytes, written
/// atomically (well under PIPE_BUF): kind, argument, slot as u16 and pid as
/// i32, little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The app is loaded and the worker is serving.
    Ready,
    /// The worker wants to be recycled (its successor should start first).
    Retire(RetireReason),
}

/// Why a worker asks to be recycled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireReason {
    MaxRequests,
    Rss,
}

impl RetireReason {
    pub fn flag(self) -> &'static str {
        match self {
            RetireReason::MaxRequests => "--max-requests",
            RetireReason::Rss => "--reload-on-rss",
        }
    }
}

/// Bytes of one notice on the pipe (well under PIPE_BUF: writes are atomic).
pub const NOTICE_LEN: usize = 8;

impl Notice {
    /// The notice of the worker `pid` in scoreboard slot `slot`. The pid lets
    /// the master ignore a notice from a worker that died before it was read
    /// (its slot may already hold a successor).
    pub fn encode(self, slot: usize, pid: libc::pid_t) -> [u8; NOTICE_LEN] {
        let s = (slot as u16).to_le_bytes();
        let p = pid.to_le_bytes();
        let (kind, arg) = match self {
            Notice::Ready => (1, 0),
            Notice::Retire(RetireReason::MaxRequests) => (2, 1),
            Notice::Retire(RetireReason::Rss) => (2, 2),
        };
        [kind, arg, s[0], s[1], p[0], p[1], p[2], p[3]]
    }

    pub fn decode(b: &[u8]) -> Option<(Notice, usize, libc::pid_t)> {
        let [kind, arg, s0, s1, p0, p1, p2, p3] = *b else {
            return None;
        };
        let slot = usize::from(u16::from_le_bytes([s0, s1]));
        let pid = libc::pid_t::from_le_bytes([p0, p1, p2, p3]);
        let notice = match (kind, arg) {
            (1, _) => Notice::Ready,
            (2, 1) => Notice::Retire(RetireReason::MaxRequests),
            (2, 2) => Notice::Retire(RetireReason::Rss),
            _ => return None,
        };
        Some((notice, slot, pid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_with_slot_and_pid() {
        for n in [
            Notice::Ready,
            Notice::Retire(RetireReason::MaxRequests),
            Notice::Retire(RetireReason::Rss),
        ] {
            let bytes = n.encode(513, 4_194_301);
            assert_eq!(Notice::decode(&bytes), Some((n, 513, 4_194_301)));
        }
        assert_eq!(Notice::decode(&[9, 0, 0, 0, 1, 0, 0, 0]), None);
        assert_eq!(Notice::decode(&[1, 0, 0, 0]), None, "short");
    }
}
