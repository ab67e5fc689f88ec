//! What a child the app forks must not keep: the worker's client and
//! listening sockets. A plain `os.fork()` child inherits every descriptor
//! (close-on-exec only helps children that exec), so a `Connection: close`
//! response would not end until the child exits, and a long-lived child
//! would hold the port. The worker records its socket numbers in a bitmap
//! of atomics; a `pthread_atfork` child handler closes them in the child.
//! Both sides are async-signal-safe (atomic loads and `close`), as a
//! handler running in a child of a multithreaded process must be.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Descriptors numbered below this are tracked (higher ones, in a worker
/// with more connections than that, are left to the child).
const TRACKED: usize = 1 << 17;
static SOCKETS: [AtomicU64; TRACKED / 64] = [const { AtomicU64::new(0) }; TRACKED / 64];
static INSTALL: Once = Once::new();

fn slot(fd: RawFd) -> Option<(&'static AtomicU64, u64)> {
    let i = usize::try_from(fd).ok().filter(|&i| i < TRACKED)?;
    Some((&SOCKETS[i / 64], 1u64 << (i % 64)))
}

/// Records `fd` as a worker socket that forked children must not keep.
/// Call it once the fd is open; call [`forget_socket`] before closing it,
/// so a number the app reuses is never closed in its children.
pub fn guard_socket(fd: RawFd) {
    if let Some((word, bit)) = slot(fd) {
        word.fetch_or(bit, Ordering::SeqCst);
    }
}

/// Stops tracking `fd` (it is about to be closed).
pub fn forget_socket(fd: RawFd) {
    if let Some((word, bit)) = slot(fd) {
        word.fetch_and(!bit, Ordering::SeqCst);
    }
}

extern "C" fn close_guarded_in_child() {
    for (i, word) in SOCKETS.iter().enumerate() {
        let mut bits = word.swap(0, Ordering::SeqCst);
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            // SAFETY: close is async-signal-safe; the fd was this process's
            // socket at the fork, now the child's own copy.
            unsafe {
                libc::close((i * 64 + b) as RawFd);
            }
        }
    }
}

/// Installs the at-fork child handler (once per process; a worker calls it
/// before serving).
pub fn install_fork_guard() {
    INSTALL.call_once(|| {
        // SAFETY: the handler only does atomic swaps and close(2), both
        // async-signal-safe, as POSIX requires of a child handler.
        let r = unsafe { libc::pthread_atfork(None, None, Some(close_guarded_in_child)) };
        if r != 0 {
            log::warn!(
                "cannot install the fork guard (error {r}): children the app forks keep client sockets"
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_fds_are_tracked_and_forgotten() {
        guard_socket(100_000);
        let (word, bit) = slot(100_000).unwrap();
        assert_ne!(word.load(Ordering::SeqCst) & bit, 0);
        forget_socket(100_000);
        assert_eq!(word.load(Ordering::SeqCst) & bit, 0);
        assert!(slot(-1).is_none());
        assert!(slot(TRACKED as RawFd).is_none());
    }
}
