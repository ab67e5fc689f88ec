//! Signal dispositions and the self-pipe: handlers only record the signal;
//! all work happens in the loops.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

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
