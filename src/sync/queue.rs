//! `ferrio.Queue`'s native core (`_QueueBase`): one thread-safe queue for
//! threads (`put`/`get` with `block`/`timeout`, `task_done`/`join`) and
//! coroutines on any loop (`put_async`/`get_async`/`join_async`) at once,
//! with `queue.Queue`'s semantics including 3.13's `shutdown()`.
//! python/ferrio/_queue.py puts the public classes (`Queue`, `LifoQueue`,
//! `PriorityQueue`, a Python `__init__`) and the exceptions on top.
//!
//! State lives under one mutex (`State`). Waiters (waiter.rs) queue in
//! three lines: getters (store empty), putters (store full), joiners
//! (unfinished tasks). Invariant: getters wait only while the store is
//! empty, so a `put` that finds a getter hands the item straight to the
//! oldest one (GRANTED; a thread finds it in its waiter's slot, a coroutine
//! gets it as its future's result) and never touches the store. A `get`
//! that frees a slot admits the oldest putter: a thread putter's item moves
//! in on its behalf (GRANTED); a coroutine putter is woken to retry on its
//! loop (`_settle(.., T_PUT)`), so a cancelled `put_async` never puts.
//! `shutdown()` wakes everyone WOKEN: they re-check and raise `ShutDown`.
//!
//! A coroutine handed an item it can no longer take (cancelled, its loop
//! closed) gives it back (`give_back`): to the next getter, else to the
//! front of the store.
//!
//! The mutex is taken GIL-safely (`lock`: try, else wait with the GIL
//! released), so a thread waiting for it never holds the GIL; that makes it
//! safe for a priority queue to run the items' `__lt__` under it. Waking
//! (futex, scheduling a coroutine's settlement) still happens after it.

use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::args::{self, Wait};
use super::store::{Order, Store};
use super::waiter::{self, Queue as Waiters, Waiter, GRANTED, WOKEN};

/// `_settle` tags: what a coroutine waiter's wake-up carries.
/// A getter handed an item (the value).
const T_GET: u64 = 0;
/// A getter woken by `shutdown()` to re-check.
const T_GET_RETRY: u64 = 1;
/// A putter woken because a slot freed (or by `shutdown()`); value: its
/// item, to put on its own loop.
const T_PUT: u64 = 2;
/// A joiner: every task is done.
const T_JOIN: u64 = 3;

struct State {
    store: Store,
    maxsize: isize,
    unfinished: usize,
    shutdown: bool,
    /// `shutdown(immediate=True)` was called: items given back are dropped.
    immediate: bool,
    getters: Waiters,
    putters: Waiters,
    joiners: Waiters,
}

/// Waiters to wake once the mutex is dropped, each with the value its
/// coroutine's future gets (None: the waiter's own) and the tag.
type Wakes = Vec<(Arc<Waiter>, Option<Py<PyAny>>, u64)>;

impl State {
    fn new(py: Python<'_>, order: Order, maxsize: isize) -> Self {
        Self {
            store: Store::new(py, order),
            maxsize,
            unfinished: 0,
            shutdown: false,
            immediate: false,
            getters: Waiters::new(),
            putters: Waiters::new(),
            joiners: Waiters::new(),
        }
    }

    fn len(&self, py: Python<'_>) -> usize {
        self.store.len(py)
    }

    /// The waiter line of a coroutine call's kind.
    fn line(&mut self, kind: u64) -> &mut Waiters {
        match kind {
            T_GET => &mut self.getters,
            T_PUT => &mut self.putters,
            _ => &mut self.joiners,
        }
    }

    /// Room for one more item, counting `pending` slots promised to
    /// coroutine putters that were woken to take them.
    fn room(&self, py: Python<'_>, pending: usize) -> bool {
        self.maxsize <= 0 || self.len(py).saturating_add(pending) < self.maxsize.unsigned_abs()
    }

    /// Adds an item: straight to the oldest waiting getter if there is one.
    fn put(&mut self, py: Python<'_>, item: Py<PyAny>, wakes: &mut Wakes) -> PyResult<()> {
        if let Some(g) = self.getters.pop_front() {
            self.unfinished += 1;
            hand(g, item, wakes);
            return Ok(());
        }
        // As queue.Queue: a `_put` that raises (a priority item's __lt__)
        // does not count the task.
        self.store.push(py, item)?;
        self.unfinished += 1;
        Ok(())
    }

    /// Takes the next item, admitting a waiting putter into the freed slot.
    fn get(&mut self, py: Python<'_>, wakes: &mut Wakes) -> PyResult<Option<Py<PyAny>>> {
        let item = self.store.pop(py)?;
        if item.is_some() && !self.putters.is_empty() {
            self.admit(py, wakes);
        }
        Ok(item)
    }

    /// Lets waiting putters in while there is room.
    fn admit(&mut self, py: Python<'_>, wakes: &mut Wakes) {
        let mut pending = 0;
        while self.room(py, pending) {
            let Some(p) = self.putters.pop_front() else {
                break;
            };
            if p.is_async() {
                p.mark(WOKEN);
                pending += 1;
                wakes.push((p, None, T_PUT));
                continue;
            }
            let item = p.slot.lock().take();
            if let Some(item) = item {
                if let Err(e) = self.put(py, item, wakes) {
                    // Only a priority item's __lt__ can fail here; the
                    // putter's call already returned control to us, so the
                    // error is reported rather than lost silently.
                    e.write_unraisable(py, None);
                }
            }
            p.mark(GRANTED);
            wakes.push((p, None, T_PUT));
        }
    }

    /// Puts back an item a getter was handed but did not take.
    fn give_back(&mut self, py: Python<'_>, item: Py<PyAny>, wakes: &mut Wakes) -> PyResult<()> {
        if self.immediate {
            // shutdown(immediate=True) dropped the rest: this one too.
            self.unfinished = self.unfinished.saturating_sub(1);
            if self.unfinished == 0 {
                self.release_joiners(wakes);
            }
            // Safe under the mutex: it is taken GIL-safely (module doc).
            drop(item);
            return Ok(());
        }
        match self.getters.pop_front() {
            Some(g) => hand(g, item, wakes),
            None => self.store.unpop(py, item)?,
        }
        Ok(())
    }

    fn release_joiners(&mut self, wakes: &mut Wakes) {
        for j in self.joiners.drain(..) {
            j.mark(GRANTED);
            wakes.push((j, None, T_JOIN));
        }
    }

    fn shut_down(&mut self, py: Python<'_>, immediate: bool, wakes: &mut Wakes) -> Vec<Py<PyAny>> {
        self.shutdown = true;
        let mut drained = Vec::new();
        if immediate {
            self.immediate = true;
            drained = self.store.take_all(py);
            self.unfinished = self.unfinished.saturating_sub(drained.len());
            if self.unfinished == 0 {
                self.release_joiners(wakes);
            }
        }
        for g in self.getters.drain(..) {
            g.mark(WOKEN);
            wakes.push((g, None, T_GET_RETRY));
        }
        for p in self.putters.drain(..) {
            p.mark(WOKEN);
            wakes.push((p, None, T_PUT));
        }
        drained
    }
}

/// Hands `item` to getter `g` (under the mutex).
fn hand(g: Arc<Waiter>, item: Py<PyAny>, wakes: &mut Wakes) {
    if g.is_async() {
        g.mark(GRANTED);
        wakes.push((g, Some(item), T_GET));
    } else {
        *g.slot.lock() = Some(item);
        g.mark(GRANTED);
        wakes.push((g, None, T_GET));
    }
}

static EXCEPTIONS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `ferrio.QueueEmpty` / `QueueFull` / `QueueShutDown` (python/ferrio/
/// _queue.py: subclasses of both `queue`'s and `asyncio`'s exceptions).
fn error(py: Python<'_>, name: &str) -> PyErr {
    let made = EXCEPTIONS
        .import(py, "ferrio._queue", "_EXCEPTIONS")
        .and_then(|m| m.get_item(name))
        .and_then(|cls| cls.call0());
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// `queue.Queue`'s timeout rule once it would block: None waits forever,
/// a negative number is a ValueError.
/// `queue.Queue`'s `block`/`timeout` rules. The outer result is what
/// `put`/`get` check at once (`timeout < 0` is a ValueError, `time() +
/// timeout` a TypeError for a non-number, as Python evaluates them); the
/// inner one is the wait, whose error (an infinite or too large timeout:
/// OverflowError from `Condition.wait`) is raised only if the call really
/// has to wait. A NaN timeout does not wait (`queue.Queue` spins forever:
/// docs/compatibility.md).
fn blocking_wait(
    py: Python<'_>,
    block: bool,
    timeout: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyResult<Wait>> {
    let t = match (block, timeout) {
        (false, _) => return Ok(Ok(Wait::Try)),
        (true, None) => return Ok(Ok(Wait::Until(None))),
        (true, Some(t)) => t,
    };
    if t.lt(0)? {
        return Err(PyValueError::new_err(
            "'timeout' must be a non-negative number",
        ));
    }
    let secs: f64 = pyo3::types::PyFloat::new(py, 0.0).add(t)?.extract()?;
    if secs.is_nan() || secs <= 0.0 {
        return Ok(Ok(Wait::Try));
    }
    Ok(args::cond_wait(
        py,
        Some(pyo3::types::PyFloat::new(py, secs).as_any()),
    ))
}

#[pyclass(module = "ferrio", name = "_QueueBase", frozen, weakref, subclass)]
pub struct QueueBase {
    st: Mutex<State>,
}

impl QueueBase {
    /// Takes the mutex without ever blocking while holding the GIL.
    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, State> {
        if let Some(g) = self.st.try_lock() {
            return g;
        }
        py.detach(|| self.st.lock())
    }

    fn wake(slf: &Bound<'_, Self>, wakes: Wakes) {
        let py = slf.py();
        for (w, value, tag) in wakes {
            let value = value
                .or_else(|| w.target.as_ref().map(|t| t.value.clone_ref(py)))
                .unwrap_or_else(|| py.None());
            waiter::wake_with(py, slf.as_any(), &w, value, tag);
        }
    }

    /// Takes a thread getter's handed item.
    fn take_slot(w: &Waiter) -> PyResult<Py<PyAny>> {
        w.slot.lock().take().ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err("queue: granted without an item")
        })
    }

    fn give_back(slf: &Bound<'_, Self>, item: Py<PyAny>) -> PyResult<()> {
        let py = slf.py();
        let mut wakes = Wakes::new();
        let r = slf.get().lock(py).give_back(py, item, &mut wakes);
        Self::wake(slf, wakes);
        r
    }

    fn get_blocking(
        slf: &Bound<'_, Self>,
        deadline: Option<std::time::Instant>,
        w: Arc<Waiter>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let me = slf.get();
        loop {
            let r = waiter::block(py, &w, deadline);
            if let Ok(Some(GRANTED)) = r {
                // The hot path: handed an item, no need for the mutex.
                return Self::take_slot(&w);
            }
            let mut wakes = Wakes::new();
            let mut st = me.lock(py);
            match w.state() {
                GRANTED => {
                    drop(st);
                    let item = Self::take_slot(&w)?;
                    if let Err(e) = r {
                        // Interrupted (Ctrl-C) just as the item came: the
                        // item goes to the next getter, the error up.
                        Self::give_back(slf, item)?;
                        return Err(e);
                    }
                    return Ok(item);
                }
                WOKEN => {
                    let got = st.get(py, &mut wakes);
                    let out = match got {
                        Ok(Some(item)) => Some(Ok(item)),
                        Ok(None) if st.shutdown => Some(Err(error(py, "ShutDown"))),
                        Ok(None) => {
                            w.rearm();
                            st.getters.push_front(w.clone());
                            None
                        }
                        Err(e) => Some(Err(e)),
                    };
                    drop(st);
                    Self::wake(slf, wakes);
                    if let Some(out) = out {
                        return out;
                    }
                }
                _ => {
                    waiter::remove(&mut st.getters, &w);
                    drop(st);
                    r?;
                    return Err(error(py, "Empty"));
                }
            }
        }
    }

    fn put_blocking(
        slf: &Bound<'_, Self>,
        deadline: Option<std::time::Instant>,
        w: Arc<Waiter>,
    ) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        loop {
            let r = waiter::block(py, &w, deadline);
            if let Ok(Some(GRANTED)) = r {
                return Ok(());
            }
            let mut wakes = Wakes::new();
            let mut st = me.lock(py);
            match w.state() {
                // The item went in on our behalf (an interrupting signal
                // still propagates: it is in, as far as the queue goes).
                GRANTED => {
                    drop(st);
                    return r.map(|_| ());
                }
                WOKEN => {
                    let out = if st.shutdown {
                        Some(Err(error(py, "ShutDown")))
                    } else if st.room(py, 0) {
                        let item = w.slot.lock().take();
                        Some(match item {
                            Some(item) => st.put(py, item, &mut wakes),
                            None => Ok(()),
                        })
                    } else {
                        w.rearm();
                        st.putters.push_front(w.clone());
                        None
                    };
                    drop(st);
                    Self::wake(slf, wakes);
                    if let Some(out) = out {
                        drop(w.slot.lock().take());
                        return out;
                    }
                }
                _ => {
                    waiter::remove(&mut st.putters, &w);
                    drop(st);
                    drop(w.slot.lock().take());
                    r?;
                    return Err(error(py, "Full"));
                }
            }
        }
    }

    /// The async faces' shape: `attempt` under the mutex; if it has no
    /// outcome (the call must wait), make a coroutine waiter carrying
    /// `value` outside the mutex, attempt again under it, and queue the
    /// waiter in the line of `kind`. The wait runs in `_queue._wait`, which
    /// calls `_abandon` if the task stops waiting.
    fn async_call(
        slf: &Bound<'_, Self>,
        kind: u64,
        value: Py<PyAny>,
        mut attempt: impl FnMut(&mut State, &mut Wakes) -> Option<PyResult<Py<PyAny>>>,
    ) -> PyResult<Py<PyAny>> {
        static WAIT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let py = slf.py();
        let me = slf.get();
        let mut value = Some(value);
        let mut queued = None;
        loop {
            let mut wakes = Wakes::new();
            let mut st = me.lock(py);
            if let Some(out) = attempt(&mut st, &mut wakes) {
                drop(st);
                Self::wake(slf, wakes);
                return out;
            }
            if let Some((w, fut)) = queued.take() {
                st.line(kind).push_back(w);
                drop(st);
                return Ok(WAIT
                    .import(py, "ferrio._queue", "_wait")?
                    .call1((slf, fut, kind))?
                    .unbind());
            }
            drop(st);
            let v = value.take().unwrap_or_else(|| py.None());
            queued = Some(waiter::async_waiter(py, v, kind)?);
        }
    }
}

/// A `maxsize` argument: an integer (anything else is a TypeError, see
/// `_queue.py`); one too large for the platform is as good as unbounded
/// and kept as the largest size, a hugely negative one is unbounded.
fn maxsize_arg(v: &Bound<'_, PyAny>) -> PyResult<isize> {
    match v.extract::<isize>() {
        Ok(n) => Ok(n),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(v.py()) => {
            Ok(if v.gt(0)? { isize::MAX } else { 0 })
        }
        Err(e) => Err(e),
    }
}

#[pymethods]
impl QueueBase {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(
        py: Python<'_>,
        _args: &Bound<'_, pyo3::types::PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> Self {
        Self {
            st: Mutex::new(State::new(py, Order::Fifo, 0)),
        }
    }

    /// (Re)initializes: an empty queue of `order` (0 FIFO, 1 LIFO, 2
    /// priority) holding at most `maxsize` items (<= 0: unbounded).
    fn _init(&self, py: Python<'_>, maxsize: &Bound<'_, PyAny>, order: u8) -> PyResult<()> {
        let maxsize = maxsize_arg(maxsize)?;
        let order = match order {
            1 => Order::Lifo,
            2 => Order::Priority,
            _ => Order::Fifo,
        };
        let old = std::mem::replace(&mut *self.lock(py), State::new(py, order, maxsize));
        drop(old);
        Ok(())
    }

    #[getter]
    fn maxsize(&self, py: Python<'_>) -> isize {
        self.lock(py).maxsize
    }

    /// Changing `maxsize` lets waiting putters in if it grew.
    #[setter]
    fn set_maxsize(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = maxsize_arg(value)?;
        let py = slf.py();
        let mut wakes = Wakes::new();
        {
            let mut st = slf.get().lock(py);
            st.maxsize = value;
            st.admit(py, &mut wakes);
        }
        Self::wake(slf, wakes);
        Ok(())
    }

    #[getter]
    fn unfinished_tasks(&self, py: Python<'_>) -> usize {
        self.lock(py).unfinished
    }

    #[getter]
    fn is_shutdown(&self, py: Python<'_>) -> bool {
        self.lock(py).shutdown
    }

    fn qsize(&self, py: Python<'_>) -> usize {
        self.lock(py).len(py)
    }

    fn empty(&self, py: Python<'_>) -> bool {
        self.lock(py).len(py) == 0
    }

    fn full(&self, py: Python<'_>) -> bool {
        let st = self.lock(py);
        st.maxsize > 0 && st.len(py) >= st.maxsize.unsigned_abs()
    }

    /// `queue.Queue.put`: blocks while the queue is full (`maxsize > 0`).
    #[pyo3(signature = (item, block = args::Given::Missing, timeout = None), text_signature = "($self, item, block=True, timeout=None)")]
    fn put(
        slf: &Bound<'_, Self>,
        item: Py<PyAny>,
        block: args::Given<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let block = args::truthy(&block)?;
        let mut wakes = Wakes::new();
        let mut st = slf.get().lock(py);
        if st.shutdown {
            return Err(error(py, "ShutDown"));
        }
        let wait = if st.maxsize > 0 {
            blocking_wait(py, block, timeout)?
        } else {
            Ok(Wait::Try)
        };
        if st.room(py, 0) {
            let r = st.put(py, item, &mut wakes);
            drop(st);
            Self::wake(slf, wakes);
            return r;
        }
        let Wait::Until(deadline) = wait? else {
            drop(st);
            drop(item);
            return Err(error(py, "Full"));
        };
        let w = Waiter::thread();
        *w.slot.lock() = Some(item);
        st.putters.push_back(w.clone());
        drop(st);
        Self::put_blocking(slf, deadline, w)
    }

    fn put_nowait(slf: &Bound<'_, Self>, item: Py<PyAny>) -> PyResult<()> {
        let f = pyo3::types::PyBool::new(slf.py(), false)
            .to_owned()
            .into_any();
        Self::put(slf, item, args::Given::Value(f), None)
    }

    /// `queue.Queue.get`: blocks while the queue is empty.
    #[pyo3(signature = (block = args::Given::Missing, timeout = None), text_signature = "($self, block=True, timeout=None)")]
    fn get(
        slf: &Bound<'_, Self>,
        block: args::Given<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let block = args::truthy(&block)?;
        let mut wakes = Wakes::new();
        let mut st = slf.get().lock(py);
        if st.shutdown && st.len(py) == 0 {
            return Err(error(py, "ShutDown"));
        }
        let wait = blocking_wait(py, block, timeout)?;
        let got = st.get(py, &mut wakes);
        if !matches!(got, Ok(None)) {
            drop(st);
            Self::wake(slf, wakes);
            return got.map(|x| x.unwrap_or_else(|| py.None()));
        }
        let Wait::Until(deadline) = wait? else {
            drop(st);
            return Err(error(py, "Empty"));
        };
        let w = Waiter::thread();
        st.getters.push_back(w.clone());
        drop(st);
        Self::get_blocking(slf, deadline, w)
    }

    fn get_nowait(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let f = pyo3::types::PyBool::new(slf.py(), false)
            .to_owned()
            .into_any();
        Self::get(slf, args::Given::Value(f), None)
    }

    /// `await q.put_async(item)`: waits (without blocking the loop) while
    /// the queue is full.
    fn put_async(slf: &Bound<'_, Self>, item: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let carried = item.clone_ref(py);
        let mut item = Some(item);
        Self::async_call(slf, T_PUT, carried, |st, wakes| {
            if st.shutdown {
                return Some(waiter::failed(py, error(py, "ShutDown")));
            }
            if !st.room(py, 0) {
                return None;
            }
            let r = match item.take() {
                Some(x) => st.put(py, x, wakes),
                None => Ok(()),
            };
            Some(match r {
                Ok(()) => waiter::ready(py, py.None()),
                Err(e) => waiter::failed(py, e),
            })
        })
    }

    /// `await q.get_async()`: waits (without blocking the loop) while the
    /// queue is empty.
    fn get_async(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        Self::async_call(slf, T_GET, py.None(), |st, wakes| match st.get(py, wakes) {
            Ok(Some(item)) => Some(waiter::ready(py, item)),
            Ok(None) if st.shutdown => Some(waiter::failed(py, error(py, "ShutDown"))),
            Ok(None) => None,
            Err(e) => Some(waiter::failed(py, e)),
        })
    }

    /// `queue.Queue.task_done`.
    fn task_done(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let mut wakes = Wakes::new();
        {
            let mut st = slf.get().lock(py);
            if st.unfinished == 0 {
                return Err(PyValueError::new_err("task_done() called too many times"));
            }
            st.unfinished -= 1;
            if st.unfinished == 0 {
                st.release_joiners(&mut wakes);
            }
        }
        Self::wake(slf, wakes);
        Ok(())
    }

    /// `queue.Queue.join`: blocks until every item put was `task_done()`.
    fn join(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let w = Waiter::thread();
        {
            let mut st = me.lock(py);
            if st.unfinished == 0 {
                return Ok(());
            }
            st.joiners.push_back(w.clone());
        }
        let r = waiter::block(py, &w, None);
        if w.state() == GRANTED {
            return r.map(|_| ());
        }
        let mut st = me.lock(py);
        let done = w.state() == GRANTED;
        if !done {
            waiter::remove(&mut st.joiners, &w);
        }
        drop(st);
        r.map(|_| ())
    }

    /// `await q.join_async()`.
    fn join_async(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        Self::async_call(slf, T_JOIN, py.None(), |st, _| {
            (st.unfinished == 0).then(|| waiter::ready(py, py.None()))
        })
    }

    /// `queue.Queue.shutdown` (3.13): puts raise `ShutDown`; gets raise it
    /// once the queue is empty, or at once if `immediate` (which drops the
    /// items and marks their tasks done). Wakes every waiter.
    #[pyo3(signature = (immediate = None))]
    fn shutdown(slf: &Bound<'_, Self>, immediate: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let immediate = immediate.map_or(Ok(false), |b| b.is_truthy())?;
        let mut wakes = Wakes::new();
        let drained = slf.get().lock(py).shut_down(py, immediate, &mut wakes);
        drop(drained);
        Self::wake(slf, wakes);
        Ok(())
    }

    /// Loop callback for a coroutine waiter's wake-up (see the tags). With
    /// `fut` None or done (cancelled, loop closed) what it was handed goes
    /// back.
    #[pyo3(signature = (fut, value, tag))]
    fn _settle(
        slf: &Bound<'_, Self>,
        fut: Option<&Bound<'_, PyAny>>,
        value: Py<PyAny>,
        tag: u64,
    ) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let live = match fut {
            Some(f) if !waiter::future_done(f)? => Some(f),
            _ => None,
        };
        let mut wakes = Wakes::new();
        match (tag, live) {
            (T_GET, Some(f)) => waiter::set_result(f, value.bind(py)),
            (T_GET, None) => Self::give_back(slf, value),
            (T_GET_RETRY, Some(f)) => {
                let got = me.lock(py).get(py, &mut wakes);
                Self::wake(slf, wakes);
                match got? {
                    Some(item) => waiter::set_result(f, item.bind(py)),
                    None => set_exception(f, error(py, "ShutDown")),
                }
            }
            (T_PUT, Some(f)) => {
                let mut st = me.lock(py);
                let out = if st.shutdown {
                    Some(Err(error(py, "ShutDown")))
                } else if st.room(py, 0) {
                    Some(st.put(py, value, &mut wakes))
                } else {
                    // Someone took the slot first: wait again, first in line.
                    st.putters
                        .push_front(waiter::async_waiter_for(py, f, value, T_PUT)?);
                    None
                };
                drop(st);
                Self::wake(slf, wakes);
                match out {
                    Some(Ok(())) => waiter::set_result(f, py.None().bind(py)),
                    Some(Err(e)) => set_exception(f, e),
                    None => Ok(()),
                }
            }
            (T_PUT, None) => {
                // A woken putter that is gone passes its turn on.
                me.lock(py).admit(py, &mut wakes);
                Self::wake(slf, wakes);
                Ok(())
            }
            (T_JOIN, Some(f)) => waiter::set_result(f, py.None().bind(py)),
            _ => Ok(()),
        }
    }

    /// A coroutine stopped waiting (cancelled, or the wait failed): leaves
    /// its line, or gives back an item it was handed but will not return.
    fn _abandon(slf: &Bound<'_, Self>, fut: &Bound<'_, PyAny>, kind: u64) -> PyResult<()> {
        let py = slf.py();
        let removed = {
            let mut st = slf.get().lock(py);
            waiter::remove_future(st.line(kind), fut)
        };
        if removed.is_some() || kind != T_GET {
            return Ok(());
        }
        // Handed an item already (the future has it) but the task will not
        // return it: it goes to the next getter. (If the hand-over is still
        // in flight, `_settle` sees the cancelled future and gives it back.)
        if waiter::future_done(fut)?
            && !fut
                .call_method0(pyo3::intern!(py, "cancelled"))?
                .is_truthy()?
        {
            let exc = fut.call_method0(pyo3::intern!(py, "exception"))?;
            if exc.is_none() {
                let item = fut.call_method0(pyo3::intern!(py, "result"))?;
                return Self::give_back(slf, item.unbind());
            }
        }
        Ok(())
    }
}

fn set_exception(fut: &Bound<'_, PyAny>, e: PyErr) -> PyResult<()> {
    let py = fut.py();
    fut.call_method1(pyo3::intern!(py, "set_exception"), (e.into_value(py),))?;
    Ok(())
}
