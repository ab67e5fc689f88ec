//! A worker process: after fork it cleans up, starts Python, imports the
//! app, tells the master it is ready and runs its event loop.

mod access;
mod conn;
pub mod drive;
mod event_loop;
mod recycle;
mod serve;
mod slab;
mod static_hook;

use crate::master::{Notice, WorkerContext, EXIT_APP_LOAD_ERROR};
use crate::scoreboard::WorkerState;
use crate::sys;
use crate::wsgi::{self, Bridge};

/// Signals the worker handles itself (through its own self-pipe): TERM stops
/// this worker (reload, recycling); USR2 is the master's server-wide drain
/// (this worker also shuts the shared listeners); INT and QUIT stop it now.
/// USR1 (forwarded by the master) reopens the log file.
const HANDLED: &[libc::c_int] = &[
    libc::SIGTERM,
    libc::SIGUSR2,
    libc::SIGUSR1,
    libc::SIGINT,
    libc::SIGQUIT,
];
/// Signals meant for the master only; a worker ignores them.
const IGNORED: &[libc::c_int] = &[libc::SIGHUP, libc::SIGTTIN, libc::SIGTTOU, libc::SIGPIPE];

/// The worker entry point the master runs in each forked child.
pub fn entry(ctx: WorkerContext<'_>) -> i32 {
    // Handlers first, before Python: Python then leaves them alone, and a
    // request in progress finishes when TERM arrives (DESIGN §4).
    let signal_fd = match sys::install_signal_pipe(HANDLED).and_then(|fd| {
        sys::ignore_signals(IGNORED)?;
        Ok(fd)
    }) {
        Ok(fd) => fd,
        Err(e) => {
            log::error!("worker {}: cannot install signal handlers: {e}", ctx.id);
            return 1;
        }
    };
    sys::block_all_signals(false);
    let slot = ctx.scoreboard.slot(ctx.slot);
    let process = &ctx.config.process;
    if let Err(e) = sys::drop_privileges(process.uid, process.gid) {
        log::error!(
            "worker {}: cannot switch to --uid {:?} --gid {:?}: {e}",
            ctx.id,
            process.uid,
            process.gid
        );
        return EXIT_APP_LOAD_ERROR;
    }
    // After the uid/gid change: the kernel clears the parent-death signal
    // whenever the credentials change.
    sys::set_parent_death_signal(libc::SIGTERM);
    if sys::getppid() != ctx.master_pid {
        return 1; // the master died between fork and here
    }

    if let Some(dir) = &ctx.config.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            log::error!("--chdir {}: {e}", dir.display());
            return EXIT_APP_LOAD_ERROR;
        }
    }
    let bridge = match Bridge::start(ctx.config) {
        Ok(b) => b,
        Err(e) => {
            log::error!("worker {}: {e}", ctx.id);
            return EXIT_APP_LOAD_ERROR;
        }
    };

    let mut event_loop = match event_loop::EventLoop::new(&ctx, signal_fd, bridge) {
        Ok(l) => l,
        Err(e) => {
            log::error!("worker {}: cannot set up its event loop: {e}", ctx.id);
            return 1;
        }
    };
    slot.set_state(WorkerState::Ready);
    if let Err(e) = sys::write_pipe(
        ctx.notify_fd,
        &Notice::Ready.encode(ctx.slot, sys::getpid()),
    ) {
        log::warn!("worker {}: cannot notify the master: {e}", ctx.id);
    }
    log::debug!(
        "worker {} (pid {}, generation {}) serving",
        ctx.id,
        sys::getpid(),
        ctx.generation
    );

    wsgi::with_gil(|gil| event_loop.run(gil));
    event_loop.shutdown();
    0
}
