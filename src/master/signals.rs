//! Which signal means what to the master (DESIGN §2). The handler only records
//! the signal in the self-pipe; the loop maps it to an action here.

/// The signals the master routes to its self-pipe.
pub const HANDLED: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCHLD,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Reap,
    GracefulShutdown,
    FastShutdown,
    Reload,
    AddWorker,
    RemoveWorker,
    ReopenLogs,
    Ignore,
}

pub fn action(sig: libc::c_int) -> Action {
    match sig {
        libc::SIGCHLD => Action::Reap,
        libc::SIGTERM => Action::GracefulShutdown,
        libc::SIGINT | libc::SIGQUIT => Action::FastShutdown,
        libc::SIGHUP => Action::Reload,
        libc::SIGTTIN => Action::AddWorker,
        libc::SIGTTOU => Action::RemoveWorker,
        libc::SIGUSR1 => Action::ReopenLogs,
        _ => {
            log::warn!("{} ignored", crate::sys::signal_name(sig));
            Action::Ignore
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handled_signal_has_an_action() {
        assert_eq!(action(libc::SIGTERM), Action::GracefulShutdown);
        assert_eq!(action(libc::SIGQUIT), Action::FastShutdown);
        assert_eq!(action(libc::SIGHUP), Action::Reload);
        for &s in HANDLED {
            let _ = action(s);
        }
    }
}
