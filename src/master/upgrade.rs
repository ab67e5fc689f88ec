//! SIGUSR2: upgrade in place, as nginx and Gunicorn do it. The master
//! renames the pidfile to `<pidfile>.oldbin` and starts the binary again
//! (the file at the path it was started from, so a new build takes over)
//! with the same arguments, handing it every listening socket by fd number
//! (`RWSGI_UPGRADE_FDS`) and the write end of a pipe (`RWSGI_UPGRADE_READY`).
//! The new master binds nothing it was handed, starts its workers and, once
//! they are all ready, writes one byte to the pipe. The old master then stops
//! its workers as for a reload (each finishes its requests; the shared
//! sockets stay open, they are the new master's now) and exits, removing the
//! `.oldbin` file. If the new master exits first, the pipe ends without that
//! byte: the old master logs it, renames the pidfile back and keeps serving.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use mio::unix::SourceFd;
use mio::{Interest, Token};

use super::Master;
use crate::socket::Handed;
use crate::supervise::Phase;
use crate::sys;

/// The ready pipe's token in the old master's loop.
pub(super) const UPGRADE: Token = Token(2);

/// The variable naming the ready pipe's write end in the new master.
const READY_VAR: &str = "RWSGI_UPGRADE_READY";

/// An upgrade under way, seen from the old master.
pub(super) struct Upgrade {
    /// The process started (the new master, or the first fork of its
    /// `--daemonize`).
    pid: u32,
    /// The ready pipe's read end: a byte when the new master is ready,
    /// end of file if it exited before.
    ready: OwnedFd,
}

/// The ready pipe handed over by the previous master, if this one was
/// started by SIGUSR2. Reads and removes the variable; call it once, before
/// any fork or thread.
pub fn ready_pipe_from_env() -> Result<Option<OwnedFd>, String> {
    let Some(value) = std::env::var_os(READY_VAR) else {
        return Ok(None);
    };
    std::env::remove_var(READY_VAR);
    let bad = |why: &str| format!("{READY_VAR}: {why} (set by a previous rwsgi master)");
    let fd: RawFd = value
        .to_str()
        .and_then(|v| v.parse().ok())
        .filter(|fd| *fd > 2)
        .ok_or_else(|| bad("not an fd above 2"))?;
    match sys::fd_kind(fd) {
        Ok("pipe") => {}
        Ok(kind) => return Err(bad(&format!("fd {fd} is a {kind}, not a pipe"))),
        Err(e) => return Err(bad(&format!("fd {fd}: {e}"))),
    }
    // SAFETY: the previous master left `fd` open for this process and named
    // it only in this variable, which is removed: nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    sys::set_cloexec(fd, true).map_err(|e| bad(&format!("fd {fd}: {e}")))?;
    Ok(Some(owned))
}

/// `<pidfile>.oldbin`, nginx's name for the old master's pidfile.
fn oldbin(pidfile: &Path) -> PathBuf {
    let mut name = OsString::from(pidfile.as_os_str());
    name.push(".oldbin");
    PathBuf::from(name)
}

impl Master {
    /// Makes a master started by SIGUSR2 tell its predecessor, through
    /// `pipe`, once all its workers are ready.
    pub fn tell_when_ready(mut self, pipe: Option<OwnedFd>) -> Master {
        self.tell_ready = pipe;
        self
    }

    /// The fds of the upgrade pipes (a forked worker closes them).
    pub(super) fn upgrade_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        let old = self.upgrade.as_ref().map(|u| u.ready.as_raw_fd());
        old.into_iter()
            .chain(self.tell_ready.as_ref().map(|fd| fd.as_raw_fd()))
    }

    /// SIGUSR2: starts the new master, unless an upgrade cannot work now.
    pub(super) fn upgrade(&mut self) {
        let refusal = if self.phase() != Phase::Running {
            Some(format!(
                "the master is {:?}; an upgrade starts only while it is Running",
                self.phase()
            ))
        } else if let Some(u) = &self.upgrade {
            Some(format!("the upgrade to pid {} is under way", u.pid))
        } else if self.notifier.enabled() {
            // systemd would take the old master's exit for the service's.
            Some("under systemd, use `systemctl reload` (SIGHUP) instead".into())
        } else if self.listeners.iter().any(|l| l.inherited) {
            Some(
                "the sockets were passed by systemd or fd://N: restart through whoever \
                 passed them, or reload with SIGHUP"
                    .into(),
            )
        } else {
            None
        };
        if let Some(why) = refusal {
            log::warn!("SIGUSR2 ignored: {why}");
            return;
        }
        let pidfile = self.config.process.pidfile.clone();
        if let Some(p) = &pidfile {
            match std::fs::rename(p, oldbin(p)) {
                Ok(()) => self.oldbin = Some(oldbin(p)),
                Err(e) => log::warn!("SIGUSR2: cannot rename --pidfile {}: {e}", p.display()),
            }
        }
        match self.start_new_master() {
            Ok(u) => {
                log::info!(
                    "SIGUSR2: started the new master (pid {}); this one serves until it is ready",
                    u.pid
                );
                self.upgrade = Some(u);
            }
            Err(e) => {
                log::error!("SIGUSR2: cannot start the new master: {e}; this one keeps serving");
                self.restore_pidfile();
            }
        }
    }

    fn start_new_master(&mut self) -> io::Result<Upgrade> {
        let exe = self.exe.clone().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the binary's path is unknown")
        })?;
        let (ready, write) = sys::pipe()?;
        let sockets: Vec<(&str, RawFd)> = self
            .listeners
            .iter()
            .map(|l| (l.key.as_str(), l.raw_fd()))
            .chain(self.endpoints.handover())
            .collect();
        let mut keep: Vec<RawFd> = sockets.iter().map(|(_, fd)| *fd).collect();
        keep.push(write.as_raw_fd());
        let mut cmd = Command::new(exe);
        cmd.args(std::env::args_os().skip(1))
            .env(Handed::VAR, Handed::encode(sockets.into_iter()))
            .env(READY_VAR, write.as_raw_fd().to_string());
        let child = sys::spawn_keeping(&mut cmd, keep)?;
        drop(write); // only the new master holds it now
        self.poll.registry().register(
            &mut SourceFd(&ready.as_raw_fd()),
            UPGRADE,
            Interest::READABLE,
        )?;
        Ok(Upgrade {
            pid: child.id(),
            ready,
        })
    }

    /// The ready pipe is readable: the new master is ready, or gone.
    pub(super) fn on_upgrade_pipe(&mut self) {
        let Some(u) = &self.upgrade else {
            return;
        };
        let mut byte = [0u8; 1];
        let ready = match sys::read(u.ready.as_raw_fd(), &mut byte) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                log::error!("upgrade: reading the new master's ready pipe: {e}");
                false
            }
        };
        let Some(u) = self.upgrade.take() else {
            return;
        };
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&u.ready.as_raw_fd()));
        if ready {
            log::info!(
                "upgrade: the new master (pid {}) is serving; stopping this master's workers",
                u.pid
            );
            self.hand_over();
        } else {
            log::error!(
                "upgrade failed: the new master (pid {}) ended before it was ready (its log \
                 says why); this master keeps serving",
                u.pid
            );
            self.restore_pidfile();
        }
    }

    /// The new master serves the shared sockets: stop the workers without
    /// shutting or unlinking those sockets, then exit.
    fn hand_over(&mut self) {
        self.leave_sockets_to_new_master();
        self.set_phase(Phase::ShuttingDown);
        if let Some(s) = self.shutdown_state() {
            s.drain_at = None;
        }
        self.drain(true);
    }

    /// From now on the shared sockets are the new master's (or about to
    /// be): this one stops its workers one by one (TERM, not the
    /// server-wide USR2 that shuts the sockets), never shuts the sockets
    /// and leaves their files. Also when this master is told to shut down
    /// while the new one is still starting.
    pub(super) fn leave_sockets_to_new_master(&mut self) {
        for l in &mut self.listeners {
            l.inherited = true;
        }
        self.unix_paths.clear();
        self.handed_over = true;
    }

    /// An upgrade is under way (this is the old master).
    pub(super) fn upgrading(&self) -> bool {
        self.upgrade.is_some()
    }

    fn restore_pidfile(&mut self) {
        if let (Some(old), Some(p)) = (self.oldbin.take(), &self.config.process.pidfile) {
            if let Err(e) = std::fs::rename(&old, p) {
                log::warn!(
                    "cannot rename {} back to {}: {e}",
                    old.display(),
                    p.display()
                );
            }
        }
    }

    /// After a handover, at exit: the `.oldbin` pidfile goes.
    pub(super) fn remove_oldbin(&self) {
        if self.handed_over {
            crate::process::remove_pidfile(self.oldbin.as_deref());
        }
    }

    /// In a master started by SIGUSR2, once all its workers are ready: the
    /// sockets taken over are this master's now.
    pub(super) fn tell_previous_master(&mut self) {
        for l in self.listeners.iter_mut().filter(|l| l.handed) {
            l.inherited = false;
        }
        self.unix_paths.append(&mut self.handed_files);
        if let Some(fd) = self.tell_ready.take() {
            match sys::write_pipe(fd.as_raw_fd(), b"R") {
                Ok(_) => log::info!("upgrade: ready; the previous master stops its workers"),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                    log::info!("upgrade: ready; the previous master has already exited")
                }
                Err(e) => log::error!("upgrade: cannot tell the previous master: {e}"),
            }
        }
    }
}
