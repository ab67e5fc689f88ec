//! Socket syscalls: sending with a timeout (writev, sendfile), listening,
//! accepting, and reading a listener's accept queue from the kernel.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::cvt;

/// After a send returned -1: wait for a slow peer (WouldBlock) or retry
/// (EINTR); any other error is final.
fn after_failed_send(fd: RawFd, timeout: Duration) -> io::Result<()> {
    let err = io::Error::last_os_error();
    match err.kind() {
        io::ErrorKind::WouldBlock => {
            super::wait_writable(fd, super::deadline(Instant::now(), timeout))
        }
        io::ErrorKind::Interrupted => Ok(()),
        _ => Err(err),
    }
}

/// Writes every byte of `bufs` to a non-blocking socket, waiting (up to
/// `timeout` without progress) when the peer is slow. Never raises SIGPIPE.
pub fn send_all(fd: RawFd, bufs: &[&[u8]], timeout: Duration) -> io::Result<()> {
    const MAX_IOV: usize = 64;
    let mut idx = 0; // first buffer not fully sent
    let mut off = 0; // bytes of bufs[idx] already sent
    while idx < bufs.len() {
        if bufs[idx].len() == off {
            idx += 1;
            off = 0;
            continue;
        }
        let mut iov: [libc::iovec; MAX_IOV] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOV];
        let mut n_iov = 0;
        for (i, b) in bufs[idx..].iter().enumerate().take(MAX_IOV) {
            let start = if i == 0 { off } else { 0 };
            iov[n_iov] = libc::iovec {
                iov_base: b[start..].as_ptr() as *mut libc::c_void,
                iov_len: b.len() - start,
            };
            n_iov += 1;
        }
        // SAFETY: a zeroed msghdr is valid; we point it at `iov`, which outlives the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = n_iov;
        // SAFETY: msg and the buffers it points to are valid for the call.
        let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
        if n < 0 {
            after_failed_send(fd, timeout)?;
            continue;
        }
        let mut n = n as usize;
        while n > 0 && idx < bufs.len() {
            let left = bufs[idx].len() - off;
            if n >= left {
                n -= left;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// (Re-)listens on a bound socket with `backlog`; on a listening socket this
/// only changes the backlog.
pub fn listen(fd: RawFd, backlog: u32) -> io::Result<()> {
    let backlog = backlog.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: listen on an integer fd has no memory effects.
    cvt(unsafe { libc::listen(fd, backlog) })?;
    Ok(())
}

/// (connections waiting in the accept queue, queue size) of a listening TCP
/// socket, from TCP_INFO: for a listener the kernel reports the current
/// backlog in `tcpi_unacked` and its maximum in `tcpi_sacked`.
pub fn tcp_listen_queue(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: a zeroed tcp_info is valid; getsockopt writes at most `len` bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and len are valid for the call.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (r == 0).then(|| (u64::from(info.tcpi_unacked), u64::from(info.tcpi_sacked)))
}

/// (connections waiting, queue size) of a listening unix socket, asked of the
/// kernel through sock_diag netlink (what `ss -x` shows as Recv-Q/Send-Q).
pub fn unix_listen_queue(fd: RawFd) -> Option<(u64, u64)> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const UDIAG_SHOW_RQLEN: u32 = 0x10;
    const UNIX_DIAG_RQLEN: u16 = 4;
    // SAFETY: a zeroed stat is valid; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid, writable stat struct.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    let inode = u32::try_from(st.st_ino).ok()?;
    // nlmsghdr (16 bytes) + unix_diag_req (24 bytes), native endian.
    let mut req = Vec::with_capacity(40);
    req.extend_from_slice(&40u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // pid
    req.push(libc::AF_UNIX as u8); // sdiag_family
    req.push(0); // sdiag_protocol
    req.extend_from_slice(&0u16.to_ne_bytes()); // pad
    req.extend_from_slice(&(1u32 << 10).to_ne_bytes()); // states: TCP_LISTEN
    req.extend_from_slice(&inode.to_ne_bytes());
    req.extend_from_slice(&UDIAG_SHOW_RQLEN.to_ne_bytes());
    req.extend_from_slice(&[0xff; 8]); // cookie: none
                                       // SAFETY: plain socket creation.
    let nl = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if nl < 0 {
        return None;
    }
    // SAFETY: nl is a socket we just created and own.
    let nl = unsafe { OwnedFd::from_raw_fd(nl) };
    // SAFETY: req is a valid buffer for its length.
    let sent = unsafe { libc::send(nl.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent != req.len() as isize {
        return None;
    }
    let mut buf = [0u8; 1024];
    // SAFETY: buf is a valid, writable buffer; the kernel answers at once.
    let n = unsafe { libc::recv(nl.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    let reply = buf.get(..usize::try_from(n).ok()?)?;
    let u16_at = |i: usize| Some(u16::from_ne_bytes(reply.get(i..i + 2)?.try_into().ok()?));
    let u32_at = |i: usize| Some(u32::from_ne_bytes(reply.get(i..i + 4)?.try_into().ok()?));
    if u16_at(4)? != SOCK_DIAG_BY_FAMILY {
        return None; // an error or empty answer
    }
    let end = usize::try_from(u32_at(0)?).ok()?.min(reply.len());
    // Attributes follow the 16-byte header and the 16-byte unix_diag_msg.
    let mut at = 32;
    while at + 4 <= end {
        let len = usize::from(u16_at(at)?);
        if len < 4 {
            break;
        }
        if u16_at(at + 2)? == UNIX_DIAG_RQLEN {
            return Some((u64::from(u32_at(at + 4)?), u64::from(u32_at(at + 8)?)));
        }
        at += (len + 3) & !3;
    }
    None
}

/// Stops a listening socket from accepting: the kernel refuses new
/// connections from now on, for every process sharing the socket. (What is
/// still queued is reset, so callers accept the queue first.)
pub fn shutdown_listener(fd: RawFd) {
    // SAFETY: shutdown on an integer fd has no memory effects.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RD);
    }
}

/// Accepts one queued connection on a non-blocking listener, if any.
pub fn accept_nonblocking(fd: RawFd) -> Option<OwnedFd> {
    let flags = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: null address pointers are allowed by accept4.
    let c = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), flags) };
    // SAFETY: c is a fresh fd nobody else owns.
    (c >= 0).then(|| unsafe { OwnedFd::from_raw_fd(c) })
}

/// Sets TCP_NODELAY on a socket. Set on a listener, Linux copies it to every
/// accepted connection, which saves a syscall per connection.
pub fn set_nodelay(fd: RawFd) -> io::Result<()> {
    set_tcp_option(fd, libc::TCP_NODELAY, 1)
}

/// Sets TCP_DEFER_ACCEPT on a TCP listener: a connection is queued for
/// accept once data arrives, or after about `secs` seconds without any.
pub fn set_defer_accept(fd: RawFd, secs: libc::c_int) -> io::Result<()> {
    set_tcp_option(fd, libc::TCP_DEFER_ACCEPT, secs)
}

fn set_tcp_option(fd: RawFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a valid c_int for the option length given.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Reads up to `max` bytes from `fd` into the spare capacity of `buf`,
/// growing it only as needed and never zero-filling (a 16 KiB memset per
/// read was 40% of a worker's instructions). Returns the bytes read.
pub fn read_into(fd: RawFd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let want = max.min(spare.len());
    // SAFETY: `spare` points at `want` writable (uninitialised) bytes owned by
    // `buf`; read(2) writes at most `want` bytes there and reports how many.
    let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), want) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised exactly `n <= want` bytes past the old length.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

#[cfg(test)]
mod listen_queue_tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn tcp_and_unix_queues_are_read_from_the_kernel() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listen(tcp.as_raw_fd(), 77).unwrap();
        let _waiting = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        let (q, max) = tcp_listen_queue(tcp.as_raw_fd()).expect("TCP_INFO");
        assert_eq!((q, max), (1, 77));

        let dir = std::env::temp_dir().join(format!("rwsgi-lq-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let unix = std::os::unix::net::UnixListener::bind(&dir).unwrap();
        listen(unix.as_raw_fd(), 33).unwrap();
        let _a = std::os::unix::net::UnixStream::connect(&dir).unwrap();
        let _b = std::os::unix::net::UnixStream::connect(&dir).unwrap();
        let got = unix_listen_queue(unix.as_raw_fd());
        let _ = std::fs::remove_file(&dir);
        assert_eq!(got, Some((2, 33)));
    }
}
