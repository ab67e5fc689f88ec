//! Carrying out what the pool decides (`pool::Command`, `pool::Spawn`): the
//! signals, the kills, the scoreboard's marks and the forks — forked by the
//! master itself, or with `--preload` by the template.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use super::pool::{Command, Spawn};
use super::Master;
use crate::scoreboard::{now_us, WorkerState};
use crate::supervise::WorkerContext;
use crate::sys::{self, Forked};

/// How long to wait before forking again after a fork failed.
const FORK_RETRY: Duration = Duration::from_secs(1);

impl Master {
    /// Carries out the pool's commands.
    pub(super) fn execute(&self, commands: Vec<Command>) {
        for c in commands {
            match c {
                Command::Stop { pid, slot } => {
                    self.scoreboard.slot(slot).set_state(WorkerState::Stopping);
                    sys::kill(pid, libc::SIGTERM);
                }
                Command::Kill { pid } => sys::kill(pid, libc::SIGKILL),
                Command::Harakiri { pid } => sys::kill(pid, sys::HARAKIRI_SIGNAL),
                Command::Signal { pid, signal } => sys::kill(pid, signal),
            }
        }
    }

    /// Forks the workers the pool asks for, one at a time, until it asks
    /// for no more (it then says, through `wake_at`, when to ask again).
    pub(super) fn fill_pool(&mut self) {
        if self.pool.is_closed() {
            return; // draining: nothing is forked any more
        }
        if self.templates.as_ref().is_some_and(|t| !t.ready()) {
            // Forks wait for the template: its ready notice fills the pool.
            self.pool.defer_forks();
            return;
        }
        let now = Instant::now();
        let mut inherited = None;
        while let Some(spawn) = self.pool.next_spawn(now) {
            let fds = inherited.get_or_insert_with(|| self.inherited_fds());
            match self.fork_worker(spawn, fds) {
                Ok((pid, slot)) => self.pool.spawned(spawn, pid, slot, Instant::now()),
                Err(e) => {
                    log::error!("cannot fork a worker: {e}; retrying in 1 s");
                    self.pool.retry_after(Instant::now(), FORK_RETRY);
                    return;
                }
            }
        }
    }

    fn fork_worker(
        &mut self,
        spawn: Spawn,
        inherited: &[RawFd],
    ) -> io::Result<(libc::pid_t, usize)> {
        let Some(slot) = self.scoreboard.free_slot() else {
            return Err(io::Error::other("no free scoreboard slot"));
        };
        self.scoreboard
            .slot(slot)
            .reset(-1, spawn.generation, now_us());
        let ctx = WorkerContext {
            config: &self.config,
            listeners: &self.listeners,
            scoreboard: &self.scoreboard,
            slot,
            id: spawn.id,
            generation: spawn.generation,
            master_pid: sys::getpid(),
            notify_fd: self.notify_write.as_raw_fd(),
        };
        let forked = match &mut self.templates {
            Some(t) => t.fork(&ctx),
            None => {
                let entry = self.entry;
                fork_child(inherited, move || entry(ctx))
            }
        };
        match forked {
            Ok(pid) => {
                self.scoreboard.slot(slot).set_pid(pid);
                Ok((pid, slot))
            }
            Err(e) => {
                self.scoreboard.slot(slot).free();
                Err(e)
            }
        }
    }

    /// The master's private fds, which a forked child closes.
    pub(super) fn inherited_fds(&self) -> Vec<RawFd> {
        let mut inherited = vec![
            self.poll.as_raw_fd(),
            self.signal_fd.as_raw_fd(),
            self.notify_read.as_raw_fd(),
        ];
        inherited.extend(self.endpoints.fds());
        inherited.extend(self.upgrade_fds());
        inherited.extend(self.templates.iter().flat_map(|t| t.fds()));
        inherited
    }
}

/// Forks a child of the master (a worker, or the preload template). The
/// child closes the master's private fds, restores the default disposition
/// of the master's signals (they are still blocked, so none is lost or
/// misrouted), runs `body` and never returns.
pub(super) fn fork_child(
    inherited: &[RawFd],
    body: impl FnOnce() -> i32,
) -> io::Result<libc::pid_t> {
    sys::block_all_signals(true);
    // SAFETY: the master is single-threaded (DESIGN §1).
    let forked = unsafe { sys::fork() };
    match forked {
        Ok(Forked::Child) => {
            for &fd in inherited {
                // SAFETY: the master's private fds; the child never uses
                // them, and never drops their owners (it ends in _exit).
                unsafe { sys::close(fd) };
            }
            let _ = sys::default_signals(super::signals::HANDLED);
            // A panic in the child must never unwind into the master's
            // frames (and their destructors).
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
            sys::exit_now(code);
        }
        Ok(Forked::Parent(pid)) => {
            sys::block_all_signals(false);
            Ok(pid)
        }
        Err(e) => {
            sys::block_all_signals(false);
            Err(e)
        }
    }
}
