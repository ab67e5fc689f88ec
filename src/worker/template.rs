//! `--preload`, the template's side: a process that imports the app once,
//! freezes the garbage collector's view of it, and forks a worker each time
//! the master asks (see `master/template.rs` for the protocol). Each worker
//! then does only what must be per process: its own signal pipe, its
//! parent-death signal, the interpreter's after-fork duties, the post-fork
//! hooks, and its app threads.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use crate::supervise::template::{
    encode_reply, ForkRequest, TemplatePipes, REQUEST_LEN, TEMPLATE_SLOT,
};
use crate::supervise::{Notice, WorkerContext, EXIT_APP_LOAD_ERROR};
use crate::sys::{self, Forked};
use crate::wsgi::Bridge;

/// TERM, INT and QUIT stop the template (it serves nobody: it just exits);
/// USR1 reopens the log file so later workers inherit the new one.
const HANDLED: &[libc::c_int] = &[libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGUSR1];
const IGNORED: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGPIPE,
    libc::SIGUSR2,
];

/// The template's entry point (the master's `TemplateEntry`).
pub fn entry(ctx: WorkerContext<'_>, pipes: TemplatePipes) -> i32 {
    let signal_fd = match sys::install_signal_pipe(HANDLED).and_then(|fd| {
        sys::ignore_signals(IGNORED)?;
        Ok(fd)
    }) {
        Ok(fd) => fd,
        Err(e) => {
            log::error!("template: cannot install signal handlers: {e}");
            return 1;
        }
    };
    sys::block_all_signals(false);
    // Once for every worker: the uid/gid change and the chdir happen before
    // the import, so the app imports as it will run.
    let process = &ctx.config.process;
    if let Err(e) = sys::drop_privileges(process.uid, process.gid) {
        log::error!(
            "template: cannot switch to --uid {:?} --gid {:?}: {e}",
            process.uid,
            process.gid
        );
        return EXIT_APP_LOAD_ERROR;
    }
    if sys::kill_on_parent_death().is_err() || sys::getppid() != ctx.master_pid {
        return 1;
    }
    if let Some(dir) = &ctx.config.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            log::error!("--chdir {}: {e}", dir.display());
            return EXIT_APP_LOAD_ERROR;
        }
    }
    let sockets_before: HashSet<RawFd> =
        sys::open_sockets().into_iter().map(|(fd, _)| fd).collect();
    let started = Instant::now();
    let argv: Vec<String> = std::env::args().collect();
    let bridge = match Bridge::start(&super::bridge_settings(ctx.config, &argv)) {
        Ok(b) => Arc::new(b),
        Err(e) => {
            log::error!("template: {e}");
            return EXIT_APP_LOAD_ERROR;
        }
    };
    warn_fork_safety(&bridge, &sockets_before);
    if let Err(e) = bridge.freeze() {
        log::warn!("template: {e}; workers will share less memory");
    }
    log::info!(
        "template (pid {}) imported the app in {} ms; garbage collector frozen",
        sys::getpid(),
        started.elapsed().as_millis()
    );
    let ready = Notice::Ready.encode(TEMPLATE_SLOT, sys::getpid());
    if let Err(e) = sys::write_pipe(ctx.notify_fd, &ready) {
        log::error!("template: cannot notify the master: {e}");
        return 1;
    }
    serve_requests(&ctx, pipes, signal_fd, &bridge)
}

/// The template's loop: fork a worker per request until told to stop.
fn serve_requests(
    ctx: &WorkerContext<'_>,
    pipes: TemplatePipes,
    signal_fd: OwnedFd,
    bridge: &Arc<Bridge>,
) -> i32 {
    let mut sigs = Vec::new();
    let mut pending = Vec::new();
    loop {
        let fds = [signal_fd.as_raw_fd(), pipes.commands];
        if let Err(e) = sys::wait_any_readable(&fds) {
            log::error!("template: poll failed: {e}");
            return 1;
        }
        sys::drain_signals(signal_fd.as_raw_fd(), &mut sigs);
        for sig in sigs.drain(..) {
            match sig {
                libc::SIGUSR1 => crate::process::reopen_log(ctx.config),
                _ => return 0,
            }
        }
        let mut buf = [0u8; REQUEST_LEN * 8];
        match sys::read(pipes.commands, &mut buf) {
            Ok(0) => return 0, // the master is gone
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::error!("template: reading a request: {e}");
                return 1;
            }
        }
        while pending.len() >= REQUEST_LEN {
            let Some(req) = ForkRequest::decode(&pending[..REQUEST_LEN]) else {
                return 1;
            };
            pending.drain(..REQUEST_LEN);
            // Signals stay blocked across the fork: until the worker has its
            // own signal pipe, one would land in the template's.
            sys::block_all_signals(true);
            // SAFETY: the template forks from its main thread; threads an
            // import started were warned about (warn_fork_safety), the risk
            // every preloading server (os.fork) shares.
            let forked = bridge.fork(
                || unsafe { sys::double_fork() },
                |f| matches!(f, Ok(Forked::Child)),
            );
            match forked {
                Ok(Forked::Child) => {
                    for fd in [signal_fd.as_raw_fd(), pipes.commands, pipes.replies] {
                        // SAFETY: the template's own fds, unused by the worker;
                        // `signal_fd`'s owner is forgotten just below, and the
                        // pipes are raw numbers nothing else owns.
                        unsafe { sys::close(fd) };
                    }
                    std::mem::forget(signal_fd);
                    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        worker(ctx, req, Arc::clone(bridge))
                    }))
                    .unwrap_or(101);
                    sys::exit_now(code);
                }
                Ok(Forked::Parent(pid)) => {
                    sys::block_all_signals(false);
                    let _ = sys::write_pipe(pipes.replies, &encode_reply(req.seq, pid));
                }
                Err(e) => {
                    sys::block_all_signals(false);
                    log::error!("template: cannot fork a worker: {e}");
                    let errno = e.raw_os_error().unwrap_or(libc::EIO);
                    let _ = sys::write_pipe(pipes.replies, &encode_reply(req.seq, -errno));
                }
            }
        }
    }
}

/// In the forked worker: wait to be the master's child, then the per-process
/// setup, the post-fork hooks, and serve.
fn worker(template: &WorkerContext<'_>, req: ForkRequest, bridge: Arc<Bridge>) -> i32 {
    let ctx = WorkerContext {
        slot: req.slot,
        id: req.id,
        generation: req.generation,
        ..*template
    };
    if !sys::wait_reparented(ctx.master_pid) {
        return 1; // the master died meanwhile
    }
    let signal_fd = match super::prepare(&ctx, false) {
        Ok(fd) => fd,
        Err(code) => return code,
    };
    if let Err(code) = super::post_fork(&ctx, &bridge) {
        return code;
    }
    super::serve(ctx, signal_fd, bridge)
}

/// Threads and sockets an import leaves behind do not fork well: say which.
fn warn_fork_safety(bridge: &Bridge, sockets_before: &HashSet<RawFd>) {
    let threads = sys::other_threads();
    if !threads.is_empty() {
        let python = bridge.other_python_threads();
        log::warn!(
            "preload: after the import the template runs {} thread(s) besides the main one: {} \
             (Python names: {}). A fork copies only the forking thread: in each worker these \
             threads are gone, and a lock one of them held stays locked for ever. Start them \
             in a post-fork hook (@rwsgi.postfork or --post-fork), or use --lazy-apps",
            threads.len(),
            threads.join(", "),
            if python.is_empty() {
                "none; native threads".to_string()
            } else {
                python.join(", ")
            }
        );
    }
    let sockets: Vec<String> = sys::open_sockets()
        .into_iter()
        .filter(|(fd, _)| !sockets_before.contains(fd))
        .map(|(fd, peer)| format!("fd {fd} (peer {peer})"))
        .collect();
    if !sockets.is_empty() {
        log::warn!(
            "preload: the import opened {} socket(s): {}. Every worker inherits the same \
             connection, and their traffic interleaves on it: close it before the fork and \
             open one per worker in a post-fork hook (e.g. Django's \
             django.db.connections.close_all(), SQLAlchemy's engine.dispose(close=False))",
            sockets.len(),
            sockets.join(", ")
        );
    }
}
