//! Every raw syscall rwsgi makes lives here, behind a safe function.
//!
//! The rest of the crate never writes `unsafe` for a syscall: it calls these.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Result of [`fork`], seen from each side.
pub enum Forked {
    Parent(libc::pid_t),
    Child,
}

/// Forks the process. Only sound while the caller is single-threaded (the master
/// is, by design), so the child inherits no lock held by another thread.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the master is single-threaded (DESIGN §1), so no other thread can
    // hold a lock the child would inherit locked.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// Ends the process at once, without running Rust or libc exit handlers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {} ({})", s, signal_name(*s)),
        }
    }
}

/// Reaps one exited child without blocking: `None` when no child has exited.
pub fn reap_any() -> io::Result<Option<(libc::pid_t, ExitStatus)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes only to `status`, a valid local.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid == -1 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ECHILD) => Ok(None),
            _ => Err(err),
        };
    }
    if pid == 0 {
        return Ok(None);
    }
    let how = if libc::WIFSIGNALED(status) {
        ExitStatus::Signal(libc::WTERMSIG(status))
    } else {
        ExitStatus::Code(libc::WEXITSTATUS(status))
    };
    Ok(Some((pid, how)))
}

/// Sends `sig` to `pid`; a process that is already gone is not an error.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill has no memory effects; a stale pid yields ESRCH, ignored.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A short human name for a signal number, for logs.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        _ => "unknown signal",
    }
}

/// Creates a non-blocking, close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Closes a raw fd the caller knows it owns (used after fork on inherited fds).
pub fn close(fd: RawFd) {
    // SAFETY: closing an fd only affects the fd table; callers pass fds they own.
    unsafe {
        libc::close(fd);
    }
}

/// Sets or clears close-on-exec on an fd.
pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on an integer fd has no memory effects.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, new) })?;
    Ok(())
}

/// Writes a whole buffer to a non-blocking pipe; used for tiny notifications.
pub fn write_pipe(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: data is a valid slice for its length.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Reads from a non-blocking fd into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a valid, writable slice for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

// ---------------------------------------------------------------- signals

/// Write end of the current process's signal self-pipe (-1 when none).
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn record_signal(sig: libc::c_int) {
    // Only async-signal-safe work: one write(2) of the signal number, errno kept.
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: errno location is thread-local and valid; write is async-signal-safe.
        unsafe {
            let errno = *libc::__errno_location();
            let byte = sig as u8;
            libc::write(fd, (&byte as *const u8).cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

fn set_handler(sig: libc::c_int, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid initial value; we fill the fields we use.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: sa_mask is a valid sigset_t inside `action`.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: action is fully initialised; the old action is not needed.
    cvt(unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) })?;
    Ok(())
}

/// Routes `signals` to a fresh self-pipe and returns its read end. The handler
/// only writes the signal number to the pipe; all work happens in the loop.
/// Calling it again (in a forked child) replaces the previous pipe.
pub fn install_signal_pipe(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    let (read, write) = pipe()?;
    let old = SIGNAL_PIPE.swap(write.as_raw_fd(), Ordering::SeqCst);
    std::mem::forget(write); // lives as long as the process
    if old >= 0 {
        close(old);
    }
    for &sig in signals {
        set_handler(sig, record_signal as *const () as libc::sighandler_t)?;
    }
    Ok(read)
}

/// Ignores `signals` (SIG_IGN).
pub fn ignore_signals(signals: &[libc::c_int]) -> io::Result<()> {
    for &sig in signals {
        set_handler(sig, libc::SIG_IGN)?;
    }
    Ok(())
}

/// Restores the default disposition of `signals`.
pub fn default_signals(signals: &[libc::c_int]) -> io::Result<()> {
    for &sig in signals {
        set_handler(sig, libc::SIG_DFL)?;
    }
    Ok(())
}

/// Blocks (true) or unblocks (false) every signal in this thread. The master
/// blocks around fork so no signal reaches the child before it has replaced
/// the master's handlers with its own.
pub fn block_all_signals(block: bool) {
    // SAFETY: set is a valid sigset_t we initialise with sigfillset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        let how = if block {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// Drains a signal pipe, returning the signal numbers read.
pub fn drain_signals(fd: RawFd, out: &mut Vec<i32>) {
    let mut buf = [0u8; 64];
    while let Ok(n) = read(fd, &mut buf) {
        if n == 0 {
            break;
        }
        out.extend(buf[..n].iter().map(|&b| i32::from(b)));
    }
}

/// Asks the kernel to send `sig` to this process when its parent dies, so
/// workers never outlive a SIGKILLed master.
pub fn set_parent_death_signal(sig: libc::c_int) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes an integer argument only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0);
    }
}

pub fn getpid() -> libc::pid_t {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

pub fn getppid() -> libc::pid_t {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

/// Raises the soft open-file limit to the hard limit: every keep-alive client
/// costs a worker one fd.
pub fn raise_nofile_limit() {
    // SAFETY: rlimit is a plain struct that getrlimit fills in.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

// ---------------------------------------------------------------- socket I/O

/// Waits until `fd` is writable or `deadline` passes.
fn wait_writable(fd: RawFd, deadline: Instant) -> io::Result<()> {
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
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => {
                    wait_writable(fd, Instant::now() + timeout)?;
                    continue;
                }
                io::ErrorKind::Interrupted => continue,
                _ => return Err(err),
            }
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

// ---------------------------------------------------------------- shared memory

/// An anonymous `MAP_SHARED` mapping that forked children share with the master.
pub struct SharedMap {
    ptr: *mut u8,
    len: usize,
}

impl SharedMap {
    pub fn new(len: usize) -> io::Result<SharedMap> {
        // SAFETY: an anonymous mapping with no address hint; the kernel picks it
        // and zero-fills it. We check for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedMap {
            ptr: ptr.cast(),
            len,
        })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Size of the mapping in bytes.
    pub fn size(&self) -> usize {
        self.len
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// (Re-)listens on a bound socket with `backlog`; on a listening socket this
/// only changes the backlog.
pub fn listen(fd: RawFd, backlog: u32) -> io::Result<()> {
    let backlog = backlog.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: listen on an integer fd has no memory effects.
    cvt(unsafe { libc::listen(fd, backlog) })?;
    Ok(())
}

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

/// Size of the regular file open as `fd`; `None` for anything else (pipes,
/// sockets, ttys) or an invalid fd.
pub fn regular_file_size(fd: RawFd) -> Option<u64> {
    // SAFETY: a zeroed stat is valid; fstat fills it for a valid fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid, writable stat struct.
    if unsafe { libc::fstat(fd, &mut st) } != 0 || (st.st_mode & libc::S_IFMT) != libc::S_IFREG {
        return None;
    }
    u64::try_from(st.st_size).ok()
}

/// Sends up to `count` bytes of file `file_fd` from `offset` to socket `fd`
/// with sendfile(2), waiting on a slow peer. Returns the bytes sent (fewer
/// only if the file shrank).
pub fn send_file(
    fd: RawFd,
    file_fd: RawFd,
    offset: u64,
    count: u64,
    timeout: Duration,
) -> io::Result<u64> {
    let mut off = i64::try_from(offset).map_err(|_| io::Error::other("file offset too large"))?;
    let mut sent = 0u64;
    while sent < count {
        let chunk = (count - sent).min(1 << 30) as usize;
        // SAFETY: `off` is a valid local the kernel updates; fds are plain integers.
        let n = unsafe { libc::sendfile(fd, file_fd, &mut off, chunk) };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => {
                    wait_writable(fd, Instant::now() + timeout)?;
                    continue;
                }
                io::ErrorKind::Interrupted => continue,
                _ => return Err(err),
            }
        }
        if n == 0 {
            break;
        }
        sent += n as u64;
    }
    Ok(sent)
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

pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

pub fn getgid() -> u32 {
    // SAFETY: getgid cannot fail.
    unsafe { libc::getgid() }
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
