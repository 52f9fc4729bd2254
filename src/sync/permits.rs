//! `Permits`: the counting core behind `Lock` (one permit), `Semaphore`
//! and `BoundedSemaphore`, and `RLock`'s inner lock.
//!
//! State word (`state`): `permits << 1 | PARKED`. PARKED means the wait
//! queue may be non-empty, so a release must take the slow path (the
//! queue's mutex) to wake someone. Acquiring never looks at PARKED: a
//! thread that arrives while others sleep may take a free permit
//! ("barging"), which keeps a releasing thread from handing the GIL-bound
//! baton to a sleeping one on every release (the lock-convoy problem).
//!
//! Fairness: a release wakes the oldest waiter. If that waiter has waited
//! `FAIR_AFTER` (1 ms) or is a coroutine, the permit is handed to it
//! directly (GRANTED: nobody can barge in front of it); otherwise it is
//! only WOKEN and competes again (re-queued at the front, keeping its age,
//! if it loses).
//!
//! Spinning: a thread that finds no permit first spins briefly with the GIL
//! released, and only when nobody is parked yet and there is a second CPU
//! to run the holder; then it parks (futex).
//!
//! Invariants: PARKED is set and cleared only under `q`'s mutex; it is set
//! whenever `q` is non-empty. Permits never exceed `bound`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use pyo3::prelude::*;

use super::args::Wait;
use super::loomable::{AtomicUsize, Mutex};
#[cfg(test)]
use super::waiter::WAITING;
use super::waiter::{self, Queue, Waiter, GRANTED, WOKEN};

const PARKED: usize = 1;
const ONE: usize = 2;

/// Releasing past the bound (a `BoundedSemaphore` or a `Lock` released
/// while unlocked).
pub(crate) struct Overflow;

pub(crate) struct Permits {
    state: AtomicUsize,
    bound: usize,
    q: Mutex<Queue>,
}

/// Spin rounds before parking (each round pauses 2^round times).
const SPIN_ROUNDS: u32 = 6;

fn multi_cpu() -> bool {
    static N: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()) > 1)
}

impl Permits {
    pub(crate) fn new(initial: usize, bound: usize) -> Self {
        Self {
            state: AtomicUsize::new(initial << 1),
            bound,
            q: Mutex::new(Queue::new()),
        }
    }

    pub(crate) fn value(&self) -> usize {
        // Relaxed: a snapshot for reprs and `locked()`.
        self.state.load(Ordering::Relaxed) >> 1
    }

    pub(crate) fn bound(&self) -> usize {
        self.bound
    }

    /// Takes a permit if one is free.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        // Relaxed load: only a guess for the CAS, which re-validates.
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s < ONE {
                return false;
            }
            // Acquire on success: what the previous holder wrote before its
            // (Release) release is visible to the new holder.
            match self
                .state
                .compare_exchange_weak(s, s - ONE, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
    }

    /// Returns `n` permits. The woken waiters (to pass to `waiter::wake`
    /// once no lock is held) or `Overflow` when it would pass the bound.
    #[inline]
    pub(crate) fn release(&self, n: usize) -> Result<Vec<Arc<Waiter>>, Overflow> {
        // Relaxed load: a guess for the CAS below.
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let v = s >> 1;
            if n > self.bound.saturating_sub(v) {
                return Err(Overflow);
            }
            if s & PARKED != 0 {
                return self.release_slow(n);
            }
            // Release: publishes the holder's writes to the next acquirer.
            match self.state.compare_exchange_weak(
                s,
                s + n * ONE,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(Vec::new()),
                Err(x) => s = x,
            }
        }
    }

    fn release_slow(&self, n: usize) -> Result<Vec<Arc<Waiter>>, Overflow> {
        let mut q = self.q.lock();
        // Under q, only acquirers (which decrease it) race with us.
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if n > self.bound.saturating_sub(s >> 1) {
                return Err(Overflow);
            }
            // Release: as in `release`.
            match self.state.compare_exchange_weak(
                s,
                s + n * ONE,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(x) => s = x,
            }
        }
        Ok(self.wake_some(&mut q, n))
    }

    /// Under `q`: wakes up to `n` waiters for the permits just returned.
    fn wake_some(&self, q: &mut Queue, n: usize) -> Vec<Arc<Waiter>> {
        let mut woken = Vec::new();
        let now = Instant::now();
        while woken.len() < n {
            let Some(w) = q.front() else { break };
            if w.handoff_due(now) {
                if !self.try_acquire() {
                    break; // a barging thread took the permits already
                }
                w.mark(GRANTED);
            } else {
                w.mark(WOKEN);
            }
            if let Some(w) = q.pop_front() {
                woken.push(w);
            }
        }
        if q.is_empty() {
            // Relaxed: PARKED is only read as a hint outside q's mutex;
            // the mutex orders it against queueing.
            self.state.fetch_and(!PARKED, Ordering::Relaxed);
        }
        woken
    }

    /// Queues `w` unless a permit can be taken now (then `false`).
    fn enqueue(&self, w: &Arc<Waiter>, front: bool) -> bool {
        let mut q = self.q.lock();
        // Relaxed: ordered with releasers by q's mutex (a releaser seeing
        // PARKED takes the slow path, which needs q).
        self.state.fetch_or(PARKED, Ordering::Relaxed);
        if self.try_acquire() {
            if q.is_empty() {
                self.state.fetch_and(!PARKED, Ordering::Relaxed);
            }
            return false;
        }
        if front {
            q.push_front(w.clone());
        } else {
            q.push_back(w.clone());
        }
        true
    }

    fn spin(&self) -> bool {
        if !multi_cpu() {
            return false;
        }
        for round in 0..SPIN_ROUNDS {
            // Relaxed: a hint; someone parked means spinning will not win.
            if self.state.load(Ordering::Relaxed) & PARKED != 0 {
                return false;
            }
            for _ in 0..(1u32 << round) {
                std::hint::spin_loop();
            }
            if self.try_acquire() {
                return true;
            }
        }
        false
    }

    /// A thread's acquire with a decided wait: the fast path, then (unless
    /// `Wait::Try`) the blocking path. The body of every `acquire` and
    /// `__enter__` on this core.
    #[inline]
    pub(crate) fn acquire(&self, owner: &Bound<'_, PyAny>, wait: Wait) -> PyResult<bool> {
        if self.try_acquire() {
            return Ok(true);
        }
        match wait {
            Wait::Try => Ok(false),
            Wait::Until(d) => self.acquire_blocking(owner.py(), owner, d),
        }
    }

    /// Blocking acquire from a thread (the fast path failed). Ok(true):
    /// acquired; Ok(false): the deadline passed; Err: a signal handler
    /// raised (nothing is held then).
    pub(crate) fn acquire_blocking(
        &self,
        py: Python<'_>,
        owner: &Bound<'_, PyAny>,
        deadline: Option<Instant>,
    ) -> PyResult<bool> {
        if py.detach(|| self.spin()) {
            return Ok(true);
        }
        match self.acquire_queued(|w| waiter::block(py, w, deadline)) {
            Ok(got) => Ok(got),
            Err((e, held)) => {
                if held {
                    let _ = self.release_and_wake(owner, 1);
                }
                Err(e)
            }
        }
    }

    /// The queued part of a blocking acquire, with `block` as the wait
    /// (`waiter::block` here; a yield loop in the loom model). Ok(true):
    /// acquired; Ok(false): `block` timed out; Err((e, held)): `block`
    /// failed, and `held` says whether a permit was granted meanwhile (the
    /// caller gives it back).
    fn acquire_queued<E>(
        &self,
        mut block: impl FnMut(&Waiter) -> Result<Option<u32>, E>,
    ) -> Result<bool, (E, bool)> {
        let w = Waiter::thread();
        let mut front = false;
        loop {
            if !self.enqueue(&w, front) {
                return Ok(true);
            }
            match block(&w) {
                Ok(Some(GRANTED)) => return Ok(true),
                Ok(Some(_)) => {
                    // WOKEN: compete again; keep the place at the front.
                    if self.try_acquire() {
                        return Ok(true);
                    }
                    w.rearm();
                    front = true;
                }
                Ok(None) => return Ok(self.give_up(&w)),
                Err(e) => return Err((e, self.give_up(&w))),
            }
        }
    }

    /// A waiting thread stops waiting; whether it ended up holding a
    /// permit anyway (granted meanwhile, or woken and the permit free).
    fn give_up(&self, w: &Arc<Waiter>) -> bool {
        let mut q = self.q.lock();
        match w.state() {
            GRANTED => true,
            WOKEN => self.try_acquire(),
            _ => {
                waiter::remove(&mut q, w);
                if q.is_empty() {
                    // Relaxed: as in wake_some.
                    self.state.fetch_and(!PARKED, Ordering::Relaxed);
                }
                false
            }
        }
    }

    /// `release(n)` and wake whoever it freed (GIL held, no lock held).
    pub(crate) fn release_and_wake(
        &self,
        owner: &Bound<'_, PyAny>,
        n: usize,
    ) -> Result<(), Overflow> {
        let woken = self.release(n)?;
        if !woken.is_empty() {
            waiter::wake(owner.py(), owner, woken);
        }
        Ok(())
    }

    /// The async acquire shared by the classes: a finished awaitable if a
    /// permit is free (`on_take` runs first), else a queued future that
    /// `owner._settle(fut, value, tag)` completes on the handoff.
    pub(crate) fn acquire_async(
        &self,
        owner: &Bound<'_, PyAny>,
        value: Py<PyAny>,
        tag: u64,
        on_take: impl FnOnce(),
    ) -> PyResult<Py<PyAny>> {
        let py = owner.py();
        if self.try_acquire() {
            on_take();
            return waiter::ready(py, value);
        }
        let (w, fut) = waiter::async_waiter(py, value.clone_ref(py), tag)?;
        if !self.enqueue(&w, false) {
            on_take();
            return waiter::ready(py, value);
        }
        waiter::track_grant(owner, fut, value, tag)
    }

    /// A coroutine waiter's future finished without a grant (cancelled):
    /// drops it from the queue if it is still there.
    pub(crate) fn forget(&self, fut: &Bound<'_, PyAny>) -> Option<Arc<Waiter>> {
        let mut q = self.q.lock();
        let w = waiter::remove_future(&mut q, fut);
        if q.is_empty() {
            // Relaxed: as in wake_some.
            self.state.fetch_and(!PARKED, Ordering::Relaxed);
        }
        w
    }

    /// Whether the state is waiting-free (fork reinit check).
    pub(crate) fn reinit(&self, initial: usize) {
        let mut q = self.q.lock();
        let gone = std::mem::take(&mut *q);
        // Relaxed: the child of a fork has one thread.
        self.state.store(initial << 1, Ordering::Relaxed);
        drop(q);
        // After the mutex: coroutine waiters hold Python objects.
        drop(gone);
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.q
            .lock()
            .iter()
            .filter(|w| w.state() == WAITING)
            .count()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_and_bound() {
        let p = Permits::new(1, 1);
        assert!(p.try_acquire());
        assert!(!p.try_acquire());
        assert!(p.release(1).is_ok());
        assert!(p.release(1).is_err());
        assert_eq!(p.value(), 1);
        assert_eq!(p.waiting(), 0);
    }

    #[test]
    fn queued_waiter_is_woken_by_release() {
        let p = Permits::new(0, usize::MAX >> 1);
        let w = Waiter::thread();
        assert!(p.enqueue(&w, false));
        let woken = p.release(1).unwrap_or_default();
        assert_eq!(woken.len(), 1);
        // Young thread waiter: woken to compete, the permit stays free.
        assert_eq!(w.state(), WOKEN);
        assert!(p.try_acquire());
    }
}

/// Loom models of the permit core (`RUSTFLAGS="--cfg loom" cargo test
/// --release loom`): every interleaving of the real `try_acquire`,
/// `release`, `enqueue`, `give_up` and `acquire_queued`, with the kernel
/// sleep replaced by a yield loop on the waiter's word.
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// `waiter::block` without the kernel: yields until marked.
    fn wait_marked(w: &Waiter) -> Result<Option<u32>, ()> {
        while w.state() == WAITING {
            thread::yield_now();
        }
        Ok(Some(w.state()))
    }

    /// `waiter::block` whose deadline passes at once.
    fn time_out(_w: &Waiter) -> Result<Option<u32>, ()> {
        Ok(None)
    }

    fn assert_settled(p: &Permits, value: usize) {
        assert_eq!(p.value(), value, "a permit lost or doubled");
        assert_eq!(p.waiting(), 0, "a waiter left queued");
        assert!(p.q.lock().is_empty());
        assert_eq!(
            p.state.load(Ordering::Relaxed) & PARKED,
            0,
            "PARKED left set with an empty queue"
        );
    }

    /// Runs `model` with young thread waiters (a release only wakes them
    /// to compete) and with waiters due for the direct handoff (GRANTED).
    fn both_handoffs(model: impl Fn()) {
        for handoff in [false, true] {
            waiter::LOOM_HANDOFF.with(|h| h.set(handoff));
            model();
        }
    }

    /// `n` threads run `body` on a one-permit core this thread holds,
    /// while this thread releases it; afterwards no permit is lost or
    /// doubled and nobody is left queued.
    fn race_a_release(n: usize, body: fn(&Permits)) {
        let mut b = loom::model::Builder::new();
        if n > 1 {
            b.preemption_bound = Some(3);
        }
        b.check(move || {
            let p = Arc::new(Permits::new(0, 1));
            let ts: Vec<_> = (0..n)
                .map(|_| {
                    let p = p.clone();
                    thread::spawn(move || body(&p))
                })
                .collect();
            assert!(p.release(1).is_ok());
            for t in ts {
                t.join().unwrap();
            }
            assert_settled(&p, 1);
        });
    }

    /// Queues, is woken or granted, takes the permit and gives it back.
    fn take_and_give_back(p: &Permits) {
        assert_eq!(p.acquire_queued(wait_marked), Ok(true));
        assert!(p.release(1).is_ok());
    }

    /// Times out at once after queueing. Granted or woken-and-free
    /// meanwhile, it holds the permit (returns True, as threading's can)
    /// and gives it back; otherwise it left the queue.
    fn time_out_or_give_back(p: &Permits) {
        if p.acquire_queued(time_out) == Ok(true) {
            assert!(p.release(1).is_ok());
        }
    }

    #[test]
    fn loom_release_wakes_a_queued_acquirer() {
        both_handoffs(|| race_a_release(1, take_and_give_back));
    }

    #[test]
    fn loom_timeout_racing_a_release_keeps_the_permit() {
        both_handoffs(|| race_a_release(1, time_out_or_give_back));
    }

    /// Two queued acquirers, one permit (a woken one may lose to the other
    /// and re-queue at the front).
    #[test]
    fn loom_two_acquirers_one_permit() {
        both_handoffs(|| race_a_release(2, take_and_give_back));
    }
}
