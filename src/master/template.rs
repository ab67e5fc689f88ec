//! `--preload`, the master's side: the template process (a zygote) that
//! imports the app once and forks workers on request.
//!
//! The master forks the template like a worker and hands it two pipes: fork
//! requests go down one, the new worker's pid comes back up the other. The
//! template double-forks, and since the master is a child subreaper
//! (DESIGN-NOTES 26) each worker becomes the master's child: reaped,
//! signalled and supervised exactly like a worker the master forked. A
//! request is answered in milliseconds, so the master waits for the answer
//! (with a deadline) and the pool's bookkeeping stays synchronous.
//!
//! HUP starts a second template with the new code; the old one keeps
//! forking until the new one is ready, so a version that does not import
//! changes nothing.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::supervise::template::{
    decode_reply, ForkRequest, TemplateEntry, TemplatePipes, REPLY_LEN,
};
use crate::supervise::WorkerContext;
use crate::sys::{self, ExitStatus};

/// Longest wait for a template's answer to a fork request.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// A template restarted after dying before it was ready waits this long
/// after the second such death in a row, doubling up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Why a template was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first one, at start-up.
    Boot,
    /// HUP: the new code.
    Reload,
    /// The previous one died.
    Restart,
}

struct Process {
    pid: libc::pid_t,
    commands: OwnedFd,
    replies: OwnedFd,
    why: Start,
    started: Instant,
}

/// What a reaped template meant.
pub enum TemplateExit {
    /// One we had stopped (replaced, superseded, or shutting down).
    Expected,
    /// The serving template died; workers keep serving, it is restarted.
    Died,
    /// A starting template died: its code did not load (`load_error`) or it
    /// was killed.
    Failed { why: Start, load_error: bool },
}

pub struct Templates {
    entry: TemplateEntry,
    /// The ready template workers are forked from.
    current: Option<Process>,
    /// A template still importing (start-up, reload or restart).
    next: Option<Process>,
    /// During a reload, the template of the generation it falls back to,
    /// kept until the new workers are all ready.
    previous: Option<Process>,
    /// Stopped templates not reaped yet.
    stopped: Vec<libc::pid_t>,
    seq: u32,
    /// Templates in a row that died before they were ready.
    failures: u32,
    restart_at: Option<Instant>,
}

impl Templates {
    pub fn new(entry: TemplateEntry) -> Templates {
        Templates {
            entry,
            current: None,
            next: None,
            previous: None,
            stopped: Vec::new(),
            seq: 0,
            failures: 0,
            restart_at: None,
        }
    }

    /// A template is ready to fork workers.
    pub fn ready(&self) -> bool {
        self.current.is_some()
    }
    /// No template process is left (to wait for at shutdown).
    pub fn is_empty(&self) -> bool {
        self.current.is_none()
            && self.next.is_none()
            && self.previous.is_none()
            && self.stopped.is_empty()
    }
    pub fn starting(&self) -> Option<Start> {
        self.next.as_ref().map(|p| p.why)
    }
    pub fn current_pid(&self) -> Option<libc::pid_t> {
        self.current.as_ref().map(|p| p.pid)
    }
    pub fn restart_at(&self) -> Option<Instant> {
        self.restart_at
    }
    /// The master's ends of the template pipes (a forked child closes them).
    pub fn fds(&self) -> Vec<RawFd> {
        [&self.current, &self.next, &self.previous]
            .into_iter()
            .flatten()
            .flat_map(|p| [p.commands.as_raw_fd(), p.replies.as_raw_fd()])
            .collect()
    }

    /// Forks a new template (a starting one it replaces is killed: it has
    /// not served). `ctx` carries what the template's workers will get.
    pub fn start(&mut self, why: Start, ctx: WorkerContext<'_>, inherited: &[RawFd]) {
        self.restart_at = None;
        if let Some(old) = self.next.take() {
            log::info!(
                "template (pid {}) killed while importing: superseded",
                old.pid
            );
            sys::kill(old.pid, libc::SIGKILL);
            self.stopped.push(old.pid);
        }
        let spawned = (|| {
            let (cmd_read, cmd_write) = sys::pipe()?;
            let (reply_read, reply_write) = sys::pipe()?;
            let pipes = TemplatePipes {
                commands: cmd_read.as_raw_fd(),
                replies: reply_write.as_raw_fd(),
            };
            let mut close: Vec<RawFd> = inherited.to_vec();
            close.extend(self.fds());
            close.extend([cmd_write.as_raw_fd(), reply_read.as_raw_fd()]);
            let entry = self.entry;
            let pid = super::execute::fork_child(&close, move || entry(ctx, pipes))?;
            Ok::<_, io::Error>(Process {
                pid,
                commands: cmd_write,
                replies: reply_read,
                why,
                started: Instant::now(),
            })
        })();
        match spawned {
            Ok(p) => {
                let reason = match why {
                    Start::Boot => "at start",
                    Start::Reload => "for a reload",
                    Start::Restart => "to replace one that died",
                };
                log::info!("template (pid {}) importing the app {reason}", p.pid);
                self.next = Some(p);
            }
            Err(e) => {
                log::error!("cannot fork the template: {e}; retrying in 1 s");
                self.restart_at = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }

    /// The template `pid` says it is ready. It becomes the one workers are
    /// forked from; the previous one is stopped. Returns why it started and
    /// how long its import took.
    pub fn on_ready(&mut self, pid: libc::pid_t) -> Option<(Start, Duration)> {
        if self.next.as_ref().map(|p| p.pid) != Some(pid) {
            return None;
        }
        let new = self.next.take()?;
        if let Some(old) = self.current.take() {
            // A reload keeps the template its old workers came from until
            // the new ones are all ready (or the reload is abandoned); one
            // overtaken in between is stopped.
            let keep = new.why == Start::Reload && self.previous.is_none();
            if keep {
                self.previous = Some(old);
            } else {
                self.stop(old);
            }
        }
        self.failures = 0;
        let out = (new.why, new.started.elapsed());
        self.current = Some(new);
        Some(out)
    }

    fn stop(&mut self, p: Process) {
        log::info!("stopping the previous template (pid {})", p.pid);
        sys::kill(p.pid, libc::SIGTERM);
        self.stopped.push(p.pid);
    }

    /// The reload is complete: the template kept for a fallback goes.
    pub fn reload_done(&mut self) {
        if let Some(p) = self.previous.take() {
            self.stop(p);
        }
    }

    /// The reload is abandoned (its workers do not start): workers are
    /// forked from the kept template again and the new one is stopped.
    pub fn revert(&mut self) {
        if let Some(p) = self.previous.take() {
            log::info!(
                "workers fork from the previous template (pid {}) again",
                p.pid
            );
            if let Some(new) = self.current.replace(p) {
                self.stop(new);
            }
        }
    }

    /// Accounts for a reaped child; None if it was no template.
    pub fn reaped(&mut self, pid: libc::pid_t, status: ExitStatus) -> Option<TemplateExit> {
        if let Some(i) = self.stopped.iter().position(|&p| p == pid) {
            self.stopped.swap_remove(i);
            log::info!("template (pid {pid}) stopped ({status})");
            return Some(TemplateExit::Expected);
        }
        if self.previous.as_ref().is_some_and(|p| p.pid == pid) {
            self.previous = None;
            log::warn!("the template kept for the reload's fallback (pid {pid}) died: {status}");
            return Some(TemplateExit::Expected);
        }
        if self.current.as_ref().is_some_and(|p| p.pid == pid) {
            self.current = None;
            log::error!("template (pid {pid}) died: {status}; the workers keep serving");
            return Some(TemplateExit::Died);
        }
        if self.next.as_ref().is_some_and(|p| p.pid == pid) {
            let p = self.next.take()?;
            let load_error = status == ExitStatus::Code(super::EXIT_APP_LOAD_ERROR);
            self.failures = self.failures.saturating_add(1);
            log::error!(
                "template (pid {pid}) died while importing the app: {status}{}",
                if load_error {
                    " (the app failed to load)"
                } else {
                    ""
                }
            );
            return Some(TemplateExit::Failed {
                why: p.why,
                load_error,
            });
        }
        None
    }

    /// When to start a replacement for a dead template: at once, then with
    /// the crash-loop back-off while templates die before they are ready.
    pub fn schedule_restart(&mut self) {
        let delay = match self.failures {
            0 | 1 => Duration::ZERO,
            n => FIRST_BACKOFF
                .saturating_mul(1u32 << (n - 2).min(10))
                .min(MAX_BACKOFF),
        };
        if !delay.is_zero() {
            log::warn!(
                "templates keep dying before they are ready ({} in a row); next start in {} ms",
                self.failures,
                delay.as_millis()
            );
        }
        self.restart_at = Some(Instant::now() + delay);
    }

    /// Sends `sig` to every template; with `stop`, they count as stopped.
    pub fn signal_all(&mut self, sig: libc::c_int, stop: bool) {
        if let Some(p) = &self.current {
            sys::kill(p.pid, sig);
        }
        if let Some(p) = &self.previous {
            sys::kill(p.pid, sig);
        }
        if let Some(p) = &self.next {
            sys::kill(p.pid, if stop { libc::SIGKILL } else { sig });
        }
        if stop {
            let pids = [self.current.take(), self.next.take(), self.previous.take()];
            self.stopped
                .extend(pids.into_iter().flatten().map(|p| p.pid));
            self.restart_at = None;
        }
    }

    /// Asks the current template for a worker; returns its pid (the master's
    /// child by the time the answer arrives).
    pub fn fork(&mut self, ctx: &WorkerContext<'_>) -> io::Result<libc::pid_t> {
        let Some(t) = &self.current else {
            return Err(io::Error::other("no template is ready"));
        };
        self.seq = self.seq.wrapping_add(1);
        let req = ForkRequest {
            seq: self.seq,
            slot: ctx.slot,
            id: ctx.id,
            generation: ctx.generation,
        };
        sys::write_pipe(t.commands.as_raw_fd(), &req.encode())?;
        let deadline = Instant::now() + ANSWER_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !sys::wait_readable(t.replies.as_raw_fd(), left)? {
                return Err(io::Error::other(format!(
                    "the template (pid {}) did not answer within {} s",
                    t.pid,
                    ANSWER_WAIT.as_secs()
                )));
            }
            let mut b = [0u8; REPLY_LEN];
            match sys::read(t.replies.as_raw_fd(), &mut b)? {
                REPLY_LEN => {}
                0 => return Err(io::Error::other("the template is gone")),
                n => return Err(io::Error::other(format!("short answer ({n} bytes)"))),
            }
            let (seq, pid) = decode_reply(&b);
            if seq != self.seq {
                // The late answer to a request we gave up on: that worker is
                // nobody's; it must not serve.
                if pid > 0 {
                    log::warn!(
                        "worker pid {pid} was forked for a request the master gave up on: killed"
                    );
                    sys::kill(pid, libc::SIGKILL);
                }
                continue;
            }
            if pid <= 0 {
                return Err(io::Error::from_raw_os_error(-pid));
            }
            return Ok(pid);
        }
    }
}
