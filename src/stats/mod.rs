//! What the stats and metrics endpoints say: a [`Snapshot`] the master takes
//! from the scoreboard and its own counters, rendered as uWSGI's stats JSON
//! (so `uwsgitop` and other tools read it unchanged) or as Prometheus text
//! (format 0.0.4). Rendering is pure; the master does the I/O.

mod json;
mod prometheus;
#[cfg(test)]
mod tests;

pub use json::render_json;
pub use prometheus::render_prometheus;

use std::fmt::Write as _;

use crate::scoreboard::Counters;

/// Why workers were replaced, as the metrics label them.
pub const RESPAWN_CAUSES: [&str; 5] = ["crash", "max-requests", "rss", "harakiri", "reload"];

#[derive(Debug, Clone, Default)]
pub struct SocketStat {
    pub name: String,
    pub proto: &'static str,
    pub queue: u64,
    pub max_queue: u64,
}

/// One app thread of a worker (uWSGI's "core").
#[derive(Debug, Clone, Default)]
pub struct CoreStat {
    pub requests: u64,
    pub in_request: bool,
    /// `METHOD target` of the current request, escaped; empty when idle.
    pub label: String,
}

#[derive(Debug, Clone, Default)]
pub struct WorkerStat {
    pub id: usize,
    pub pid: i32,
    /// "idle", "busy", "starting" or "stopping" (uwsgitop knows idle/busy).
    pub status: &'static str,
    pub counters: Counters,
    pub delta_requests: u64,
    pub rss: u64,
    pub vsz: u64,
    /// Proportional, private (USS) and shared memory, from smaps_rollup
    /// (rwsgi's own fields; shared is large under `--preload`).
    pub memory: MemorySplit,
    /// Unix seconds of the worker's spawn.
    pub last_spawn: u64,
    pub respawn_count: u64,
    pub harakiri_count: u64,
    pub in_request: bool,
    /// The app threads (`--threads`).
    pub cores: Vec<CoreStat>,
}

/// A worker's memory by sharing, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemorySplit {
    pub pss: u64,
    pub uss: u64,
    pub shared: u64,
}

/// rwsgi's fields after uWSGI's in a worker's JSON object (which `o` ends).
fn append_memory(o: &mut String, m: &MemorySplit) {
    if o.ends_with('}') {
        o.pop();
        let _ = write!(
            o,
            ",\"pss\":{},\"uss\":{},\"shared\":{}}}",
            m.pss, m.uss, m.shared
        );
    }
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    pub sockets: Vec<SocketStat>,
    pub workers: Vec<WorkerStat>,
    /// Counters of workers that have exited, so totals never go down.
    pub retired: Counters,
    /// Per cause, in the order of [`RESPAWN_CAUSES`].
    pub respawns: [u64; 5],
}

impl Snapshot {
    pub fn listen_queue(&self) -> u64 {
        self.sockets.iter().map(|s| s.queue).sum()
    }

    /// Counters of every worker ever: live ones plus retired ones.
    pub fn totals(&self) -> Counters {
        let mut t = self.retired.clone();
        for w in &self.workers {
            t.add(&w.counters);
        }
        t
    }
}
