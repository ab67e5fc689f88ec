//! `--threads N` (N > 1): the app threads and the two queues between them and
//! the I/O thread. Jobs go out in arrival order and wake one idle thread
//! each (no herd on the GIL); completions come back and wake the I/O thread
//! through its mio waker, once per batch. A thread that finishes a job takes
//! the next one without letting go of the GIL while jobs are waiting.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::job::{self, Completion, Job};
use crate::scoreboard::{Core, Slot};
use crate::wsgi::{Bridge, Gil};

struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Threads running a job.
    busy: usize,
}

pub struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    done: Mutex<Vec<Completion>>,
    waker: mio::Waker,
    wake_pending: AtomicBool,
    threads: usize,
    /// Where the free threads are published for siblings' fair admission
    /// (see `Listeners::defer`), as soon as a thread takes or ends a job.
    slot: &'static Slot,
}

/// A poisoned lock only means another thread panicked while holding it; the
/// queues themselves are still consistent (each operation is one push/pop).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(waker: mio::Waker, threads: usize, slot: &'static Slot) -> Shared {
        slot.set_free_threads(threads);
        Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                closed: false,
                busy: 0,
            }),
            work: Condvar::new(),
            done: Mutex::new(Vec::new()),
            waker,
            wake_pending: AtomicBool::new(false),
            threads,
            slot,
        }
    }

    /// Threads neither busy nor spoken for by a queued job.
    fn free(&self, q: &Queue) -> usize {
        self.threads.saturating_sub(q.busy + q.jobs.len())
    }

    /// App threads free to take a request now.
    pub fn idle(&self) -> usize {
        self.free(&lock(&self.queue))
    }

    /// Queues a job for the next free thread.
    pub fn submit(&self, job: Job) {
        let mut q = lock(&self.queue);
        q.jobs.push_back(job);
        self.slot.set_free_threads(self.free(&q));
        drop(q);
        self.work.notify_one();
    }

    /// No more jobs: threads return once the queue is empty.
    pub fn close(&self) {
        lock(&self.queue).closed = true;
        self.work.notify_all();
    }

    /// Blocks until there is a job (or the queue is closed and empty).
    /// Blocks until there is a job (or the queue is closed and empty).
    /// `finished`: the calling thread just ended one.
    fn next(&self, finished: bool) -> Option<Job> {
        let mut q = self.end_job(finished);
        loop {
            if let Some(job) = q.jobs.pop_front() {
                q.busy += 1;
                return Some(job);
            }
            if q.closed {
                return None;
            }
            q = self.work.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn try_next(&self) -> Option<Job> {
        let mut q = self.end_job(true);
        let job = q.jobs.pop_front();
        if job.is_some() {
            q.busy += 1;
        } else {
            self.slot.set_free_threads(self.free(&q));
        }
        job
    }

    fn end_job(&self, finished: bool) -> MutexGuard<'_, Queue> {
        let mut q = lock(&self.queue);
        if finished {
            q.busy = q.busy.saturating_sub(1);
        }
        q
    }

    fn complete(&self, c: Completion) {
        lock(&self.done).push(c);
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                log::error!("cannot wake the I/O thread: {e}");
            }
        }
    }

    /// The I/O thread: takes the completions that arrived.
    pub fn take_completions(&self, out: &mut Vec<Completion>) {
        self.wake_pending.store(false, Ordering::Release);
        std::mem::swap(&mut *lock(&self.done), out);
    }
}

/// The body of app thread `index`: one Python thread state for its life.
/// (`try_next` ends the finished job's count; `next(false)` after it does
/// not count it twice.)
pub fn thread_main(shared: &Shared, bridge: &Bridge, gil: &Gil<'_>, index: usize, core: &Core) {
    let mut caller = match bridge.caller(gil) {
        Ok(c) => c,
        Err(e) => {
            log::error!("app thread {index}: {e}");
            return;
        }
    };
    let mut next = gil.release(|| shared.next(false));
    while let Some(job) = next {
        let done = job::run(&mut caller, gil, core, index, job);
        shared.complete(done);
        // Work waiting: keep the GIL and take it; otherwise sleep without it.
        next = match shared.try_next() {
            Some(job) => Some(job),
            None => gil.release(|| shared.next(false)),
        };
    }
}

/// Starts the app threads of worker `id`.
pub fn spawn(
    shared: &Arc<Shared>,
    bridge: &Arc<Bridge>,
    gil: &Gil<'_>,
    count: usize,
    id: usize,
    cores: &'static [Core],
) -> Result<crate::wsgi::AppThreads, String> {
    let (s, b) = (shared.clone(), bridge.clone());
    let body = Arc::new(move |gil: &Gil<'_>, i: usize| {
        if let Some(core) = cores.get(i) {
            thread_main(&s, &b, gil, i, core);
        }
    });
    bridge.spawn_threads(
        gil,
        count,
        &|i| format!("rwsgi-worker-{id}-thread-{}", i + 1),
        body,
    )
}
