//! The worker's side of harakiri: when the master gives up on a request
//! (`--harakiri`), it sends [`HARAKIRI_SIGNAL`] before SIGKILL. Python's
//! faulthandler (registered by the bridge, chained to this handler) dumps
//! every thread's stack to the log; then this handler answers 504 on each
//! connection whose stuck request has not sent a byte yet, so the client
//! learns why instead of seeing a reset. Both are async-signal-safe: the
//! handler only reads atomics and calls write(2).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The signal the master sends a worker it is about to kill for harakiri.
pub const HARAKIRI_SIGNAL: libc::c_int = libc::SIGPWR;

/// Most app threads watched (the config caps `--threads` at this).
pub const WATCHED_THREADS: usize = 512;

/// What one app thread is serving, for the handler.
pub struct Watch {
    /// The connection of the request in progress; -1 when idle.
    fd: AtomicI32,
    /// A byte of the response has been handed to the connection.
    sent: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const IDLE: Watch = Watch {
    fd: AtomicI32::new(-1),
    sent: AtomicBool::new(false),
};
static WATCHES: [Watch; WATCHED_THREADS] = [IDLE; WATCHED_THREADS];

const ANSWER: &[u8] = b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\n\
Content-Length: 20\r\nConnection: close\r\n\r\n504 Gateway Timeout\n";

impl Watch {
    /// App thread `i`'s watch (clamped to the table).
    pub fn of_thread(i: usize) -> &'static Watch {
        &WATCHES[i.min(WATCHED_THREADS - 1)]
    }

    /// The thread starts serving a request on connection `fd`.
    pub fn arm(&self, fd: RawFd) {
        self.sent.store(false, Ordering::Release);
        self.fd.store(fd, Ordering::Release);
    }

    /// The thread is done with it.
    pub fn disarm(&self) {
        self.fd.store(-1, Ordering::Release);
    }

    /// Part of the response went out: a 504 could no longer be told apart.
    pub fn mark_sent(&self) {
        self.sent.store(true, Ordering::Release);
    }
}

extern "C" fn on_harakiri(_sig: libc::c_int) {
    for w in &WATCHES {
        let fd = w.fd.load(Ordering::Acquire);
        if fd >= 0 && !w.sent.load(Ordering::Acquire) {
            w.sent.store(true, Ordering::Release);
            // SAFETY: write(2) is async-signal-safe; ANSWER is a static
            // buffer; a stale fd at worst fails with EBADF.
            unsafe {
                libc::send(
                    fd,
                    ANSWER.as_ptr().cast(),
                    ANSWER.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                );
            }
        }
    }
}

/// Installs the handler (before Python starts: faulthandler then chains to it).
pub fn install_harakiri_handler() -> io::Result<()> {
    super::signals::set_handler(
        HARAKIRI_SIGNAL,
        on_harakiri as *const () as libc::sighandler_t,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn only_requests_that_sent_nothing_get_the_504() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (c, mut d) = std::os::unix::net::UnixStream::pair().unwrap();
        let (w1, w2) = (
            Watch::of_thread(WATCHED_THREADS - 2),
            Watch::of_thread(WATCHED_THREADS - 3),
        );
        w1.arm(a.as_raw_fd());
        w2.arm(c.as_raw_fd());
        w2.mark_sent();
        on_harakiri(HARAKIRI_SIGNAL);
        w1.disarm();
        w2.disarm();
        drop((a, c));
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert!(got.starts_with(b"HTTP/1.1 504 "), "{got:?}");
        let mut none = Vec::new();
        d.read_to_end(&mut none).unwrap();
        assert!(none.is_empty());
    }
}
