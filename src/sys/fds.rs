//! Descriptor plumbing for the log: keeping fds 0–2 occupied, a private
//! close-on-exec copy of the log descriptor, and replacing descriptors in
//! place (so a thread writing concurrently sees the old file or the new one,
//! never a closed fd).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use super::cvt;

/// Opens `/dev/null` onto any of fds 0, 1 and 2 that is closed, so that no
/// socket or file rwsgi opens later can take one of those numbers (and so
/// receive what anything writes to "stdout" or "stderr").
pub fn occupy_std_fds() -> io::Result<()> {
    for fd in 0..3 {
        // SAFETY: F_GETFD on an integer fd has no memory effects.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        if null.as_raw_fd() != fd {
            // The lowest free number is `fd` here, so open returned it unless
            // a lower one was free too; dup2 covers that case.
            replace_fd(null.as_raw_fd(), fd, false)?;
        } else {
            // The file is now fd itself: keep it open for the process's life.
            std::mem::forget(null);
        }
    }
    Ok(())
}

/// A close-on-exec duplicate of `fd` numbered 3 or above (never 0–2).
pub fn dup_private(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC creates a new fd; no memory is touched.
    cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })
}

/// Moves a descriptor that landed on 0, 1 or 2 (the app closed that one)
/// to a close-on-exec number of 3 or more, and puts /dev/null back on the
/// low number, so nothing written to "stdout" or "stderr" reaches it.
/// Returns the descriptor to use: `fd` itself if it is 3 or more.
pub fn lift_above_std(fd: RawFd) -> io::Result<RawFd> {
    if fd > 2 {
        return Ok(fd);
    }
    let high = dup_private(fd)?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    // dup3 replaces the socket on `fd` atomically; on failure `fd` is
    // closed instead (the number stays free, but the socket is not on it).
    let placed = null.and_then(|n| {
        replace_fd(n.as_raw_fd(), fd, false)?;
        if n.as_raw_fd() <= 2 {
            // It filled another free low number: leave it there too.
            std::mem::forget(n);
        }
        Ok(())
    });
    if placed.is_err() {
        // SAFETY: the caller hands `fd` over (it uses the returned `high`
        // from now on), so closing the low number leaves no owner behind.
        unsafe { super::close(fd) };
    }
    Ok(high)
}

/// Makes `dst` refer to what `src` refers to, atomically (dup3), with
/// close-on-exec set on `dst` if `cloexec`.
pub fn replace_fd(src: RawFd, dst: RawFd, cloexec: bool) -> io::Result<()> {
    if src == dst {
        return super::set_cloexec(dst, cloexec);
    }
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: dup3 only changes the fd table; callers own `dst`.
    cvt(unsafe { libc::dup3(src, dst, flags) })?;
    Ok(())
}

/// The (device, inode) an fd is open on, to tell whether two fds show the
/// same file; `None` if `fd` is closed.
pub fn fd_identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: a zeroed stat is valid; fstat fills it for a valid fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid, writable stat struct; fd is a plain integer.
    if unsafe { libc::fstat(fd, &mut st) } == -1 {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

/// Takes O_NONBLOCK off an fd (a log file opened non-blocking so that a FIFO
/// without a reader fails instead of hanging).
pub fn clear_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an integer fd has no memory effects.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) })?;
    Ok(())
}

/// One write(2) of `buf` to `fd` (EINTR retried).
pub fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is a valid slice for its length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_copies_are_above_2_and_close_on_exec() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = dup_private(f.as_raw_fd()).unwrap();
        assert!(fd >= 3);
        // SAFETY: F_GETFD on the fd we just made.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        assert_eq!(fd_identity(fd), fd_identity(f.as_raw_fd()));
        // SAFETY: `fd` is the copy made above, used by nothing else.
        unsafe { super::super::close(fd) };
    }
}
