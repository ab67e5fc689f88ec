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
