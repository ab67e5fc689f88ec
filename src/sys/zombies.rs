//! Reaping the children an app forks and never waits for. Python's
//! `subprocess` waits for its own children by pid, and a status stolen from
//! it turns into a wrong return code (0), so a child is reaped only once it
//! has been a zombie for [`ZOMBIE_GRACE`]: an app that wants a status
//! collects it before then; one that never does leaves no zombie behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a child may stay a zombie before the worker reaps it.
pub const ZOMBIE_GRACE: Duration = Duration::from_secs(10);

/// The zombies seen so far and since when.
#[derive(Default)]
pub struct Reaper {
    seen: HashMap<libc::pid_t, Instant>,
}

/// This process's children (of every thread), from
/// `/proc/self/task/*/children`; empty where the kernel lacks that file.
fn children(out: &mut Vec<libc::pid_t>) {
    out.clear();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<libc::pid_t>().ok()),
        );
    }
}

fn is_zombie(pid: libc::pid_t) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may hold ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        == Some("Z")
}

impl Reaper {
    /// Reaps the children that have been zombies for the grace period;
    /// returns how many. Cheap when there are no children (one directory
    /// listing and one small read per thread).
    pub fn sweep(&mut self, now: Instant) -> usize {
        let mut kids = Vec::new();
        children(&mut kids);
        if kids.is_empty() && self.seen.is_empty() {
            return 0;
        }
        let mut reaped = 0;
        let mut still = HashMap::with_capacity(self.seen.len());
        for pid in kids {
            if !is_zombie(pid) {
                continue;
            }
            let since = self.seen.get(&pid).copied().unwrap_or(now);
            if now.saturating_duration_since(since) >= ZOMBIE_GRACE {
                let mut status = 0;
                // SAFETY: waitpid on one pid of ours writes only `status`.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    reaped += 1;
                }
            } else {
                still.insert(pid, since);
            }
        }
        self.seen = still;
        reaped
    }
}
