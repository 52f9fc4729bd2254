//! The pool's work queue and its idle workers (no Python in here).
//!
//! One injector queue (`VecDeque` behind a mutex) shared by all workers,
//! plus a LIFO stack of parked workers. Why not per-worker deques with
//! stealing: every job runs Python and so takes the GIL (or, free-threaded,
//! the interpreter's own locks) for far longer than the queue's lock is
//! held, and a submitter cannot know which worker will be free first;
//! measured in docs/benchmarks.md ("threads"), the queue lock never shows
//! in profiles. LIFO wake-up keeps the most recently run (cache-warm)
//! worker busy and lets the others time out and retire.
//!
//! Waiting for work, a worker first spins briefly (GIL released) watching
//! `pending`, then parks. `submit` wakes a parked worker only when there
//! are more queued jobs than spinning workers, so a steady stream of
//! `await run_in_executor(...)` calls is picked up by a spinning worker
//! without any futex wake-up. Spinning is bounded (`SPIN`), only on
//! machines with more than one CPU, and skipped by a worker whose last
//! spins all came up empty (adaptive: `Spin`).
//!
//! Invariants (under `st`): `workers` counts threads started and not yet
//! exited; a worker is either running a job, spinning, parked (its parker
//! in `idle`), or exiting. `pending` mirrors `queue.len()` for spinners.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::parker::Parker;

/// Longest a worker spins for the next job before parking.
const SPIN: Duration = Duration::from_micros(50);

pub(crate) struct State<J> {
    pub queue: VecDeque<J>,
    pub idle: Vec<Arc<Parker>>,
    pub workers: usize,
    pub max_workers: usize,
    pub shutdown: bool,
    /// The executor object is gone (garbage-collected without `shutdown`):
    /// workers exit as soon as the queue is empty instead of idling, but
    /// jobs are still accepted (a caller may still hold `submit`).
    pub orphaned: bool,
}

pub(crate) struct Shared<J> {
    pub st: Mutex<State<J>>,
    /// `queue.len()`, readable without the lock. Release on store, Acquire
    /// on the spinner's load: a spinner that sees it non-zero then takes
    /// the lock, which orders the queue contents anyway; the orderings only
    /// keep the hint from lagging.
    pending: AtomicUsize,
    /// Workers looking for work and not parked: spinning, or just done with a job
    /// (worker_available). Relaxed: a hint for `push`; a stale
    /// value costs one extra unpark or one spin period, never a lost job,
    /// because a spinner re-checks the queue under the lock before parking).
    spinning: AtomicUsize,
    idle_timeout: Duration,
    spin_allowed: bool,
}

/// What `push` asks of the caller after the lock is released.
pub(crate) enum Wake {
    Nobody,
    Unpark(Arc<Parker>),
    /// Start a new worker (already counted in `workers`).
    Spawn,
}

/// Why `push` refused a job.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    Shutdown,
    Exiting,
}

/// A worker's spin budget: spinning that never finds work is skipped
/// until parking has been tried a few times.
#[derive(Default)]
pub(crate) struct Spin {
    misses: u32,
    /// The last `next_job` found the queue empty at first and had to spin
    /// or park for its job (so someone else pushed it, usually while
    /// holding the GIL).
    pub(crate) waited: bool,
}

impl<J> Shared<J> {
    pub(crate) fn new(max_workers: usize, idle_timeout: Duration) -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Shared {
            st: Mutex::new(State {
                queue: VecDeque::new(),
                idle: Vec::new(),
                workers: 0,
                max_workers,
                shutdown: false,
                orphaned: false,
            }),
            pending: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            idle_timeout,
            spin_allowed: cpus > 1,
        }
    }

    /// Queues a job, or refuses it (returning it): after shutdown, or when
    /// `exiting` (the interpreter is exiting), in that order, as the
    /// stdlib's `submit` checks them.
    pub(crate) fn push(&self, job: J, exiting: bool) -> Result<Wake, (J, Refused)> {
        let mut st = self.st.lock();
        if st.shutdown {
            return Err((job, Refused::Shutdown));
        }
        if exiting {
            return Err((job, Refused::Exiting));
        }
        st.queue.push_back(job);
        self.pending.store(st.queue.len(), Ordering::Release);
        if st.queue.len() <= self.spinning.load(Ordering::Relaxed) {
            return Ok(Wake::Nobody);
        }
        if let Some(p) = st.idle.pop() {
            return Ok(Wake::Unpark(p));
        }
        if st.workers < st.max_workers {
            st.workers += 1;
            return Ok(Wake::Spawn);
        }
        Ok(Wake::Nobody)
    }

    /// A worker that could not be started is no longer counted.
    pub(crate) fn spawn_failed(&self) {
        let mut st = self.st.lock();
        st.workers = st.workers.saturating_sub(1);
    }

    fn pop_locked(&self, st: &mut State<J>) -> Option<J> {
        let j = st.queue.pop_front();
        self.pending.store(st.queue.len(), Ordering::Release);
        j
    }

    /// Under the lock: `Some(Some(job))`, or `Some(None)` if the worker must
    /// exit (shut down or orphaned, nothing queued), or `None` to keep
    /// waiting. An exiting worker stops counting in `spinning` before the
    /// lock is released: an orphaned pool still takes jobs, and a `push`
    /// that counted it as about to look would leave its job to nobody.
    fn take_or_exit(&self, counted: &mut bool) -> Option<Option<J>> {
        let mut st = self.st.lock();
        if let Some(j) = self.pop_locked(&mut st) {
            return Some(Some(j));
        }
        if st.shutdown || st.orphaned {
            st.workers = st.workers.saturating_sub(1);
            if std::mem::replace(counted, false) {
                self.spinning.fetch_sub(1, Ordering::Relaxed);
            }
            return Some(None);
        }
        None
    }

    /// Counts the calling worker as looking for work. Called before
    /// `next_job`, while the worker still holds the GIL after its last job:
    /// a `submit` that runs as soon as the GIL is released then sees it
    /// and does not start another thread (the stdlib's idle semaphore,
    /// released before its worker blocks, has the same effect).
    pub(crate) fn worker_available(&self) {
        self.spinning.fetch_add(1, Ordering::Relaxed);
    }

    /// The next job for a worker, waiting for one (call without the GIL,
    /// after `worker_available`). `None`: the worker must exit (shutdown
    /// with an empty queue, or idle for `idle_timeout`); it is no longer
    /// counted in `workers`.
    pub(crate) fn next_job(&self, me: &Arc<Parker>, spin: &mut Spin) -> Option<J> {
        // Counted in `spinning` (worker_available) until it parks or leaves.
        let mut counted = true;
        spin.waited = false;
        let uncount = |counted: &mut bool| {
            if std::mem::replace(counted, false) {
                self.spinning.fetch_sub(1, Ordering::Relaxed);
            }
        };
        loop {
            if let Some(r) = self.take_or_exit(&mut counted) {
                uncount(&mut counted);
                return r;
            }
            spin.waited = true;
            if self.spin_allowed && spin.misses < 3 {
                if !counted {
                    self.spinning.fetch_add(1, Ordering::Relaxed);
                    counted = true;
                }
                if self.spin_for_work() {
                    spin.misses = 0;
                    continue;
                }
                spin.misses += 1;
            }
            {
                let mut st = self.st.lock();
                uncount(&mut counted);
                if !st.queue.is_empty() || st.shutdown || st.orphaned {
                    continue;
                }
                me.reset();
                st.idle.push(me.clone());
            }
            if me.park(self.idle_timeout) {
                // Woken for a job: spinning is worth it again.
                spin.misses = 0;
                continue;
            }
            let mut st = self.st.lock();
            if let Some(i) = st.idle.iter().position(|p| Arc::ptr_eq(p, me)) {
                st.idle.remove(i);
                if st.queue.is_empty() && !st.shutdown {
                    // Idle too long: retire.
                    st.workers = st.workers.saturating_sub(1);
                    return None;
                }
            } else {
                // Popped by a `push` racing with the timeout: its token
                // arrived late; take the job.
                drop(st);
                me.reset();
            }
        }
    }

    /// Spins up to `SPIN` for `pending` to become non-zero (the caller is
    /// counted in `spinning`).
    fn spin_for_work(&self) -> bool {
        crate::sync::waiter::spin_until(SPIN, || self.pending.load(Ordering::Acquire) > 0)
    }

    /// Marks the pool shut down and wakes every parked worker; returns the
    /// queued jobs if `drain` (cancel_futures), else leaves them to run.
    pub(crate) fn shutdown(&self, drain: bool) -> Vec<J> {
        let (jobs, idle) = {
            let mut st = self.st.lock();
            st.shutdown = true;
            let jobs: Vec<J> = if drain {
                st.queue.drain(..).collect()
            } else {
                Vec::new()
            };
            self.pending.store(st.queue.len(), Ordering::Release);
            (jobs, std::mem::take(&mut st.idle))
        };
        for p in idle {
            p.unpark();
        }
        jobs
    }

    /// The executor was dropped without shutdown: parked workers wake and
    /// exit, busy ones exit once the queue is empty; later jobs (through a
    /// `submit` someone still holds) start a worker as usual.
    pub(crate) fn orphan(&self) {
        let idle = {
            let mut st = self.st.lock();
            st.orphaned = true;
            std::mem::take(&mut st.idle)
        };
        for p in idle {
            p.unpark();
        }
    }

    /// Every queued job, removed (a broken pool fails them).
    pub(crate) fn drain(&self) -> Vec<J> {
        let mut st = self.st.lock();
        let jobs = st.queue.drain(..).collect();
        self.pending.store(0, Ordering::Release);
        jobs
    }

    /// In a forked child only the forking thread exists: the parent's
    /// workers (and a lock one of them may have held) are gone.
    pub(crate) fn after_fork_in_child(&self) {
        if self.st.is_locked() {
            // SAFETY: after fork() only the calling thread exists, so the
            // holder of this lock (a parent thread) will never release it;
            // nothing else can be inside the critical section.
            unsafe { self.st.force_unlock() };
        }
        let mut st = self.st.lock();
        st.workers = 0;
        st.idle.clear();
        self.spinning.store(0, Ordering::Relaxed);
    }

    /// Workers counted as alive.
    pub(crate) fn workers(&self) -> usize {
        self.st.lock().workers
    }

    /// Jobs queued and not yet taken.
    pub(crate) fn queued(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_spawns_up_to_max_then_queues() {
        let s: Shared<u32> = Shared::new(2, Duration::from_secs(1));
        assert!(matches!(s.push(1, false), Ok(Wake::Spawn)));
        assert!(matches!(s.push(2, false), Ok(Wake::Spawn)));
        assert!(matches!(s.push(3, false), Ok(Wake::Nobody)));
        assert_eq!(s.workers(), 2);
        assert_eq!(s.queued(), 3);
    }

    #[test]
    fn shutdown_refuses_new_jobs_and_can_drain() {
        let s: Shared<u32> = Shared::new(1, Duration::from_secs(1));
        let _ = s.push(1, false);
        let _ = s.push(2, false);
        assert_eq!(s.shutdown(true), vec![1, 2]);
        assert!(s.push(3, false).is_err());
    }

    #[test]
    fn workers_take_every_job_and_exit_on_shutdown() {
        let s: Arc<Shared<u32>> = Arc::new(Shared::new(4, Duration::from_secs(10)));
        let done = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for i in 0..1000u32 {
            match s.push(i, false) {
                Ok(Wake::Spawn) => {
                    let (s, done) = (s.clone(), done.clone());
                    threads.push(std::thread::spawn(move || {
                        let me = Arc::new(Parker::default());
                        let mut spin = Spin::default();
                        loop {
                            s.worker_available();
                            if s.next_job(&me, &mut spin).is_none() {
                                break;
                            }
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }));
                }
                Ok(Wake::Unpark(p)) => p.unpark(),
                Ok(Wake::Nobody) => {}
                Err(_) => panic!("pushed after shutdown"),
            }
        }
        let _ = s.shutdown(false);
        for t in threads {
            let _ = t.join();
        }
        assert_eq!(s.queued(), 0);
        assert_eq!(s.workers(), 0);
        assert_eq!(done.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn idle_worker_retires_after_timeout() {
        let s: Arc<Shared<u32>> = Arc::new(Shared::new(1, Duration::from_millis(20)));
        assert!(matches!(s.push(7, false), Ok(Wake::Spawn)));
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            let me = Arc::new(Parker::default());
            let mut spin = Spin::default();
            let mut n = 0;
            loop {
                s2.worker_available();
                if s2.next_job(&me, &mut spin).is_none() {
                    break;
                }
                n += 1;
            }
            n
        });
        assert_eq!(t.join().unwrap_or(0), 1);
        assert_eq!(s.workers(), 0);
    }
}
