//! What the kernel says about a process's memory.

/// This process's (resident, virtual) memory in bytes, from /proc/self/statm.
pub fn memory_bytes() -> Option<(u64, u64)> {
    statm("/proc/self/statm")
}

/// Another process's (resident, virtual) memory in bytes.
pub fn memory_of(pid: libc::pid_t) -> Option<(u64, u64)> {
    statm(&format!("/proc/{pid}/statm"))
}

fn statm(path: &str) -> Option<(u64, u64)> {
    let statm = std::fs::read_to_string(path).ok()?;
    let mut fields = statm.split_whitespace();
    let size: u64 = fields.next()?.parse().ok()?;
    let resident: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    Some((resident * page, size * page))
}

/// A process's memory split by sharing, in bytes, from
/// /proc/PID/smaps_rollup: PSS counts each shared page divided among its
/// sharers, USS is the private part (what the process alone costs), shared
/// is the part other processes map too (the template's pages, under
/// `--preload`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryDetail {
    pub rss: u64,
    pub pss: u64,
    pub uss: u64,
    pub shared: u64,
}

/// Another process's [`MemoryDetail`] (None if it is gone or unreadable).
pub fn memory_detail_of(pid: libc::pid_t) -> Option<MemoryDetail> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some(parse_smaps_rollup(&text))
}

fn parse_smaps_rollup(text: &str) -> MemoryDetail {
    let mut m = MemoryDetail::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(key), Some(kb)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(kb) = kb.parse::<u64>() else { continue };
        let bytes = kb.saturating_mul(1024);
        match key {
            "Rss:" => m.rss = bytes,
            "Pss:" => m.pss = bytes,
            "Private_Clean:" | "Private_Dirty:" => m.uss = m.uss.saturating_add(bytes),
            "Shared_Clean:" | "Shared_Dirty:" => m.shared = m.shared.saturating_add(bytes),
            _ => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_rollup_splits_private_and_shared() {
        let text = "55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:  100 kB\nPss:  60 kB\n\
                    Pss_Anon: 10 kB\nShared_Clean: 30 kB\nShared_Dirty: 20 kB\n\
                    Private_Clean: 5 kB\nPrivate_Dirty: 45 kB\nSwap: 0 kB\n";
        let m = parse_smaps_rollup(text);
        assert_eq!(m.rss, 100 * 1024);
        assert_eq!(m.pss, 60 * 1024);
        assert_eq!(m.shared, 50 * 1024);
        assert_eq!(m.uss, 50 * 1024);
    }

    #[test]
    fn this_process_has_private_memory() {
        let m = memory_detail_of(crate::sys::getpid()).expect("smaps_rollup");
        assert!(m.uss > 0 && m.rss >= m.uss, "{m:?}");
    }
}
