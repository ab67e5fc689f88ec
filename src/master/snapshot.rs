//! Assembling a stats [`Snapshot`] from the pool, the scoreboard and the
//! listeners.

use std::collections::HashMap;

use super::pool::{Pool, State};
use crate::scoreboard::{Scoreboard, WorkerState};
use crate::socket::{BoundAddr, Listener};
use crate::stats::{Snapshot, SocketStat, WorkerStat};
use crate::sys;

/// `last_requests` remembers each worker's request count at the previous
/// snapshot, for uWSGI's `delta_requests`.
pub fn take(
    pool: &Pool,
    scoreboard: &Scoreboard,
    listeners: &[Listener],
    last_requests: &mut HashMap<i32, u64>,
    track_delta: bool,
) -> Snapshot {
    let sockets = listeners
        .iter()
        .map(|l| {
            let (queue, max_queue) = match &l.addr {
                BoundAddr::Tcp(_) => sys::tcp_listen_queue(l.raw_fd()),
                BoundAddr::Unix(_) => sys::unix_listen_queue(l.raw_fd()),
            }
            .unwrap_or((0, 0));
            SocketStat {
                name: match &l.addr {
                    BoundAddr::Tcp(a) => a.to_string(),
                    BoundAddr::Unix(p) => p.display().to_string(),
                },
                proto: l.protocol.name(),
                queue,
                max_queue,
            }
        })
        .collect();
    let mut seen = HashMap::new();
    let mut workers: Vec<WorkerStat> = pool
        .workers()
        .iter()
        .map(|w| {
            let slot = scoreboard.slot(w.slot);
            let counters = slot.counters();
            // Read each worker's memory now, so idle workers show it too.
            let (rss, vsz) = sys::memory_of(w.pid).unwrap_or((slot.rss_bytes(), slot.vsz_bytes()));
            let memory = sys::memory_detail_of(w.pid)
                .map(|m| crate::stats::MemorySplit {
                    pss: m.pss,
                    uss: m.uss,
                    shared: m.shared,
                })
                .unwrap_or_default();
            let previous = last_requests.get(&w.pid).copied().unwrap_or(0);
            seen.insert(w.pid, counters.requests);
            let status = if w.is_stopping() || w.state == State::Retiring {
                "stopping"
            } else if !w.is_ready() {
                "starting"
            } else if slot.state() == WorkerState::Busy {
                "busy"
            } else {
                "idle"
            };
            WorkerStat {
                id: w.id,
                pid: w.pid,
                status,
                delta_requests: counters.requests.saturating_sub(previous),
                counters,
                rss,
                vsz,
                memory,
                last_spawn: slot.spawned_at_us() / 1_000_000,
                respawn_count: pool.spawns.get(&w.id).copied().unwrap_or(0),
                harakiri_count: pool.harakiris.get(&w.id).copied().unwrap_or(0),
                in_request: slot.request_start_us() != 0,
                cores: scoreboard
                    .cores(w.slot)
                    .iter()
                    .map(|core| {
                        let busy = core.request_start_us() != 0;
                        crate::stats::CoreStat {
                            requests: core.requests(),
                            in_request: busy,
                            label: if busy { core.label() } else { String::new() },
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    workers.sort_by_key(|w| (w.id, w.pid));
    if track_delta {
        *last_requests = seen;
    }
    Snapshot {
        pid: sys::getpid(),
        uid: sys::getuid(),
        gid: sys::getgid(),
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        sockets,
        workers,
        retired: pool.retired.clone(),
        respawns: pool.respawns,
    }
}
