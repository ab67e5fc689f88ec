//! Where log lines go: a descriptor rwsgi owns, not fd 2. An app may close
//! fd 2 (or 1); the next socket accepted would then take that number, and a
//! logger writing to "fd 2" would send other clients' log lines into it. So
//! the master duplicates stderr at start to a close-on-exec fd numbered 3 or
//! above, the workers inherit it, and every log line (env_logger's and the
//! access log's) is one write(2) to it. `--logto` and its reopen on SIGUSR1
//! replace that descriptor in place (dup3), keeping the number.
//!
//! The number is process-global because the logger is: `log`'s macros reach
//! it from any thread.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};

use crate::sys;

/// The log descriptor. fd 2 until [`init`] runs (unit tests, fuzz targets).
static FD: AtomicI32 = AtomicI32::new(2);

/// Writes to the log descriptor, each `write` one write(2).
pub struct Sink;

impl io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::write_fd(FD.load(Relaxed), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The log descriptor (for Python's faulthandler, which writes to an fd).
pub fn fd() -> std::os::fd::RawFd {
    FD.load(Relaxed)
}

/// Called first thing in the master: fills any closed fd 0–2 with
/// /dev/null, then takes a private copy of stderr for the log.
pub fn init() -> io::Result<()> {
    sys::occupy_std_fds()?;
    let fd = sys::dup_private(2)?;
    FD.store(fd, Relaxed);
    Ok(())
}

/// Which of fds 1 and 2 follow the log to a new file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum StdFds {
    /// Both (at start: the app's stdout and stderr go to the log file).
    Always,
    /// Only those still open on the current log file (on reopen: an fd the
    /// app closed may now be a client's socket, and is left alone).
    IfStillLog,
}

/// Points the log (and fds 1 and 2, per `std`) at `file`.
pub fn redirect(file: &std::fs::File, std: StdFds) -> io::Result<()> {
    let log = FD.load(Relaxed);
    let current = sys::fd_identity(log);
    for target in [1, 2] {
        if std == StdFds::Always || (current.is_some() && sys::fd_identity(target) == current) {
            sys::replace_fd(file.as_raw_fd(), target, false)?;
        }
    }
    if log <= 2 {
        // init() did not run (or failed): take a private number now.
        FD.store(sys::dup_private(file.as_raw_fd())?, Relaxed);
        return Ok(());
    }
    sys::replace_fd(file.as_raw_fd(), log, true)
}
