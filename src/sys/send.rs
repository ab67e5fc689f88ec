//! Non-blocking sends for the worker's output side: one syscall each,
//! reporting how much the socket took (or `WouldBlock`), never raising
//! SIGPIPE. Waiting is the caller's choice (epoll, or [`wait_writable`]).

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

/// Sends what the socket takes now of `bufs`, in order; returns the bytes
/// sent. `WouldBlock` when it takes nothing.
pub fn try_send(fd: RawFd, bufs: &[&[u8]]) -> io::Result<usize> {
    const MAX_IOV: usize = 64;
    let mut iov: [libc::iovec; MAX_IOV] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOV];
    let mut n_iov = 0;
    for b in bufs.iter().filter(|b| !b.is_empty()).take(MAX_IOV) {
        iov[n_iov] = libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        };
        n_iov += 1;
    }
    if n_iov == 0 {
        return Ok(0);
    }
    // SAFETY: a zeroed msghdr is valid; we point it at `iov`, which outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = n_iov;
    loop {
        // SAFETY: msg and the buffers it points to are valid for the call.
        let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sends up to `count` bytes of `file_fd` from `*offset` (advanced by what
/// was sent) with one sendfile(2). `Ok(0)` means the file ended early.
pub fn try_send_file(fd: RawFd, file_fd: RawFd, offset: &mut u64, count: u64) -> io::Result<usize> {
    let mut off = i64::try_from(*offset).map_err(|_| io::Error::other("file offset too large"))?;
    let chunk = count.min(1 << 30) as usize;
    loop {
        // SAFETY: `off` is a valid local the kernel updates; fds are plain integers.
        let n = unsafe { libc::sendfile(fd, file_fd, &mut off, chunk) };
        if n >= 0 {
            *offset = u64::try_from(off).unwrap_or(*offset);
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Waits until `fd` is writable, up to `deadline` (then `TimedOut`).
pub fn wait_writable(fd: RawFd, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: pfd is a valid pollfd array of length 1.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n > 0 {
            return Ok(());
        }
    }
}

/// Makes the coming close of socket `fd` a reset (SO_LINGER 0): how an
/// aborted response is told apart from a complete one by a peer that reads
/// to the close (nginx over uwsgi, HTTP/1.0 clients).
pub fn reset_on_close(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid struct of the size given, read by the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
