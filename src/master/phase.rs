//! The master's phases, each with the data only it has (pingora's model):
//! the public [`Phase`] is what systemd and the log are told; shutting down
//! carries its deadlines and is final.

use std::time::Instant;

use super::Master;
use crate::supervise::Phase;

/// Where the master is, with the data only that phase has (pingora's
/// model); its [`Phase`] is what systemd and the log are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Starting,
    Running,
    Reloading,
    ShuttingDown(Shutdown),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Shutdown {
    /// When a `--shutdown-delay` ends and the drain starts.
    pub drain_at: Option<Instant>,
    /// When the drain's grace ends and stragglers are killed.
    pub kill_at: Option<Instant>,
    /// Shut down before every worker was first ready: an app that does
    /// not load still ends the start-up with its exit code.
    pub from_start: bool,
}

impl Stage {
    /// The shutdown's deadlines (none unless shutting down).
    pub fn shutdown(self) -> Shutdown {
        match self {
            Stage::ShuttingDown(s) => s,
            _ => Shutdown::default(),
        }
    }

    /// No worker set has been ready yet (also when a TERM came first).
    pub fn still_starting(self) -> bool {
        match self {
            Stage::Starting => true,
            Stage::ShuttingDown(s) => s.from_start,
            _ => false,
        }
    }

    pub fn phase(self) -> Phase {
        match self {
            Stage::Starting => Phase::Starting,
            Stage::Running => Phase::Running,
            Stage::Reloading => Phase::Reloading,
            Stage::ShuttingDown(_) => Phase::ShuttingDown,
        }
    }
}

impl Master {
    pub(super) fn phase(&self) -> Phase {
        self.stage.phase()
    }

    /// The shutdown's deadlines (None unless shutting down).
    pub(super) fn shutdown_state(&mut self) -> Option<&mut Shutdown> {
        match &mut self.stage {
            Stage::ShuttingDown(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn set_phase(&mut self, phase: Phase) {
        // Shutting down is final: a reload's end (or failure) coming in
        // during a --shutdown-delay must not undo it.
        if self.phase() != phase && self.phase() != Phase::ShuttingDown {
            log::info!("master phase: {:?} -> {:?}", self.phase(), phase);
            let from_start = self.phase() == Phase::Starting;
            self.stage = match phase {
                Phase::Starting => Stage::Starting,
                Phase::Running => Stage::Running,
                Phase::Reloading => Stage::Reloading,
                Phase::ShuttingDown => Stage::ShuttingDown(Shutdown {
                    from_start,
                    ..Shutdown::default()
                }),
            };
            // [systemd hook] READY=1 / RELOADING=1 / STOPPING=1 + STATUS=
            self.notifier
                .phase(phase, self.pool.target(), &self.listeners);
        }
    }
}
