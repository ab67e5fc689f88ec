//! Signal dispositions and the self-pipe: handlers only record the signal;
//! all work happens in the loops.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

use super::{close, cvt, pipe, read};

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

pub(super) fn set_handler(sig: libc::c_int, handler: libc::sighandler_t) -> io::Result<()> {
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
        // SAFETY: the previous pipe's write end was forgotten into
        // SIGNAL_PIPE, which no longer names it: nothing else owns it.
        unsafe { close(old) };
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
fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes an integer argument only.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// The listening fds to let go of when the master dies (a leaked slice,
/// published once per process before the handler is installed).
static LISTENER_FDS: AtomicPtr<RawFd> = AtomicPtr::new(std::ptr::null_mut());
static LISTENER_COUNT: AtomicUsize = AtomicUsize::new(0);
/// An unbound, non-listening socket duplicated over each listener: the port is
/// released, the fd number stays taken (no later open can reuse it under the
/// loop's feet), and accept() on it fails with EINVAL, which the loop treats
/// as a listener shut by a sibling.
static PLACEHOLDER: AtomicI32 = AtomicI32::new(-1);

/// The parent-death signal of a worker. A real-time signal: nothing else
/// sends it, so its handler can assume the master is gone.
fn parent_death_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

extern "C" fn on_parent_death(_sig: libc::c_int) {
    // Only async-signal-safe work: dup3 (or close) per listener, then the
    // self-pipe is told "stop" (SIGTERM), as if the master had asked.
    // SAFETY: errno location is thread-local and valid.
    let errno = unsafe { *libc::__errno_location() };
    let count = LISTENER_COUNT.load(Ordering::Acquire);
    let fds = LISTENER_FDS.load(Ordering::Acquire);
    let placeholder = PLACEHOLDER.load(Ordering::Acquire);
    if !fds.is_null() {
        for i in 0..count {
            // SAFETY: `fds` points to a leaked slice of at least `count` fds,
            // published before `count` (Release/Acquire) and never freed.
            let fd = unsafe { *fds.add(i) };
            // SAFETY: dup3 and close are plain syscalls, async-signal-safe;
            // `fd` is a listener this process owns. O_CLOEXEC keeps the fd
            // as private as the listener was.
            unsafe {
                if placeholder >= 0 {
                    libc::dup3(placeholder, fd, libc::O_CLOEXEC);
                } else {
                    libc::close(fd);
                }
            }
        }
    }
    record_signal(libc::SIGTERM);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Arranges that when this process's parent (the master) dies, the
/// listening sockets `fds` are let go of at once, from the signal handler
/// itself, even while the loop is busy inside a long request; the loop then
/// sees a stop request (SIGTERM in its self-pipe) and finishes what it holds.
/// Call after any uid/gid change (the kernel then clears the setting) and
/// after `install_signal_pipe`.
pub fn release_listeners_on_parent_death(fds: &[RawFd]) -> io::Result<()> {
    register_listeners(fds)?;
    let sig = parent_death_signal();
    set_handler(sig, on_parent_death as *const () as libc::sighandler_t)?;
    set_parent_death_signal(sig)
}

/// Publishes `fds` (and a fresh placeholder) for the parent-death handler.
fn register_listeners(fds: &[RawFd]) -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let placeholder = cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    let old = PLACEHOLDER.swap(placeholder, Ordering::AcqRel);
    if old >= 0 {
        // SAFETY: the previous placeholder was owned by PLACEHOLDER alone,
        // which no longer names it.
        unsafe { close(old) };
    }
    LISTENER_COUNT.store(0, Ordering::Release);
    let leaked: &'static mut [RawFd] = Box::leak(fds.to_vec().into_boxed_slice());
    LISTENER_FDS.store(leaked.as_mut_ptr(), Ordering::Release);
    LISTENER_COUNT.store(leaked.len(), Ordering::Release);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_death_frees_the_port_and_keeps_the_fd_number_taken() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fd = listener.as_raw_fd();
        register_listeners(&[fd]).unwrap();
        on_parent_death(parent_death_signal());
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        // SAFETY: F_GETFD only reads the flags of an fd this test owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert!(flags >= 0 && flags & libc::FD_CLOEXEC != 0, "{flags}");
        let err = listener.accept().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
