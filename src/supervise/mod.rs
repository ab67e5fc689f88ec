//! The master–worker contract: what the master hands a forked worker, what
//! a worker tells the master (the notice pipe), and what its exit code
//! means. Both `master` and `worker` depend on this module, never on each
//! other (DESIGN.md §6). The master's [`Phase`] is here too, because the
//! systemd notifier reports it.

mod notice;
pub mod template;

use std::os::fd::RawFd;

use crate::config::Config;
use crate::scoreboard::Scoreboard;
use crate::socket::Listener;

pub use notice::{Notice, RetireReason, NOTICE_LEN};

/// What a worker's code receives from the master after fork.
pub struct WorkerContext<'a> {
    pub config: &'a Config,
    pub listeners: &'a [Listener],
    pub scoreboard: &'a Scoreboard,
    /// Index of this worker's scoreboard slot.
    pub slot: usize,
    /// The worker number users see in logs (1-based, reused after death).
    pub id: usize,
    pub generation: u64,
    /// The master's pid, to notice a master that died right after the fork.
    pub master_pid: libc::pid_t,
    /// Write end of the master's notification pipe (see [`Notice`]).
    pub notify_fd: RawFd,
}

/// The worker entry point; its return value is the worker's exit code.
pub type WorkerEntry = fn(WorkerContext<'_>) -> i32;

/// Exit code of a worker that could not load the app (like Gunicorn's 4).
pub const EXIT_APP_LOAD_ERROR: i32 = 4;

/// The master's life, as an explicit state machine (logged on every change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Running,
    Reloading,
    ShuttingDown,
}
