//! With `--preload`, the master's workers are forked by the template:
//! starting it, switching to a new one on HUP, restarting one that died;
//! and the ready line's report of the mode and the workers' memory.

use std::os::fd::AsRawFd;
use std::time::Instant;

use super::template::{Start, TemplateExit, Templates};
use super::{Master, Phase};
use crate::supervise::template::{TemplateEntry, TEMPLATE_SLOT};
use crate::supervise::{WorkerContext, EXIT_APP_LOAD_ERROR};
use crate::sys::{self, ExitStatus};

const MIB: f64 = 1024.0 * 1024.0;

impl Master {
    /// With `--preload`, workers are forked by a template process; the
    /// master becomes a child subreaper so they are still its children.
    pub fn preload_with(&mut self, entry: TemplateEntry) -> std::io::Result<()> {
        if self.config.preload {
            sys::become_subreaper()?;
            self.templates = Some(Templates::new(entry));
        }
        Ok(())
    }

    pub(super) fn start_template(&mut self, why: Start) {
        let inherited = self.inherited_fds();
        let Master {
            templates: Some(templates),
            config,
            listeners,
            scoreboard,
            notify_write,
            ..
        } = self
        else {
            return;
        };
        let ctx = WorkerContext {
            config,
            listeners,
            scoreboard,
            slot: TEMPLATE_SLOT,
            id: 0,
            generation: 0,
            master_pid: sys::getpid(),
            notify_fd: notify_write.as_raw_fd(),
        };
        templates.start(why, ctx, &inherited);
    }

    pub(super) fn on_template_ready(&mut self, pid: libc::pid_t) {
        let Some(templates) = &mut self.templates else {
            return;
        };
        let Some((why, took)) = templates.on_ready(pid) else {
            log::debug!("ready notice from template pid {pid}, no longer starting: ignored");
            return;
        };
        log::info!(
            "template (pid {pid}) ready after {} ms; workers fork from it",
            took.as_millis()
        );
        if self.pool.is_closed() {
            return;
        }
        if why == Start::Reload {
            log::info!("new code imported: replacing the workers from the new template");
            let kill = self.pool.begin_reload(Instant::now());
            self.execute(kill);
        }
        self.fill_pool();
    }

    /// Accounts for a reaped template; false if `pid` was none.
    pub(super) fn template_reaped(&mut self, pid: libc::pid_t, status: ExitStatus) -> bool {
        let Some(templates) = &mut self.templates else {
            return false;
        };
        let Some(exit) = templates.reaped(pid, status) else {
            return false;
        };
        if self.pool.is_closed() {
            return true;
        }
        match exit {
            TemplateExit::Expected => {}
            TemplateExit::Died => templates.schedule_restart(),
            TemplateExit::Failed { why, load_error } => match why {
                Start::Boot if load_error => {
                    log::error!("the app failed to load (see the error above); shutting down");
                    self.exit_code = EXIT_APP_LOAD_ERROR;
                    self.shutdown(false, "the app did not load");
                }
                Start::Reload => {
                    log::error!(
                        "reload failed: the new code does not load (see the error above); \
                         the previous template and its workers keep serving"
                    );
                    if !templates.ready() {
                        templates.schedule_restart();
                    }
                    // An earlier reload may still be replacing workers.
                    if !self.pool.reloading() && self.phase() == Phase::Reloading {
                        self.set_phase(Phase::Running);
                    }
                }
                _ => templates.schedule_restart(),
            },
        }
        true
    }

    /// Starts a template whose restart is due (unless one is already
    /// starting: it will serve).
    pub(super) fn template_timer(&mut self) {
        let Some(templates) = &self.templates else {
            return;
        };
        if templates
            .restart_at()
            .is_some_and(|at| Instant::now() >= at)
        {
            if templates.starting().is_some() || self.pool.is_closed() {
                return;
            }
            self.start_template(Start::Restart);
        }
    }

    /// A worker the template forked but whose pid never reached the pool
    /// (the template died before answering, or answered too late) is our
    /// child all the same: it must not serve unsupervised.
    pub(super) fn kill_stray_worker(&self, pid: libc::pid_t) {
        let known = self.pool.workers().iter().any(|w| w.pid == pid);
        if self.templates.is_some() && !known && sys::parent_of(pid) == Some(sys::getpid()) {
            log::warn!("worker pid {pid} was forked for a request the master gave up on: killed");
            sys::kill(pid, libc::SIGKILL);
        }
    }

    pub(super) fn mode_description(&self) -> String {
        match &self.templates {
            Some(t) => format!(
                "preload: workers forked from template pid {}",
                t.current_pid().unwrap_or(0)
            ),
            None => "lazy apps: each worker imported the app".to_string(),
        }
    }

    /// The workers' memory, averaged: RSS, PSS, private (USS) and shared.
    pub(super) fn memory_summary(&self) -> String {
        let details: Vec<_> = self
            .pool
            .workers()
            .iter()
            .filter_map(|w| sys::memory_detail_of(w.pid))
            .collect();
        if details.is_empty() {
            return "memory unknown".into();
        }
        let n = details.len() as f64;
        let avg = |f: fn(&sys::MemoryDetail) -> u64| {
            details.iter().map(|d| f(d) as f64).sum::<f64>() / n / MIB
        };
        format!(
            "per worker: rss {:.1} MiB, pss {:.1} MiB, private {:.1} MiB, shared {:.1} MiB",
            avg(|d| d.rss),
            avg(|d| d.pss),
            avg(|d| d.uss),
            avg(|d| d.shared)
        )
    }
}
