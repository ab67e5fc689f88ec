//! Every raw syscall rwsgi makes lives here, behind a safe function.
//!
//! The rest of the crate never writes `unsafe` for a syscall: it calls these.

mod fds;
mod forkguard;
pub mod fs;
mod harakiri;
mod inherit;
mod net;
mod procinfo;
mod send;
mod signals;
pub mod users;
mod zombies;
mod zygote;

pub use fds::*;
pub use forkguard::*;
pub use harakiri::*;
pub use inherit::*;
pub use net::*;
pub use procinfo::*;
pub use send::*;
pub use signals::*;
pub use zombies::*;
pub use zygote::*;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

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

/// Forks the process.
///
/// # Safety
/// The caller must be single-threaded (the master is, by design): the child
/// gets only the calling thread, and a lock another thread held would stay
/// locked in it forever.
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller is single-threaded (this function's contract).
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

/// Closes a raw fd (used after fork on inherited fds).
///
/// # Safety
/// The caller must own `fd`, and nothing may use it afterwards: an owner
/// still holding the number (an `OwnedFd`, a `File`) would later read,
/// write or close whatever the kernel gives that number next.
pub unsafe fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and gives it up (this function's contract).
    unsafe {
        libc::close(fd);
    }
}

/// Starts `cmd` with `keep` open in it (their close-on-exec flag cleared
/// in the child only, so the fd numbers stay the same across the exec).
pub fn spawn_keeping(
    cmd: &mut std::process::Command,
    keep: Vec<RawFd>,
) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and calls
    // only fcntl, which is async-signal-safe, on fds the child inherited.
    unsafe {
        cmd.pre_exec(move || keep.iter().try_for_each(|&fd| set_cloexec(fd, false)));
    }
    cmd.spawn()
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

pub fn getpid() -> libc::pid_t {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

pub fn getppid() -> libc::pid_t {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

/// `now + after`, saturating: a duration too long to add to the clock (an
/// overflow would panic) means "a century from now", i.e. never.
pub fn deadline(now: std::time::Instant, after: std::time::Duration) -> std::time::Instant {
    const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);
    now.checked_add(after.min(CENTURY))
        .or_else(|| now.checked_add(std::time::Duration::from_secs(86_400)))
        .unwrap_or(now)
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

/// An anonymous `MAP_SHARED` mapping that forked children share with the master.
pub struct SharedMap {
    ptr: *mut u8,
    len: usize,
    /// Unmapped on drop; false for an [`SharedMap::alias`].
    owned: bool,
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
            owned: true,
        })
    }

    /// A second handle on the same mapping that never unmaps it.
    ///
    /// # Safety
    /// The caller keeps the original mapped for as long as the alias is
    /// used (a worker: the master's mapping is never unmapped in the child,
    /// which ends with `_exit`).
    pub unsafe fn alias(&self) -> SharedMap {
        SharedMap {
            ptr: self.ptr,
            len: self.len,
            owned: false,
        }
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Size of the mapping in bytes.
    pub fn size(&self) -> usize {
        self.len
    }
}

// SAFETY: the handle only carries the mapping's address and size; it never
// reads or writes through the pointer itself. Its users (the scoreboard)
// access the memory through atomics only, which is sound from any thread.
unsafe impl Send for SharedMap {}
// SAFETY: as for Send: `&SharedMap` exposes nothing but the address.
unsafe impl Sync for SharedMap {}

impl Drop for SharedMap {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // SAFETY: ptr/len are exactly what mmap returned.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

pub fn getgid() -> u32 {
    // SAFETY: getgid cannot fail.
    unsafe { libc::getgid() }
}

/// Detaches from the terminal: fork (the parent exits 0), a new session,
/// fork again (so the daemon can never reacquire a terminal), stdin from
/// /dev/null.
///
/// # Safety
/// As for [`fork`]: the caller must be single-threaded.
pub unsafe fn daemonize() -> io::Result<()> {
    for step in 0..2 {
        // SAFETY: single-threaded (this function's contract).
        match unsafe { fork() }? {
            Forked::Parent(_) => exit_now(0),
            Forked::Child => {}
        }
        if step == 0 {
            // SAFETY: setsid has no memory effects.
            cvt(unsafe { libc::setsid() })?;
        }
    }
    let null = std::fs::File::open("/dev/null")?;
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 onto stdin; `null` is valid for the call.
    cvt(unsafe { libc::dup2(null.as_raw_fd(), 0) })?;
    Ok(())
}

/// Sets the file-mode creation mask.
pub fn set_umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe {
        libc::umask(mask as libc::mode_t);
    }
}

/// Drops to `gid`/`uid` (supplementary groups reduced to `gid`). Order
/// matters: groups and gid first, while we still may change them.
pub fn drop_privileges(uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    if uid.is_some() || gid.is_some() {
        // Never keep root's supplementary groups: only `gid`, or none.
        let groups: Vec<libc::gid_t> = gid.into_iter().collect();
        // SAFETY: `groups` is a valid array of `groups.len()` gids.
        cvt(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })?;
    }
    if let Some(gid) = gid {
        // SAFETY: setgid has no memory effects.
        cvt(unsafe { libc::setgid(gid) })?;
    }
    if let Some(uid) = uid {
        // SAFETY: setuid has no memory effects.
        cvt(unsafe { libc::setuid(uid) })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn deadlines_never_overflow() {
        let now = Instant::now();
        assert_eq!(
            super::deadline(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let far = super::deadline(now, Duration::MAX);
        assert!(far > now + Duration::from_secs(50 * 365 * 86_400));
        assert!(super::deadline(now, Duration::from_secs(u64::MAX)) >= far);
    }
}
