//! A worker process: after fork it cleans up, starts Python, imports the
//! app, tells the master it is ready and runs its event loop.

mod access;
mod clock;
mod conn;
mod connections;
#[cfg(any(test, feature = "fuzzing"))]
pub mod drive;
mod event_loop;
mod job;
mod listeners;
mod outbound;
mod recycle;
mod serve;
mod session;
mod slab;
mod static_hook;
pub mod template;
mod threads;

use std::sync::Arc;

use mio::Poll;

use crate::config::{AppSource, Config};
use crate::scoreboard::WorkerState;
use crate::supervise::{Notice, WorkerContext, EXIT_APP_LOAD_ERROR};
use crate::sys;
use crate::wsgi::{self, Bridge};
use connections::{Connections, Dispatch};
use event_loop::EventLoop;
use listeners::Listeners;

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

/// What the bridge needs from the configuration (it sees no `Config`).
fn bridge_settings<'a>(config: &'a Config, argv: &'a [String]) -> wsgi::Settings<'a> {
    wsgi::Settings {
        home: config.home.as_deref(),
        pythonpath: &config.pythonpath,
        app: match &config.app {
            AppSource::Module { module, callable } => wsgi::AppSource::Module { module, callable },
            AppSource::File { path, callable } => wsgi::AppSource::File { path, callable },
        },
        argv,
        threads: config.threads,
        preload: config.preload,
        post_fork: config.post_fork.as_deref(),
    }
}

/// The worker entry point the master runs in each forked child.
pub fn entry(ctx: WorkerContext<'_>) -> i32 {
    let signal_fd = match prepare(&ctx, true) {
        Ok(fd) => fd,
        Err(code) => return code,
    };
    if let Some(dir) = &ctx.config.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            log::error!("--chdir {}: {e}", dir.display());
            return EXIT_APP_LOAD_ERROR;
        }
    }
    let argv: Vec<String> = std::env::args().collect();
    let bridge = match Bridge::start(&bridge_settings(ctx.config, &argv)) {
        Ok(b) => Arc::new(b),
        Err(e) => {
            log::error!("worker {}: {e}", ctx.id);
            return EXIT_APP_LOAD_ERROR;
        }
    };
    // Post-fork hooks run in both modes, so an app behaves the same with
    // and without --preload.
    if let Err(code) = post_fork(&ctx, &bridge) {
        return code;
    }
    serve(ctx, signal_fd, bridge)
}

/// Runs the app's post-fork hooks; a failing one stops the worker as an
/// app that does not load (the crash-loop back-off applies).
fn post_fork(ctx: &WorkerContext<'_>, bridge: &Bridge) -> Result<(), i32> {
    match bridge.run_post_fork() {
        Ok(0) => Ok(()),
        Ok(n) => {
            log::debug!("worker {}: {n} post-fork hook(s) ran", ctx.id);
            Ok(())
        }
        Err(e) => {
            log::error!("worker {}: {e}", ctx.id);
            Err(EXIT_APP_LOAD_ERROR)
        }
    }
}

/// The per-process setup before Python: the worker's own signal pipe, then
/// (with `credentials`, which a preloaded worker's template already did)
/// the uid/gid change, then the parent-death signal. Err is the exit code.
fn prepare(ctx: &WorkerContext<'_>, credentials: bool) -> Result<std::os::fd::OwnedFd, i32> {
    // Handlers first, before Python: Python then leaves them alone, and a
    // request in progress finishes when TERM arrives (DESIGN §4).
    let signal_fd = match sys::install_signal_pipe(HANDLED).and_then(|fd| {
        sys::ignore_signals(IGNORED)?;
        Ok(fd)
    }) {
        Ok(fd) => fd,
        Err(e) => {
            log::error!("worker {}: cannot install signal handlers: {e}", ctx.id);
            return Err(1);
        }
    };
    sys::block_all_signals(false);
    // Before faulthandler registers its stack dump (in `serve`), which chains
    // to this handler (see sys::harakiri).
    if let Err(e) = sys::install_harakiri_handler() {
        log::warn!("worker {}: no 504 on harakiri: {e}", ctx.id);
    }
    let process = &ctx.config.process;
    if credentials {
        if let Err(e) = sys::drop_privileges(process.uid, process.gid) {
            log::error!(
                "worker {}: cannot switch to --uid {:?} --gid {:?}: {e}",
                ctx.id,
                process.uid,
                process.gid
            );
            return Err(EXIT_APP_LOAD_ERROR);
        }
    }
    // After the uid/gid change: the kernel clears the parent-death signal
    // whenever the credentials change. A worker whose master died lets go of
    // the listeners at once, even inside a long request (DESIGN §2).
    let listener_fds: Vec<_> = ctx.listeners.iter().map(|l| l.raw_fd()).collect();
    if let Err(e) = sys::release_listeners_on_parent_death(&listener_fds) {
        log::error!("worker {}: cannot set its parent-death signal: {e}", ctx.id);
        return Err(1);
    }
    if sys::getppid() != ctx.master_pid {
        return Err(1); // the master died between fork and here
    }
    Ok(signal_fd)
}

/// Starts the app threads (after any fork: threads do not survive one) and
/// the I/O loop, tells the master it is ready, and serves until stopped.
fn serve(ctx: WorkerContext<'_>, signal_fd: std::os::fd::OwnedFd, bridge: Arc<Bridge>) -> i32 {
    let threads = ctx.config.threads;
    let slot = ctx.scoreboard.slot(ctx.slot);
    if ctx.config.recycle.harakiri.is_some() {
        if let Err(e) = bridge.dump_stacks_on(sys::HARAKIRI_SIGNAL, crate::log::sink::fd()) {
            log::warn!("worker {}: {e}", ctx.id);
        }
    }
    // App threads outlive any borrow of the master's scoreboard.
    let scoreboard = ctx.scoreboard.leak_for_worker();
    let cores = scoreboard.cores(ctx.slot);
    for core in cores {
        core.reset();
    }
    let set_up = wsgi::with_gil(|gil| {
        let (dispatch, poll, app_threads) = if threads > 1 {
            let poll = Poll::new().map_err(|e| format!("cannot set up its event loop: {e}"))?;
            let waker = mio::Waker::new(poll.registry(), event_loop::WAKER)
                .map_err(|e| format!("cannot set up its event loop: {e}"))?;
            let shared = Arc::new(threads::Shared::new(
                waker,
                threads,
                scoreboard.slot(ctx.slot),
            ));
            let app_threads = threads::spawn(&shared, &bridge, gil, threads, ctx.id, cores)?;
            (Dispatch::Pool(shared), poll, Some(app_threads))
        } else {
            let poll = Poll::new().map_err(|e| format!("cannot set up its event loop: {e}"))?;
            let dispatch = Dispatch::Inline {
                caller: Box::new(bridge.caller(gil)?),
                ready: Default::default(),
            };
            (dispatch, poll, None)
        };
        Ok::<_, String>((dispatch, poll, app_threads))
    });
    let (dispatch, poll, app_threads) = match set_up {
        Ok(s) => s,
        Err(e) => {
            log::error!("worker {}: {e}", ctx.id);
            return 1;
        }
    };
    let event_loop = Listeners::new(&ctx, poll.registry()).and_then(|listeners| {
        let s = &ctx.config.static_files;
        let statics = match s.map.is_empty() {
            true => None,
            false => Some(crate::static_files::StaticFiles::open(
                &s.map,
                s.index.as_deref(),
                s.expires,
            )?),
        };
        let conns = Connections::new(
            ctx.config,
            scoreboard.slot(ctx.slot),
            cores,
            ctx.id,
            ctx.slot,
            ctx.notify_fd,
            poll.registry().try_clone()?,
            dispatch,
            statics,
        );
        EventLoop::new(poll, signal_fd, listeners, conns, scoreboard)
    });
    let mut event_loop = match event_loop {
        Ok(l) => l,
        Err(e) => {
            log::error!("worker {}: cannot set up its event loop: {e}", ctx.id);
            return 1;
        }
    };
    slot.set_state(WorkerState::Ready);
    // From the master's fork (or its request to the template) to here: the
    // master reads the notice late when it forks several workers at once.
    let since_fork = crate::scoreboard::now_us().saturating_sub(slot.spawned_at_us());
    log::info!(
        "worker {} (pid {}) ready {:.1} ms after its fork",
        ctx.id,
        sys::getpid(),
        since_fork as f64 / 1000.0
    );
    if let Err(e) = sys::write_pipe(
        ctx.notify_fd,
        &Notice::Ready.encode(ctx.slot, sys::getpid()),
    ) {
        log::warn!("worker {}: cannot notify the master: {e}", ctx.id);
    }
    log::debug!(
        "worker {} (pid {}, generation {}) serving with {threads} app thread(s)",
        ctx.id,
        sys::getpid(),
        ctx.generation
    );
    match app_threads {
        Some(app_threads) => {
            // The I/O thread never holds the GIL: the app threads have it.
            event_loop.run(None);
            event_loop.close_jobs();
            wsgi::with_gil(|gil| app_threads.join(gil));
        }
        None => wsgi::with_gil(|gil| event_loop.run(Some(gil))),
    }
    drop(event_loop);
    bridge.shutdown();
    0
}
