//! Waiters: what every primitive queues while someone waits on it.
//!
//! A `Waiter` is either a parked thread (it sleeps on its own futex word,
//! futex.rs) or a coroutine (an asyncio future on some loop, in any
//! thread). A primitive keeps its waiters in a queue under its own short
//! mutex and marks a waiter's outcome (`WOKEN`: try again, `GRANTED`: you
//! have it) *while holding that mutex*, so a waiter that gives up (timeout,
//! Ctrl-C, cancellation) can tell under the same mutex whether it lost the
//! race and now owns something it must keep or pass on.
//!
//! Invariant: no Python code runs while a primitive's mutex is held (it
//! could release the GIL and deadlock against a thread that holds the GIL
//! and waits for the mutex). Marking happens under the mutex; waking
//! (futex wake, scheduling the future's settlement on its loop) after it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::futex::{self, Woke};
use super::loomable::{fence, AtomicBool, AtomicU32};

pub(crate) const WAITING: u32 = 0;
/// Woken to try again (the primitive was freed but not handed over).
pub(crate) const WOKEN: u32 = 1;
/// Handed what it waited for (a permit, the lock, a notification).
pub(crate) const GRANTED: u32 = 2;

/// A waiter that has waited this long gets a direct handoff instead of
/// competing with threads that arrive later (eventual fairness).
pub(crate) const FAIR_AFTER: Duration = Duration::from_millis(1);

#[cfg(loom)]
std::thread_local! {
    /// In loom models: whether thread waiters count as due for a direct
    /// handoff (instead of their age). Set by the test before
    /// `loom::model`; loom's threads all run on the test's OS thread.
    pub(crate) static LOOM_HANDOFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Where a coroutine waiter's outcome goes.
pub(crate) struct AsyncTarget {
    pub(crate) loop_: Py<PyAny>,
    pub(crate) fut: Py<PyAny>,
    /// The loop's thread: settling from it needs no cross-thread wakeup.
    pub(crate) thread: ThreadId,
    /// The future's result when granted.
    pub(crate) value: Py<PyAny>,
    /// Primitive-specific (RLock: the owning task's key).
    pub(crate) tag: u64,
}

pub(crate) struct Waiter {
    /// WAITING / WOKEN / GRANTED; written under the primitive's mutex with
    /// Release, read by the waiter with Acquire (it then sees what the
    /// granter did before granting).
    pub(crate) word: AtomicU32,
    pub(crate) since: Instant,
    pub(crate) target: Option<AsyncTarget>,
    /// The thread is (about to be) asleep in FUTEX_WAIT: only then does a
    /// wake need the syscall (a spinning waiter sees the mark by itself).
    /// A Dekker pair with the word, through SeqCst fences: the waiter
    /// stores this flag, fences, reads the word (`prepare_sleep`); the
    /// waker stores the word (`mark`), fences, reads this flag
    /// (`needs_wake`). The two fences are ordered one way or the other,
    /// so either the waiter sees the mark and does not sleep, or the waker
    /// sees the flag and wakes it. (Fences, not SeqCst loads and stores:
    /// the same guarantee, and the form loom checks; it models SeqCst
    /// accesses only as AcqRel.)
    sleeping: AtomicBool,
    /// A thread waiter's payload (queue.rs: the item a putter brings or a
    /// getter is handed); moved under the primitive's mutex only.
    pub(crate) slot: parking_lot::Mutex<Option<Py<PyAny>>>,
}

pub(crate) type Queue = VecDeque<Arc<Waiter>>;

impl Waiter {
    pub(crate) fn thread() -> Arc<Self> {
        Arc::new(Self {
            word: AtomicU32::new(WAITING),
            since: Instant::now(),
            target: None,
            sleeping: AtomicBool::new(false),
            slot: parking_lot::Mutex::new(None),
        })
    }

    pub(crate) fn state(&self) -> u32 {
        self.word.load(Ordering::Acquire)
    }

    /// Marks the outcome; call under the primitive's mutex, wake after.
    pub(crate) fn mark(&self, state: u32) {
        // Release: the waiter's Acquire load then sees what the granter
        // did before granting. The Dekker half is in `needs_wake`.
        self.word.store(state, Ordering::Release);
    }

    /// Wakes the thread if it sleeps in the kernel (after `mark`).
    fn wake_sleeper(&self) {
        if self.needs_wake() {
            futex::wake(&self.word);
        }
    }

    /// The waker's half of the Dekker pair (after `mark`): whether the
    /// waiter may be asleep in the kernel.
    fn needs_wake(&self) -> bool {
        // SeqCst fence between `mark`'s store and this load: see
        // `sleeping`. Relaxed load: the fence orders it.
        fence(Ordering::SeqCst);
        self.sleeping.load(Ordering::Relaxed)
    }

    /// The waiter's half: raises `sleeping` and re-reads the word; whether
    /// it may go to sleep (still WAITING). If not, the flag is lowered.
    fn prepare_sleep(&self) -> bool {
        // Relaxed store, then a SeqCst fence, then the word: see
        // `sleeping`. FUTEX_WAIT re-checks the word atomically as well.
        // Acquire load: a mark seen here publishes the granter's writes.
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.word.load(Ordering::Acquire) != WAITING {
            self.sleeping.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Back to waiting before re-queueing (only its own thread does this).
    pub(crate) fn rearm(&self) {
        self.word.store(WAITING, Ordering::Relaxed);
    }

    pub(crate) fn is_async(&self) -> bool {
        self.target.is_some()
    }

    /// Async waiters always get a direct handoff (a retry would cost a loop
    /// round trip); threads after `FAIR_AFTER`.
    pub(crate) fn handoff_due(&self, now: Instant) -> bool {
        #[cfg(loom)]
        {
            // Time would make a loom model nondeterministic: the model
            // picks the outcome (see `LOOM_HANDOFF`).
            let _ = now;
            self.is_async() || LOOM_HANDOFF.with(|h| h.get())
        }
        #[cfg(not(loom))]
        {
            self.is_async() || now.saturating_duration_since(self.since) >= FAIR_AFTER
        }
    }

    fn is_for(&self, fut: &Bound<'_, PyAny>) -> bool {
        self.target
            .as_ref()
            .is_some_and(|t| t.fut.as_ptr() == fut.as_ptr())
    }
}

/// Removes `w` from `q`; whether it was there.
pub(crate) fn remove(q: &mut Queue, w: &Arc<Waiter>) -> bool {
    match q.iter().position(|x| Arc::ptr_eq(x, w)) {
        Some(i) => {
            q.remove(i);
            true
        }
        None => false,
    }
}

/// Removes the still-waiting coroutine waiter of `fut` (cancelled).
pub(crate) fn remove_future(q: &mut Queue, fut: &Bound<'_, PyAny>) -> Option<Arc<Waiter>> {
    let i = q.iter().position(|x| x.is_for(fut))?;
    q.remove(i)
}

/// The deadline of a `threading`-style timeout in seconds (negative: none;
/// too far to represent: none).
pub(crate) fn deadline(timeout: f64) -> Option<Instant> {
    if timeout < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(timeout)
        .ok()
        .and_then(|d| Instant::now().checked_add(d))
}

/// How long a waiter spins (GIL released) before sleeping in the kernel.
/// A handoff between two Python threads takes a few microseconds of the
/// other thread's Python code; catching it spinning saves one of the two
/// cross-CPU wake-ups a handoff costs (ours, then the GIL's).
const SPIN: Duration = Duration::from_micros(20);

/// Threads spinning right now: at most one per CPU beyond the one that
/// runs the GIL holder, so spinning never competes with the thread it
/// waits for.
static SPINNERS: AtomicUsize = AtomicUsize::new(0);

/// Pool workers spinning in [`spin_for_gil_release`] right now (at most
/// one per CPU beyond the first, as `SPINNERS`).
static GIL_SPINNERS: AtomicUsize = AtomicUsize::new(0);

/// Counts the times a thread released the GIL to block in ferrio (a
/// primitive's wait, an idle pool worker, the loop's poll); bumped first
/// thing after the release, by [`gil_released`].
static RELEASES: AtomicU64 = AtomicU64::new(0);

/// Tells spinners (see [`spin`]) that this thread has just released the
/// GIL to block. Call it first thing inside `py.detach`.
pub(crate) fn gil_released() {
    // Relaxed: a hint for spinners, ordering nothing.
    RELEASES.fetch_add(1, Ordering::Relaxed);
}

/// How long a spinner that saw its mark keeps spinning for the waker to
/// let go of the GIL (see [`spin`]).
const GIL_SPIN: Duration = Duration::from_micros(10);

/// A spin slot, given back on drop: at most one spinner per CPU beyond
/// the first per counter (`SPINNERS` for waits, `GIL_SPINNERS` for pool
/// workers' GIL spins).
pub(crate) struct SpinSlot(&'static AtomicUsize);

impl SpinSlot {
    /// One of the wait spin's slots (also for the loop waiting for an
    /// executor job), or None when all are taken (then do not spin).
    pub(crate) fn take() -> Option<SpinSlot> {
        Self::take_from(&SPINNERS)
    }

    fn take_from(counter: &'static AtomicUsize) -> Option<SpinSlot> {
        // Relaxed: a capacity hint; an overshoot by a racing thread costs
        // a few microseconds of one CPU, nothing else.
        if counter.fetch_add(1, Ordering::Relaxed) >= spin_slots() {
            counter.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(SpinSlot(counter))
    }
}

impl Drop for SpinSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Spins (no GIL) until `done()` or `limit` passes; whether `done()` was
/// seen. The clock is read once per 64 checks.
pub(crate) fn spin_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if Instant::now() >= end {
            return false;
        }
    }
}

/// Spins (GIL released) until some thread releases the GIL to block in
/// ferrio ([`gil_released`]: most handoffs end that way), for at most
/// `GIL_SPIN`; then the caller takes the GIL the normal way, which then
/// usually finds it free instead of sleeping on the GIL's condition
/// variable (a wake-up that costs ~30 µs when it targets an idle vCPU).
/// A heuristic only: a holder that lets go of the GIL some other way
/// costs the spinner at most `GIL_SPIN`. With `need_slot` the spin takes
/// one of the `GIL_SPINNERS` slots (skipped if none is free), for callers
/// that are not already limited in number (pool workers). Those slots are
/// not the wait spin's: a worker spinning here must not make the thread
/// it is about to wake sleep instead of spinning.
pub(crate) fn spin_for_gil_release(need_slot: bool) {
    let _slot = if need_slot {
        match SpinSlot::take_from(&GIL_SPINNERS) {
            Some(s) => Some(s),
            None => return,
        }
    } else {
        None
    };
    // Relaxed: a hint; nothing is read through it.
    let seen = RELEASES.load(Ordering::Relaxed);
    spin_until(GIL_SPIN, || RELEASES.load(Ordering::Relaxed) != seen);
}

fn spin_slots() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
    })
}

/// Spins up to `SPIN` (or the deadline) for `w` to be marked; whether it
/// was. Skipped when all spin slots are taken.
fn spin(w: &Waiter, deadline: Option<Instant>) -> bool {
    let Some(slot) = SpinSlot::take() else {
        return false;
    };
    let limit = deadline.map_or(SPIN, |d| {
        SPIN.min(d.saturating_duration_since(Instant::now()))
    });
    let marked = spin_until(limit, || w.state() != WAITING);
    // The slot is given back first: the waker, about to block, may
    // want to spin in its turn.
    drop(slot);
    if marked {
        // The waker marked us holding the GIL and usually keeps it a few
        // microseconds more (until it blocks itself). Asking for the GIL
        // now would put this thread to sleep on the GIL's condition
        // variable: a kernel round trip that the spin was there to avoid.
        spin_for_gil_release(false);
    }
    marked
}

fn park(w: &Waiter, deadline: Option<Instant>, may_spin: bool) -> Woke {
    gil_released();
    if may_spin && spin(w, deadline) {
        return Woke::Changed;
    }
    loop {
        if w.state() != WAITING {
            return Woke::Changed;
        }
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Woke::TimedOut;
                }
                Some(d - now)
            }
        };
        if !w.prepare_sleep() {
            return Woke::Changed;
        }
        let r = futex::wait(&w.word, WAITING, timeout);
        // Relaxed: only this thread reads its own flag's false value as
        // meaningful; a waker that still sees true makes one spare syscall.
        w.sleeping.store(false, Ordering::Relaxed);
        if let Woke::Interrupted = r {
            return Woke::Interrupted;
        }
    }
}

/// Blocks the calling thread with the GIL released until `w` is marked
/// (`Some(state)`) or `deadline` passes (`None`). Signals interrupt the
/// sleep to run Python's handlers; one that raises ends the wait with its
/// exception. On `None` or an error the waiter is still queued (or was
/// marked meanwhile): the caller settles that under its mutex.
pub(crate) fn block(
    py: Python<'_>,
    w: &Waiter,
    deadline: Option<Instant>,
) -> PyResult<Option<u32>> {
    let mut may_spin = true;
    loop {
        let r = py.detach(|| park(w, deadline, may_spin));
        may_spin = false;
        match r {
            Woke::Changed => return Ok(Some(w.state())),
            Woke::TimedOut => return Ok(None),
            Woke::Interrupted => py.check_signals()?,
        }
    }
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A coroutine waiter on the running loop: the waiter and its future.
pub(crate) fn async_waiter<'py>(
    py: Python<'py>,
    value: Py<PyAny>,
    tag: u64,
) -> PyResult<(Arc<Waiter>, Bound<'py, PyAny>)> {
    let lp = GET_RUNNING_LOOP
        .import(py, "asyncio", "get_running_loop")?
        .call0()?;
    let fut = lp.call_method0(pyo3::intern!(py, "create_future"))?;
    let w = waiter_on(lp.unbind(), fut.clone().unbind(), value, tag);
    Ok((w, fut))
}

/// A coroutine waiter for an existing future (re-queued after losing a
/// race), on the future's loop, which runs in the calling thread.
pub(crate) fn async_waiter_for(
    py: Python<'_>,
    fut: &Bound<'_, PyAny>,
    value: Py<PyAny>,
    tag: u64,
) -> PyResult<Arc<Waiter>> {
    let lp = fut.call_method0(pyo3::intern!(py, "get_loop"))?;
    Ok(waiter_on(lp.unbind(), fut.clone().unbind(), value, tag))
}

fn waiter_on(loop_: Py<PyAny>, fut: Py<PyAny>, value: Py<PyAny>, tag: u64) -> Arc<Waiter> {
    Arc::new(Waiter {
        word: AtomicU32::new(WAITING),
        since: Instant::now(),
        target: Some(AsyncTarget {
            loop_,
            fut,
            thread: std::thread::current().id(),
            value,
            tag,
        }),
        sleeping: AtomicBool::new(false),
        slot: parking_lot::Mutex::new(None),
    })
}

/// Wakes a marked thread waiter (after the mutex it was marked under).
pub(crate) fn wake_thread(w: &Waiter) {
    w.wake_sleeper();
}

/// Wakes marked waiters after the primitive's mutex was dropped: threads
/// through their futex; coroutines by scheduling `owner._settle(fut,
/// value, tag)` on their loop (`_settle` sets the result, or, if the
/// future was cancelled meanwhile, gives back what was granted). If the
/// future is already done or the loop is closed, `_settle(None, value,
/// tag)` gives it back at once.
pub(crate) fn wake(py: Python<'_>, owner: &Bound<'_, PyAny>, woken: Vec<Arc<Waiter>>) {
    for w in woken {
        match &w.target {
            None => w.wake_sleeper(),
            Some(t) => wake_async(py, owner, t, t.value.clone_ref(py), t.tag),
        }
    }
}

/// Wakes a thread waiter (`value` unused) or schedules `owner._settle(fut,
/// value, tag)` on a coroutine waiter's loop (`wake`, with a per-wake value
/// and tag: queue.rs hands items this way).
pub(crate) fn wake_with(
    py: Python<'_>,
    owner: &Bound<'_, PyAny>,
    w: &Waiter,
    value: Py<PyAny>,
    tag: u64,
) {
    match &w.target {
        None => w.wake_sleeper(),
        Some(t) => wake_async(py, owner, t, value, tag),
    }
}

fn wake_async(
    py: Python<'_>,
    owner: &Bound<'_, PyAny>,
    t: &AsyncTarget,
    value: Py<PyAny>,
    tag: u64,
) {
    // A waiter whose future is already done (its task was cancelled and
    // the done callback has not run yet) gives the grant back now, so the
    // release is visible at once.
    let gone = future_done(t.fut.bind(py)).unwrap_or(true);
    if gone || schedule_settle(py, owner, t, &value, tag).is_err() {
        let undo = owner.call_method1(pyo3::intern!(py, "_settle"), (py.None(), value, tag));
        if let Err(e) = undo {
            e.write_unraisable(py, Some(owner));
        }
    }
}

fn schedule_settle(
    py: Python<'_>,
    owner: &Bound<'_, PyAny>,
    t: &AsyncTarget,
    value: &Py<PyAny>,
    tag: u64,
) -> PyResult<()> {
    let settle = owner.getattr(pyo3::intern!(py, "_settle"))?;
    let args = (settle, t.fut.clone_ref(py), value.clone_ref(py), tag);
    let lp = t.loop_.bind(py);
    if std::thread::current().id() == t.thread {
        lp.call_method1(pyo3::intern!(py, "call_soon"), args)?;
    } else {
        lp.call_method1(pyo3::intern!(py, "call_soon_threadsafe"), args)?;
    }
    Ok(())
}

/// Python's `True`, as the result an async acquire resolves to.
pub(crate) fn py_true(py: Python<'_>) -> Py<PyAny> {
    pyo3::types::PyBool::new(py, true)
        .to_owned()
        .into_any()
        .unbind()
}

/// A finished awaitable giving `value`.
pub(crate) fn ready(py: Python<'_>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
    Ok(Bound::new(py, Ready::new(value))?.into_any().unbind())
}

/// Hooks a queued coroutine waiter's future to `owner._forget` (so a
/// cancelled waiter leaves the queue) and returns it.
pub(crate) fn track(owner: &Bound<'_, PyAny>, fut: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let py = owner.py();
    fut.call_method1(
        pyo3::intern!(py, "add_done_callback"),
        (owner.getattr(pyo3::intern!(py, "_forget"))?,),
    )?;
    Ok(fut.unbind())
}

static ACQUIRE_SLOW: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `track`, wrapped in a coroutine that gives the grant back if the task
/// is cancelled after the grant was delivered (`_synchelpers.acquire_slow`).
pub(crate) fn track_grant(
    owner: &Bound<'_, PyAny>,
    fut: Bound<'_, PyAny>,
    value: Py<PyAny>,
    tag: u64,
) -> PyResult<Py<PyAny>> {
    let py = owner.py();
    let fut = track(owner, fut)?;
    Ok(ACQUIRE_SLOW
        .import(py, "ferrio._synchelpers", "acquire_slow")?
        .call1((owner, fut, value, tag))?
        .unbind())
}

/// The body of every `_settle`: complete a still-pending future with
/// `value`, else (cancelled, or None: its loop is closed) `give_back`.
pub(crate) fn settle(
    fut: Option<&Bound<'_, PyAny>>,
    value: &Bound<'_, PyAny>,
    give_back: impl FnOnce() -> PyResult<()>,
) -> PyResult<()> {
    match fut {
        Some(f) if !future_done(f)? => set_result(f, value),
        _ => give_back(),
    }
}

/// The body of a queue-only `_forget`: drops `fut`'s waiter (outside the
/// mutex: it holds Python references).
pub(crate) fn forget(q: &parking_lot::Mutex<Queue>, fut: &Bound<'_, PyAny>) {
    let gone = remove_future(&mut q.lock(), fut);
    drop(gone);
}

/// Whether a future is done (`_settle` checks before setting a result).
pub(crate) fn future_done(fut: &Bound<'_, PyAny>) -> PyResult<bool> {
    fut.call_method0(pyo3::intern!(fut.py(), "done"))?
        .is_truthy()
}

/// Sets a pending future's result.
pub(crate) fn set_result(fut: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    fut.call_method1(pyo3::intern!(fut.py(), "set_result"), (value,))?;
    Ok(())
}

/// A finished awaitable raising `exc` (an exception instance) when
/// awaited: errors of an async face surface at `await`, as they do from a
/// coroutine such as `asyncio.Queue.put`, not at the call.
pub(crate) fn failed(py: Python<'_>, exc: PyErr) -> PyResult<Py<PyAny>> {
    let r = Ready {
        value: exc.into_value(py).into_any(),
        error: true,
    };
    Ok(Bound::new(py, r)?.into_any().unbind())
}

/// An awaitable that is already finished: `await` gives `value` (or raises
/// it, if `error`) without a future or a trip through the loop (the
/// uncontended async path). It has `send`/`throw`/`close`, so
/// `asyncio.iscoroutine` accepts it and `create_task` can run it.
#[pyclass(module = "ferrio.sync", name = "_Ready", frozen)]
pub struct Ready {
    value: Py<PyAny>,
    error: bool,
}

impl Ready {
    pub(crate) fn new(value: Py<PyAny>) -> Self {
        Self {
            value,
            error: false,
        }
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<()> {
        if self.error {
            return Err(PyErr::from_value(self.value.bind(py).clone()));
        }
        Err(PyStopIteration::new_err((self.value.clone_ref(py),)))
    }

    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.__next__(py)
    }

    #[pyo3(signature = (*args))]
    fn throw(&self, args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        let exc = args.get_item(0)?;
        if let Ok(e) = exc.cast::<pyo3::exceptions::PyBaseException>() {
            return Err(PyErr::from_value(e.clone().into_any()));
        }
        Err(PyErr::from_value(exc.call0()?))
    }

    fn close(&self) {}
}

/// Loom model of the sleep/wake handshake (`RUSTFLAGS="--cfg loom" cargo
/// test --release loom`).
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;

    /// A waiter about to sleep and a waker marking it: if the waiter goes
    /// to sleep (`prepare_sleep` true), the waker must see the flag and
    /// make the wake syscall. Skipping the syscall for a spinning waiter
    /// must never leave a sleeper unwoken.
    #[test]
    fn loom_a_sleeping_waiter_is_always_woken() {
        loom::model(|| {
            let w = Waiter::thread();
            let w2 = w.clone();
            let waker = loom::thread::spawn(move || {
                w2.mark(GRANTED);
                w2.needs_wake()
            });
            let sleeps = w.prepare_sleep();
            let woken = waker.join().unwrap();
            assert!(!sleeps || woken, "the waiter sleeps and nobody wakes it");
        });
    }
}
