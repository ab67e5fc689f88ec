//! The pool driven as a state machine with a fake clock: no process is
//! forked, no signal sent, no sleep. `Sim` plays the master: it "forks"
//! what `next_spawn` asks for and collects the commands.

use std::time::{Duration, Instant};

use super::recycle::HARAKIRI_GRACE;
use super::*;
use crate::supervise::RetireReason;

const GRACE: Duration = Duration::from_secs(30);

struct Sim {
    pool: Pool,
    now: Instant,
    next_pid: libc::pid_t,
}

impl Sim {
    fn new(target: usize, mode: ReloadMode) -> Sim {
        let now = Instant::now();
        Sim {
            pool: Pool::new(target, mode, GRACE, now),
            now,
            next_pid: 100,
        }
    }

    /// Starts `target` workers and makes them ready.
    fn running(target: usize, mode: ReloadMode) -> Sim {
        let mut sim = Sim::new(target, mode);
        for pid in sim.fill() {
            sim.ready(pid);
        }
        assert!(sim.pool.all_ready());
        sim
    }

    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
    }

    /// Forks what the pool asks for; returns the new pids.
    fn fill(&mut self) -> Vec<libc::pid_t> {
        let mut pids = Vec::new();
        while let Some(spawn) = self.pool.next_spawn(self.now) {
            let pid = self.next_pid;
            self.next_pid += 1;
            self.pool.spawned(spawn, pid, pid as usize, self.now);
            pids.push(pid);
            assert!(pids.len() <= 64, "runaway forks");
        }
        pids
    }

    /// The worker announces it serves; returns what the master must do.
    fn ready(&mut self, pid: libc::pid_t) -> Vec<Command> {
        assert!(self.pool.mark_ready(pid as usize, pid).is_some(), "{pid}");
        self.pool.rebalance(self.now)
    }

    /// The worker asks to be recycled.
    fn retire(&mut self, pid: libc::pid_t, reason: RetireReason, min_lifetime: Duration) {
        let now = self.now;
        self.pool
            .retire(pid as usize, pid, reason, min_lifetime, now);
    }

    fn pids(&self) -> Vec<libc::pid_t> {
        self.pool.workers().iter().map(|w| w.pid).collect()
    }

    fn exit(&mut self, pid: libc::pid_t, status: ExitStatus) -> Reaped {
        self.pool.reaped(pid, status, self.now)
    }

    fn state(&self, pid: libc::pid_t) -> Option<State> {
        let w = self.pool.workers().iter().find(|w| w.pid == pid)?;
        Some(w.state)
    }

    fn generation_of(&self, pid: libc::pid_t) -> u64 {
        let w = self.pool.workers().iter().find(|w| w.pid == pid);
        w.map(|w| w.generation).unwrap_or(0)
    }

    /// Workers serving now (ready, not stopping).
    fn serving(&self) -> usize {
        self.pool.workers().iter().filter(|w| w.is_ready()).count()
    }
}

fn stopped(commands: &[Command]) -> Vec<libc::pid_t> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Stop { pid, .. } => Some(*pid),
            _ => None,
        })
        .collect()
}

fn killed(commands: &[Command]) -> Vec<libc::pid_t> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Kill { pid } => Some(*pid),
            _ => None,
        })
        .collect()
}

const OK: ExitStatus = ExitStatus::Code(0);
const LOAD_ERROR: ExitStatus = ExitStatus::Code(EXIT_APP_LOAD_ERROR);
const SEGV: ExitStatus = ExitStatus::Signal(libc::SIGSEGV);

#[test]
fn start_forks_the_target_and_is_ready_when_all_are() {
    let mut sim = Sim::new(3, ReloadMode::All);
    let pids = sim.fill();
    assert_eq!(pids.len(), 3);
    assert!(sim.fill().is_empty(), "nothing more is missing");
    assert!(!sim.pool.all_ready());
    sim.ready(pids[0]);
    sim.ready(pids[1]);
    assert!(!sim.pool.all_ready());
    assert!(sim.ready(pids[2]).is_empty(), "nothing to replace");
    assert!(sim.pool.all_ready());
}

#[test]
fn reload_all_replaces_each_old_worker_once_a_new_one_is_ready() {
    let mut sim = Sim::running(2, ReloadMode::All);
    let old = sim.pids();
    assert!(sim.pool.begin_reload(sim.now).is_empty());
    assert!(sim.pool.reloading());
    let new = sim.fill();
    assert_eq!(new.len(), 2, "all mode forks the whole generation at once");
    assert!(new.iter().all(|&p| sim.generation_of(p) == 2));
    assert_eq!(sim.serving(), 2, "the old ones serve while the new import");

    let stop = sim.ready(new[0]);
    assert_eq!(stop.len(), 1, "{stop:?}");
    assert!(old.contains(&stopped(&stop)[0]));
    assert!(sim.serving() >= 2, "capacity never dips");
    assert!(!sim.pool.reload_done());

    let stop2 = sim.ready(new[1]);
    assert_eq!(stopped(&stop2).len(), 1);
    for pid in stopped(&stop).into_iter().chain(stopped(&stop2)) {
        assert!(matches!(sim.exit(pid, OK), Reaped::Expected(_)));
    }
    assert!(sim.pool.reload_done());
    assert!(!sim.pool.reloading());
    assert_eq!(sim.pool.respawns[Respawn::Reload.index()], 2);
    assert!(sim.fill().is_empty());
}

#[test]
fn rolling_reload_starts_one_worker_at_a_time() {
    let mut sim = Sim::running(3, ReloadMode::Rolling);
    sim.pool.begin_reload(sim.now);
    for round in 0..3 {
        let new = sim.fill();
        assert_eq!(new.len(), 1, "round {round}: one at a time");
        assert!(sim.fill().is_empty(), "round {round}: waits for it");
        let stop = stopped(&sim.ready(new[0]));
        assert_eq!(stop.len(), 1);
        assert!(sim.serving() >= 3);
        assert!(matches!(sim.exit(stop[0], OK), Reaped::Expected(_)));
    }
    assert!(sim.pool.reload_done());
}

#[test]
fn a_reload_whose_code_does_not_load_rolls_back_to_the_old_workers() {
    let mut sim = Sim::running(2, ReloadMode::All);
    let old = sim.pids();
    sim.pool.begin_reload(sim.now);
    let new = sim.fill();
    // One new worker loads and replaces an old one; the other cannot load.
    let replaced = stopped(&sim.ready(new[0]))[0];
    sim.exit(replaced, OK);
    let Reaped::Crashed { load_error, .. } = sim.exit(new[1], LOAD_ERROR) else {
        panic!("a load error is a crash");
    };
    assert!(load_error);
    let undo = sim.pool.abort_reload(sim.now);
    assert_eq!(stopped(&undo), vec![new[0]], "the new generation goes");
    assert!(!sim.pool.reloading());
    let kept: Vec<_> = old.iter().filter(|&&p| p != replaced).collect();
    assert_eq!(
        sim.state(*kept[0]),
        Some(State::Ready),
        "old ones keep serving"
    );

    // The old worker already replaced is re-forked in the old generation,
    // after a pause (the code on disk may still not load).
    assert!(sim.fill().is_empty());
    assert_eq!(sim.pool.wake_at(), Some(sim.now + Duration::from_secs(1)));
    sim.advance(1000);
    let back = sim.fill();
    assert_eq!(back.len(), 1);
    assert_eq!(sim.generation_of(back[0]), 1);
}

#[test]
fn a_reload_overtaken_by_another_kills_its_starters_and_waits_for_them() {
    let mut sim = Sim::running(2, ReloadMode::All);
    sim.pool.begin_reload(sim.now);
    let second = sim.fill();
    let kill = sim.pool.begin_reload(sim.now);
    assert_eq!(
        killed(&kill),
        second,
        "starters of the overtaken generation"
    );
    assert!(sim.fill().is_empty(), "forks wait for them to be reaped");
    assert_eq!(sim.pool.wake_at(), Some(sim.now + SUPERSEDED_WAIT));
    for pid in second {
        assert!(matches!(
            sim.exit(pid, ExitStatus::Signal(9)),
            Reaped::Expected(_)
        ));
    }
    let third = sim.fill();
    assert_eq!(third.len(), 2);
    assert!(third.iter().all(|&p| sim.generation_of(p) == 3));
    for pid in third {
        for old in stopped(&sim.ready(pid)) {
            sim.exit(old, OK);
        }
    }
    assert!(sim.pool.reload_done());
}

#[test]
fn a_killed_starter_stuck_in_the_kernel_stalls_forks_at_most_a_second() {
    let mut sim = Sim::running(1, ReloadMode::All);
    sim.pool.begin_reload(sim.now);
    sim.fill();
    sim.pool.begin_reload(sim.now);
    assert!(sim.fill().is_empty());
    sim.advance(999);
    assert!(sim.fill().is_empty());
    sim.advance(1);
    assert_eq!(sim.fill().len(), 1);
}

#[test]
fn workers_dying_before_ready_back_off_doubling_until_one_is_ready() {
    let mut sim = Sim::new(1, ReloadMode::All);
    let mut pid = sim.fill()[0];
    let mut delays = Vec::new();
    for _ in 0..5 {
        let Reaped::Crashed { backoff, .. } = sim.exit(pid, LOAD_ERROR) else {
            panic!("crash");
        };
        delays.push(backoff.map(|d| d.as_millis()));
        if let Some(d) = backoff {
            assert!(sim.fill().is_empty(), "held back");
            assert_eq!(sim.pool.wake_at(), Some(sim.now + d));
            sim.now += d;
        }
        pid = sim.fill()[0];
    }
    assert_eq!(delays, [None, Some(50), Some(100), Some(200), Some(400)]);
    sim.ready(pid);
    let Reaped::Crashed { backoff, .. } = sim.exit(pid, SEGV) else {
        panic!("crash");
    };
    assert_eq!(backoff, None, "a ready worker ended the back-off");
    assert_eq!(sim.fill().len(), 1, "replaced at once");
}

#[test]
fn crashes_in_requests_are_replaced_within_a_budget_never_leaving_the_pool_empty() {
    let mut sim = Sim::running(2, ReloadMode::All);
    // A burst of 2 × processes replacements, then one per 1/processes s.
    let mut forked = 0;
    for _ in 0..4 {
        let pid = sim.pool.workers()[0].pid;
        sim.exit(pid, SEGV);
        let new = sim.fill();
        forked += new.len();
        for p in new {
            sim.ready(p);
        }
    }
    assert_eq!(forked, 4, "the burst");
    let pid = sim.pool.workers()[0].pid;
    sim.exit(pid, SEGV);
    assert!(
        sim.fill().is_empty(),
        "budget spent, one worker still serves"
    );
    assert_eq!(
        sim.pool.wake_at(),
        Some(sim.now + Duration::from_millis(500))
    );
    // With none left, one is forked at once regardless.
    let last = sim.pool.workers()[0].pid;
    sim.exit(last, SEGV);
    let floor = sim.fill();
    assert_eq!(floor.len(), 1, "the floor");
    sim.advance(500);
    assert_eq!(sim.fill().len(), 1, "a token came back");
    assert_eq!(sim.pool.respawns[Respawn::Crash.index()], 6);
}

#[test]
fn max_requests_recycling_waits_for_min_lifetime_then_replaces_before_stopping() {
    let mut sim = Sim::running(2, ReloadMode::All);
    let pid = sim.pool.workers()[0].pid;
    let min = Duration::from_secs(60);
    sim.advance(10_000);
    sim.retire(pid, RetireReason::MaxRequests, min);
    let due = sim.pool.workers()[0].spawned + min;
    assert_eq!(sim.state(pid), Some(State::RetireAt(due)));
    // Asked again while deferred: counted once.
    sim.retire(pid, RetireReason::MaxRequests, min);
    assert_eq!(sim.pool.respawns[Respawn::MaxRequests.index()], 1);
    assert!(sim.fill().is_empty(), "still serving as before");
    assert_eq!(sim.pool.wake_at(), Some(due));

    sim.now = due;
    assert!(sim.pool.tick(sim.now).is_empty());
    assert_eq!(sim.state(pid), Some(State::Retiring));
    let successor = sim.fill();
    assert_eq!(successor.len(), 1, "a successor first");
    assert_eq!(sim.serving(), 2, "the retiring one still serves");
    assert_eq!(stopped(&sim.ready(successor[0])), vec![pid]);
    assert!(matches!(sim.exit(pid, OK), Reaped::Expected(_)));
    assert!(sim.fill().is_empty());
}

#[test]
fn a_stopped_worker_past_its_grace_is_killed_once() {
    let mut sim = Sim::running(2, ReloadMode::All);
    let pid = sim.pool.workers()[1].pid;
    sim.pool.set_target(1);
    assert_eq!(stopped(&sim.pool.stop_surplus(sim.now)), vec![pid]);
    assert_eq!(sim.pool.wake_at(), Some(sim.now + GRACE));
    sim.advance(GRACE.as_millis() as u64 - 1);
    assert!(sim.pool.tick(sim.now).is_empty());
    sim.advance(1);
    assert_eq!(killed(&sim.pool.tick(sim.now)), vec![pid]);
    assert!(sim.pool.tick(sim.now).is_empty(), "killed once");
    assert!(matches!(
        sim.exit(pid, ExitStatus::Signal(9)),
        Reaped::Expected(_)
    ));
}

#[test]
fn harakiri_signals_then_kills_after_its_grace_and_is_replaced() {
    let mut sim = Sim::running(1, ReloadMode::All);
    let pid = sim.pool.workers()[0].pid;
    assert_eq!(
        sim.pool.harakiri(pid, sim.now),
        vec![Command::Harakiri { pid }]
    );
    assert!(sim.pool.harakiri(pid, sim.now).is_empty(), "once");
    assert_eq!(sim.fill().len(), 1, "replaced at once");
    sim.advance(HARAKIRI_GRACE.as_millis() as u64);
    assert_eq!(killed(&sim.pool.tick(sim.now)), vec![pid]);
    assert!(matches!(
        sim.exit(pid, ExitStatus::Signal(9)),
        Reaped::Expected(_)
    ));
    assert_eq!(sim.pool.harakiris.get(&1), Some(&1));
    assert_eq!(sim.pool.respawns[Respawn::Harakiri.index()], 1);
}

#[test]
fn a_drain_signals_everyone_and_forks_nothing_more() {
    let mut sim = Sim::running(3, ReloadMode::All);
    let pids = sim.pids();
    let stop = sim.pool.drain(libc::SIGUSR2);
    assert_eq!(stop.len(), 3);
    assert!(stop
        .iter()
        .all(|c| matches!(c, Command::Signal { signal, .. } if *signal == libc::SIGUSR2)));
    sim.retire(pids[0], RetireReason::Rss, Duration::ZERO);
    assert!(sim.pool.recyclable().next().is_none());
    assert!(
        sim.exit(pids[0], SEGV).is_expected(),
        "a death while draining is expected"
    );
    assert!(sim.fill().is_empty(), "nothing is replaced");
    let mut kill = killed(&sim.pool.kill_all());
    kill.sort();
    assert_eq!(kill, pids[1..]);
    for &pid in &pids[1..] {
        sim.exit(pid, OK);
    }
    assert!(sim.pool.is_empty());
}

#[test]
fn ttin_and_ttou_change_the_target_newest_stopped_first() {
    let mut sim = Sim::running(2, ReloadMode::All);
    sim.pool.set_target(3);
    let added = sim.fill();
    assert_eq!(added.len(), 1);
    sim.ready(added[0]);
    sim.pool.set_target(1);
    let stop = stopped(&sim.pool.stop_surplus(sim.now));
    let mut ids: Vec<_> = stop
        .iter()
        .map(|p| {
            sim.pool
                .workers()
                .iter()
                .find(|w| w.pid == *p)
                .map(|w| w.id)
        })
        .collect();
    ids.sort();
    assert_eq!(ids, [Some(2), Some(3)]);
    assert_eq!(sim.pool.set_target(0), 1, "never below one");
}

#[test]
fn a_failed_fork_is_retried_after_its_delay_not_before() {
    let mut sim = Sim::new(2, ReloadMode::All);
    let spawn = sim.pool.next_spawn(sim.now).expect("a worker is missing");
    // The master could not fork it.
    sim.pool.retry_after(sim.now, Duration::from_secs(1));
    assert_eq!(
        sim.pool.next_spawn(sim.now),
        None,
        "not again in the same turn"
    );
    assert_eq!(sim.pool.wake_at(), Some(sim.now + Duration::from_secs(1)));
    sim.advance(1000);
    assert_eq!(sim.pool.next_spawn(sim.now), Some(spawn));
    assert_eq!(sim.fill().len(), 2);
}

#[test]
fn a_closed_pool_neither_forks_nor_recycles_while_its_workers_finish() {
    let mut sim = Sim::running(2, ReloadMode::All);
    let pids = sim.pids();
    let min = Duration::from_secs(60);
    sim.retire(pids[0], RetireReason::MaxRequests, min);
    // The drain has begun (the signals aside): nothing changes the pool.
    sim.pool.close();
    sim.exit(pids[1], SEGV);
    assert!(sim.fill().is_empty(), "a crash is not replaced");
    sim.advance(60_000);
    assert!(sim.pool.tick(sim.now).is_empty());
    assert!(
        matches!(sim.state(pids[0]), Some(State::RetireAt(_))),
        "no successor is due"
    );
    assert_eq!(
        sim.pool.wake_at(),
        None,
        "nothing due: the master does not spin"
    );
    sim.retire(pids[0], RetireReason::Rss, Duration::ZERO);
    assert_eq!(sim.pool.respawns[Respawn::Rss.index()], 0);
}

impl Reaped {
    fn is_expected(&self) -> bool {
        matches!(self, Reaped::Expected(_))
    }
}
