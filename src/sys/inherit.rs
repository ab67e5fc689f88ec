//! Syscalls for systemd integration: inspecting a file descriptor inherited
//! from the parent (socket activation, `fd://N`) and the monotonic clock
//! that `sd_notify`'s `MONOTONIC_USEC=` is measured on.

use std::io;
use std::os::fd::RawFd;

use super::cvt;

/// What kind of file an fd is open on (for error messages).
pub fn fd_kind(fd: RawFd) -> io::Result<&'static str> {
    // SAFETY: a zeroed stat is valid; fstat fills it for a valid fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid, writable stat struct; fd is a plain integer.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => "socket",
        libc::S_IFREG => "regular file",
        libc::S_IFDIR => "directory",
        libc::S_IFIFO => "pipe",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        libc::S_IFLNK => "symbolic link",
        _ => "file of unknown type",
    })
}

/// An integer `SOL_SOCKET` option of a socket (SO_ACCEPTCONN, SO_DOMAIN, SO_TYPE).
pub fn socket_option(fd: RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid locals; the kernel writes at most `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Puts an fd in non-blocking mode.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an integer fd has no memory effects.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// CLOCK_MONOTONIC in microseconds (what systemd compares `MONOTONIC_USEC=`
/// with).
pub fn monotonic_usec() -> u64 {
    // SAFETY: a zeroed timespec is valid; clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: ts is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let micros = u64::try_from(ts.tv_nsec).unwrap_or(0) / 1000;
    secs.saturating_mul(1_000_000).saturating_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn listening_sockets_are_told_apart() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(fd_kind(l.as_raw_fd()).unwrap(), "socket");
        assert_eq!(
            socket_option(l.as_raw_fd(), libc::SO_ACCEPTCONN).unwrap(),
            1
        );
        assert_eq!(
            socket_option(l.as_raw_fd(), libc::SO_TYPE).unwrap(),
            libc::SOCK_STREAM
        );
        assert_eq!(
            socket_option(l.as_raw_fd(), libc::SO_DOMAIN).unwrap(),
            libc::AF_INET
        );
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            socket_option(u.as_raw_fd(), libc::SO_ACCEPTCONN).unwrap(),
            0
        );
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(fd_kind(f.as_raw_fd()).unwrap(), "regular file");
        assert!(socket_option(f.as_raw_fd(), libc::SO_TYPE).is_err());
        let a = monotonic_usec();
        assert!(a > 0 && monotonic_usec() >= a);
    }
}
