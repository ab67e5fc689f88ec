//! Why a worker was replaced: the index of its counter in `Pool::respawns`,
//! which the stats and metrics name by `stats::RESPAWN_CAUSES`.

use crate::supervise::RetireReason;

/// A cause of a worker's replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Respawn {
    /// It died on its own.
    Crash,
    /// `--max-requests`.
    MaxRequests,
    /// `--reload-on-rss`.
    Rss,
    /// `--harakiri` killed it.
    Harakiri,
    /// A reload replaced it.
    Reload,
}

impl Respawn {
    /// Its counter's index in `Pool::respawns`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The names live in `stats::RESPAWN_CAUSES`; the test proves they match.
#[cfg(test)]
impl Respawn {
    /// Every cause, in counter order.
    const ALL: [Respawn; 5] = [
        Respawn::Crash,
        Respawn::MaxRequests,
        Respawn::Rss,
        Respawn::Harakiri,
        Respawn::Reload,
    ];

    /// The name the stats and metrics give it.
    fn name(self) -> &'static str {
        match self {
            Respawn::Crash => "crash",
            Respawn::MaxRequests => "max-requests",
            Respawn::Rss => "rss",
            Respawn::Harakiri => "harakiri",
            Respawn::Reload => "reload",
        }
    }
}

impl From<RetireReason> for Respawn {
    fn from(reason: RetireReason) -> Respawn {
        match reason {
            RetireReason::MaxRequests => Respawn::MaxRequests,
            RetireReason::Rss => Respawn::Rss,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_as_the_stats_name_them() {
        let names: Vec<&str> = Respawn::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, crate::stats::RESPAWN_CAUSES);
        for (i, c) in Respawn::ALL.iter().enumerate() {
            assert_eq!(c.index(), i, "{c:?}");
        }
    }
}
