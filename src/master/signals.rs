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
    /// Run the binary again with the listeners, hand over, exit (SIGUSR2).
    Upgrade,
    Ignore,
}

/// The meaning of each handled signal.
const ACTIONS: &[(libc::c_int, Action)] = &[
    (libc::SIGCHLD, Action::Reap),
    (libc::SIGTERM, Action::GracefulShutdown),
    (libc::SIGINT, Action::FastShutdown),
    (libc::SIGQUIT, Action::FastShutdown),
    (libc::SIGHUP, Action::Reload),
    (libc::SIGTTIN, Action::AddWorker),
    (libc::SIGTTOU, Action::RemoveWorker),
    (libc::SIGUSR1, Action::ReopenLogs),
    (libc::SIGUSR2, Action::Upgrade),
];

pub fn action(sig: libc::c_int) -> Action {
    let action = ACTIONS
        .iter()
        .find(|(s, _)| *s == sig)
        .map_or(Action::Ignore, |&(_, a)| a);
    if action == Action::Ignore {
        log::warn!("{} ignored", crate::sys::signal_name(sig));
    }
    action
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handled_signal_has_exactly_one_action_and_only_those_do() {
        let mut handled = HANDLED.to_vec();
        handled.sort_unstable();
        handled.dedup();
        assert_eq!(handled.len(), HANDLED.len(), "a signal handled twice");
        let mut mapped: Vec<libc::c_int> = ACTIONS.iter().map(|&(s, _)| s).collect();
        mapped.sort_unstable();
        assert_eq!(mapped, handled, "ACTIONS and HANDLED disagree");
    }

    #[test]
    fn signals_mean_what_the_man_page_says() {
        assert_eq!(action(libc::SIGTERM), Action::GracefulShutdown);
        assert_eq!(action(libc::SIGINT), Action::FastShutdown);
        assert_eq!(action(libc::SIGQUIT), Action::FastShutdown);
        assert_eq!(action(libc::SIGHUP), Action::Reload);
        assert_eq!(action(libc::SIGTTIN), Action::AddWorker);
        assert_eq!(action(libc::SIGTTOU), Action::RemoveWorker);
        assert_eq!(action(libc::SIGUSR1), Action::ReopenLogs);
        assert_eq!(action(libc::SIGCHLD), Action::Reap);
        assert_eq!(action(libc::SIGUSR2), Action::Upgrade);
        assert_eq!(action(libc::SIGWINCH), Action::Ignore);
        // Every signal caught has an action of its own.
        let idle: Vec<_> = HANDLED
            .iter()
            .filter(|&&s| action(s) == Action::Ignore)
            .collect();
        assert!(idle.is_empty(), "caught but ignored: {idle:?}");
    }
}
