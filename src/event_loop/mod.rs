//! The event loop core: `ferrio._ferrio.Loop`.
//!
//! - `mod.rs` (this file): the loop's state and every Python-visible method
//!   of the Rust base class (PyO3 allows one `#[pymethods]` block per class;
//!   bodies that grow go to sibling files).
//! - `run.rs`: one iteration (`_run_once`) and the run-forever loop.
//! - `io.rs`: `add_reader`/`add_writer` and fd-object conversion.
//! - `tasks.rs`: the native `create_task` fast path.
//! - `futures.rs`: the native `create_future`.
//! - `inbox.rs`: batched completion of `run_in_executor` futures.
//! - `fastcall.rs`: raw vectorcall entry points of `call_soon`,
//!   `call_soon_threadsafe`, `call_later`, `call_at` (installed on the type
//!   at module init; their bodies are the `*_impl` methods here).
//!
//! The Python subclass `ferrio.Loop` (python/ferrio/_loop.py) adds the rarely
//! used, setup-time methods, mostly by reusing asyncio's own functions so
//! their behaviour matches the running Python version exactly.
//!
//! State lives here: ready queue, timer heap, reactor, and the flags the run
//! loop reads each iteration. Every structure sits behind its own
//! uncontended mutex, never held while Python code runs, so callbacks can
//! re-enter the loop freely and other threads can `call_soon_threadsafe`.

mod fastcall;
mod futures;
mod inbox;
mod io;
mod run;
mod tasks;

pub(crate) use fastcall::install as install_fastcall_methods;
pub(crate) use futures::new_future;
pub(crate) use inbox::{_drain_completions, InFlight};

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::clock;
use crate::gilcell::GilCell;
use crate::handles::{self, HandleCore, HandleRef, SpareContext};
use crate::pyhelpers;
use crate::reactor::{Reactor, Side};
use crate::timers::TimerHeap;

#[pyclass(module = "ferrio._ferrio", name = "Loop", subclass, frozen)]
pub struct Loop {
    ready: GilCell<VecDeque<HandleRef>>,
    /// Approximate length of `ready` (see `LAZY_CONTEXT_FROM`).
    ready_hint: AtomicUsize,
    timers: GilCell<TimerHeap>,
    /// The heap's cancelled-timer counter, shared with every timer handle.
    timer_cancel_counter: Arc<AtomicUsize>,
    reactor: Reactor,
    stopping: AtomicBool,
    closed: AtomicBool,
    debug: AtomicBool,
    /// `threading.get_ident()` of the running thread, 0 when not running.
    thread_id: AtomicU64,
    /// f64 bits of the last poll time (loop thread only).
    last_poll: AtomicU64,
    /// f64 bits of `slow_callback_duration`.
    slow_callback: AtomicU64,
    current_handle: Mutex<Option<Py<PyAny>>>,
    clock_resolution: f64,
    /// `loop._task_factory` (set by asyncio's `set_task_factory`).
    task_factory: Mutex<Option<Py<PyAny>>>,
    /// The empty context lent to handles with none of their own while they
    /// run (handles/mod.rs).
    spare_context: SpareContext,
    /// Finished executor jobs waiting for the drain callback (inbox.rs).
    inbox: Mutex<Vec<(Py<PyAny>, inbox::Outcome)>>,
    /// `time` is overridden (an instance attribute, e.g.
    /// `mock.patch.object(loop, "time")`, or a subclass's method): the
    /// loop then reads the clock through `self.time()` where asyncio does
    /// (the poll timeout, due timers, `call_later`), so patched time moves
    /// timers as it does on asyncio's loop. Set by `__setattr__`/
    /// `__delattr__` and `_sync_time_source`.
    time_overridden: AtomicBool,
    /// `run_in_executor` jobs on a ferrio pool not yet finished (each
    /// job holds an [`inbox::InFlight`]): while some are, an idle loop
    /// spins briefly before sleeping (run.rs, "Waiting for the pool").
    executor_jobs: Arc<AtomicUsize>,
}

// Orderings: the flags below are read and written under the GIL (or, on a
// free-threaded build, only ever need eventual visibility: `stop()` from
// another thread is not thread-safe in asyncio either and must go through
// `call_soon_threadsafe`, whose queue mutex orders it). Relaxed suffices.
impl Loop {
    #[inline]
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn is_debug(&self) -> bool {
        self.debug.load(Ordering::Relaxed)
    }

    #[inline]
    fn reset_ready_hint(&self) {
        self.ready_hint.store(0, Ordering::Relaxed);
    }

    #[inline]
    fn last_poll(&self) -> f64 {
        f64::from_bits(self.last_poll.load(Ordering::Relaxed))
    }

    #[inline]
    fn set_last_poll(&self, t: f64) {
        self.last_poll.store(t.to_bits(), Ordering::Relaxed);
    }

    fn slow_callback_duration(&self) -> f64 {
        f64::from_bits(self.slow_callback.load(Ordering::Relaxed))
    }

    fn set_current_handle(&self, h: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut *self.current_handle.lock(), h);
        drop(old);
    }

    #[inline]
    fn check_closed(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PyRuntimeError::new_err("Event loop is closed"));
        }
        Ok(())
    }

    fn check_thread(&self) -> PyResult<()> {
        let tid = self.thread_id.load(Ordering::Relaxed);
        if tid == 0 {
            return Ok(());
        }
        // SAFETY: plain query of the current thread's identifier.
        let me = unsafe { ffi::PyThread_get_thread_ident() } as u64;
        if me != tid {
            return Err(PyRuntimeError::new_err(
                "Non-thread-safe operation invoked on an event loop other than the current one",
            ));
        }
        Ok(())
    }

    /// Builds a one-shot handle, capturing the current context if none given.
    /// `lazy_context`: represent an empty captured context lazily (timers,
    /// and call_soon bursts; see handles/mod.rs).
    #[inline]
    fn make_handle(
        &self,
        py: Python<'_>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<&Bound<'_, PyAny>>,
        debug: bool,
        lazy_context: bool,
    ) -> PyResult<HandleCore> {
        let ctx = match context {
            Some(c) => Some(c.clone().unbind()),
            None => pyhelpers::copy_context_for_handle(py, lazy_context)?,
        };
        let tb = if debug {
            Some(pyhelpers::extract_stack(py)?)
        } else {
            None
        };
        Ok(HandleCore::new(
            callback.clone().unbind(),
            args.clone().unbind(),
            ctx,
            false,
            tb,
        ))
    }

    fn push_ready(&self, py: Python<'_>, h: HandleRef) {
        self.ready.borrow(py).push_back(h);
        // Relaxed load+store, not an atomic add: only a hint, exact under the
        // GIL, merely approximate if threads race.
        let n = self.ready_hint.load(Ordering::Relaxed);
        self.ready_hint
            .store(n.saturating_add(1), Ordering::Relaxed);
    }

    /// Whether a new ready handle should capture an empty context lazily.
    #[inline]
    fn lazy_ready_context(&self) -> bool {
        self.ready_hint.load(Ordering::Relaxed) >= LAZY_CONTEXT_FROM
    }

    /// `call_soon` / `call_soon_threadsafe` (entry points in fastcall.rs).
    #[inline]
    pub(crate) fn call_soon_impl(
        &self,
        py: Python<'_>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<&Bound<'_, PyAny>>,
        threadsafe: bool,
    ) -> PyResult<HandleRef> {
        self.check_closed()?;
        let debug = self.is_debug();
        if debug {
            if threadsafe {
                pyhelpers::check_callback(callback, "call_soon_threadsafe")?;
            } else {
                self.check_thread()?;
                pyhelpers::check_callback(callback, "call_soon")?;
            }
        }
        let lazy = self.lazy_ready_context();
        let h = handles::new_handle(
            py,
            self.make_handle(py, callback, args, context, debug, lazy)?,
        )?;
        self.push_ready(py, h.clone_ref(py));
        if threadsafe {
            self.reactor.waker.wake_if_sleeping();
        }
        Ok(h)
    }

    /// `call_later`: asyncio computes `self.time() + delay` and goes through
    /// `call_at` (whose name its debug-mode errors carry).
    pub(crate) fn call_later_impl(
        slf: &Bound<'_, Loop>,
        delay: Option<&Bound<'_, PyAny>>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<HandleRef> {
        let (delay, _) = extract_time(delay, "delay must not be None")?;
        let when = Loop::now(slf)? + delay;
        slf.get()
            .schedule_at(slf.py(), (when, false), callback, args, context, "call_at")
    }

    /// The loop's clock: the native monotonic clock, or `self.time()` when
    /// `time` is overridden (see `time_overridden`).
    #[inline]
    pub(crate) fn now(slf: &Bound<'_, Loop>) -> PyResult<f64> {
        if slf.get().time_overridden.load(Ordering::Relaxed) {
            slf.call_method0(pyo3::intern!(slf.py(), "time"))?
                .extract::<f64>()
        } else {
            Ok(clock::now())
        }
    }

    #[inline]
    pub(crate) fn is_time_overridden(&self) -> bool {
        self.time_overridden.load(Ordering::Relaxed)
    }

    pub(crate) fn call_at_impl(
        &self,
        py: Python<'_>,
        when: Option<&Bound<'_, PyAny>>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<HandleRef> {
        let when = extract_time(when, "when cannot be None")?;
        self.schedule_at(py, when, callback, args, context, "call_at")
    }

    fn schedule_at(
        &self,
        py: Python<'_>,
        // Seconds, and whether they were given as an `int`.
        (when, when_is_int): (f64, bool),
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<&Bound<'_, PyAny>>,
        method: &str,
    ) -> PyResult<HandleRef> {
        self.check_closed()?;
        let debug = self.is_debug();
        if debug {
            self.check_thread()?;
            pyhelpers::check_callback(callback, method)?;
        }
        let base = self.make_handle(py, callback, args, context, debug, true)?;
        let counter = self.timer_cancel_counter.clone();
        let th = handles::new_handle(py, base.with_timer(when, when_is_int, counter))?;
        self.timers.borrow(py).push(when, th.clone_ref(py));
        Ok(th)
    }
}

/// Entry points for native transports (src/transports/): the same
/// operations as `_add_reader`/`_remove_reader`/`call_soon` from Python.
impl Loop {
    /// Watches `fd` for `side`, running `callback()` on readiness (replaces
    /// any previous watcher of that side, as `add_reader` does).
    pub(crate) fn watch(&self, fd: RawFd, side: Side, callback: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = callback.py();
        io::add(self, fd, side, callback, &pyhelpers::empty_tuple(py), None)
            .map(|h| h.release_ref(py))
    }

    /// [`Loop::watch`] where `callback` is a transport's builtin bound
    /// method `m` whose body is `native(m.__self__)`: the loop calls
    /// `native` directly (`HandleCore::with_native`).
    pub(crate) fn watch_native(
        &self,
        fd: RawFd,
        side: Side,
        callback: &Bound<'_, PyAny>,
        native: crate::handles::NativeFn,
    ) -> PyResult<()> {
        let py = callback.py();
        io::add(
            self,
            fd,
            side,
            callback,
            &pyhelpers::empty_tuple(py),
            Some(native),
        )
        .map(|h| h.release_ref(py))
    }

    /// Watches with `callback`, reusing a parked registration of the same
    /// socket object `owner` (see `Reactor::rearm`).
    pub(crate) fn rearm_handle(
        &self,
        fd: RawFd,
        side: Side,
        callback: &Bound<'_, PyAny>,
        owner: usize,
    ) -> PyResult<HandleRef> {
        let py = callback.py();
        let handle = io::new_watcher(self, callback, &pyhelpers::empty_tuple(py), None)?;
        io::retire(
            py,
            self.reactor
                .rearm(py, fd, side, handle.clone_ref(py), owner)?,
        );
        Ok(handle)
    }

    /// The fd table, for `sock_*` operations that park their registration
    /// between steps (`Reactor::park`).
    pub(crate) fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// Stops watching `fd` for `side` if `handle` is still the watcher.
    pub(crate) fn unwatch_if(&self, py: Python<'_>, fd: RawFd, side: Side, handle: &HandleRef) {
        if let Some(h) = self.reactor.remove_if(py, fd, side, handle) {
            h.core().cancel(py);
            h.release_ref(py);
        }
    }

    /// Stops watching `fd` for `side`; whether a watcher was removed.
    pub(crate) fn unwatch(&self, py: Python<'_>, fd: RawFd, side: Side) -> bool {
        io::remove(py, self, fd, side)
    }

    /// `loop.call_soon(callback, *args)` from Rust.
    pub(crate) fn soon(
        &self,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        let py = callback.py();
        self.call_soon_impl(py, callback, args, None, false)
            .map(|h| h.release_ref(py))
    }
}

/// From this many pending ready callbacks on, a new callback whose captured
/// context is empty stores it lazily: a burst then holds no GC-tracked
/// contexts. Below it, keeping the (already made) copy is cheaper.
const LAZY_CONTEXT_FROM: usize = 64;

/// A deadline or delay as seconds (a float, as `loop.time() + delay` would be), and whether it was given as an `int`
/// (asyncio's `TimerHandle.when()` hands back the object it got; aiohttp
/// schedules whole seconds and checks for an `int`).
fn extract_time(obj: Option<&Bound<'_, PyAny>>, none_msg: &str) -> PyResult<(f64, bool)> {
    match obj {
        None => Err(PyTypeError::new_err(none_msg.to_string())),
        Some(o) if o.is_none() => Err(PyTypeError::new_err(none_msg.to_string())),
        Some(o) => Ok((o.extract::<f64>()?, o.is_instance_of::<PyInt>())),
    }
}

#[pymethods]
impl Loop {
    #[new]
    fn new() -> PyResult<Self> {
        let timers = TimerHeap::new();
        Ok(Loop {
            ready: GilCell::new(VecDeque::new()),
            ready_hint: AtomicUsize::new(0),
            timer_cancel_counter: timers.cancel_counter(),
            timers: GilCell::new(timers),
            reactor: Reactor::new()?,
            stopping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            debug: AtomicBool::new(false),
            thread_id: AtomicU64::new(0),
            last_poll: AtomicU64::new(0f64.to_bits()),
            slow_callback: AtomicU64::new(0.1f64.to_bits()),
            current_handle: Mutex::new(None),
            clock_resolution: clock::resolution(),
            task_factory: Mutex::new(None),
            inbox: Mutex::new(Vec::new()),
            executor_jobs: Arc::new(AtomicUsize::new(0)),
            spare_context: SpareContext::new(),
            time_overridden: AtomicBool::new(false),
        })
    }

    /// Attribute assignment on the loop: the generic store, and an
    /// instance-level `time` switches the loop to reading `self.time()`.
    fn __setattr__(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyString>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        // SAFETY: three valid references, held for the call.
        let rc =
            unsafe { ffi::PyObject_GenericSetAttr(slf.as_ptr(), name.as_ptr(), value.as_ptr()) };
        if rc < 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        if name.to_str()? == "time" {
            slf.get().time_overridden.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn __delattr__(slf: &Bound<'_, Self>, name: &Bound<'_, PyString>) -> PyResult<()> {
        // SAFETY: valid references; a null value deletes.
        let rc = unsafe {
            ffi::PyObject_GenericSetAttr(slf.as_ptr(), name.as_ptr(), std::ptr::null_mut())
        };
        if rc < 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        if name.to_str()? == "time" {
            Self::_sync_time_source(slf)?;
        }
        Ok(())
    }

    /// Recomputes whether `time` is overridden: by the instance's
    /// `__dict__` or by a class between the instance's type and this one
    /// (called at construction and when an instance `time` is deleted).
    fn _sync_time_source(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let name = pyo3::intern!(py, "time");
        let native = py.get_type::<Loop>().getattr(name)?;
        let mut overridden = !slf.get_type().getattr(name)?.is(&native);
        if !overridden {
            if let Ok(d) = slf.getattr(pyo3::intern!(py, "__dict__")) {
                overridden = d.contains(name).unwrap_or(false);
            }
        }
        slf.get()
            .time_overridden
            .store(overridden, Ordering::Relaxed);
        Ok(())
    }

    /// `loop.time()`: the monotonic clock in seconds.
    fn time(&self) -> f64 {
        clock::now()
    }

    fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    fn is_running(&self) -> bool {
        self.thread_id.load(Ordering::Relaxed) != 0
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn get_debug(&self) -> bool {
        self.is_debug()
    }

    #[getter(_debug)]
    fn get_debug_attr(&self) -> bool {
        self.is_debug()
    }

    #[setter(_debug)]
    fn set_debug_attr(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.debug.store(value.is_truthy()?, Ordering::Relaxed);
        Ok(())
    }

    #[getter(_stopping)]
    fn get_stopping(&self) -> bool {
        self.is_stopping()
    }

    #[setter(_stopping)]
    fn set_stopping(&self, value: bool) {
        self.stopping.store(value, Ordering::Relaxed);
    }

    #[getter(_closed)]
    fn get_closed(&self) -> bool {
        self.is_closed()
    }

    #[getter(_thread_id)]
    fn get_thread_id(&self) -> Option<u64> {
        match self.thread_id.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    #[setter(_thread_id)]
    fn set_thread_id(&self, value: Option<u64>) {
        self.thread_id.store(value.unwrap_or(0), Ordering::Relaxed);
    }

    #[getter(slow_callback_duration)]
    fn get_slow_callback_duration(&self) -> f64 {
        self.slow_callback_duration()
    }

    #[setter(slow_callback_duration)]
    fn set_slow_callback_duration(&self, value: f64) {
        self.slow_callback.store(value.to_bits(), Ordering::Relaxed);
    }

    #[getter(_current_handle)]
    fn get_current_handle(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.current_handle.lock().as_ref().map(|h| h.clone_ref(py))
    }

    #[getter(_task_factory)]
    fn get_task_factory_attr(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.task_factory.lock().as_ref().map(|f| f.clone_ref(py))
    }

    #[setter(_task_factory)]
    fn set_task_factory_attr(&self, value: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut *self.task_factory.lock(), value);
        drop(old);
    }

    /// `loop.create_task(coro, *, name=None, context=None)`. Without a task
    /// factory this is asyncio's first branch done natively:
    /// `asyncio.tasks.Task(coro, loop=self, name=name, context=context)`
    /// (the stdlib C Task, looked up at call time as asyncio does). With a
    /// factory, asyncio's own `create_task` runs, so each Python version's
    /// factory call contract holds.
    ///
    /// Other keywords (3.14's `eager_start`, or ones a factory takes) go to
    /// asyncio's own `create_task` with the rest, which takes them on 3.14+
    /// and raises asyncio's `TypeError` before that.
    #[pyo3(signature = (coro, *, name=None, context=None, **kwargs))]
    fn create_task(
        slf: &Bound<'_, Self>,
        coro: &Bound<'_, PyAny>,
        name: Option<&Bound<'_, PyAny>>,
        context: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        tasks::create_task(slf, coro, name, context, kwargs.filter(|k| !k.is_empty()))
    }

    /// `loop.create_future()`: `asyncio.futures.Future(loop=self)`.
    fn create_future(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        futures::new_future(slf.as_any()).map(Bound::unbind)
    }

    #[getter(_clock_resolution)]
    fn get_clock_resolution(&self) -> f64 {
        self.clock_resolution
    }

    fn _check_closed(&self) -> PyResult<()> {
        self.check_closed()
    }

    fn _check_thread(&self) -> PyResult<()> {
        self.check_thread()
    }

    /// One iteration of the loop (asyncio's `_run_once`).
    fn _run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        run::run_once(slf, &mut run::Scratch::default())
    }

    /// The inner `while True: _run_once(); if stopping: break` of run_forever.
    fn _run_forever_native(slf: &Bound<'_, Self>) -> PyResult<()> {
        run::run_forever(slf)
    }

    /// Marks the loop closed and drops everything scheduled on it,
    /// releasing each pending handle's callback (handles are not GC-tracked,
    /// so this is what breaks cycles through them; see handles.rs).
    fn _close_native(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Relaxed);
        let ready = std::mem::take(&mut *self.ready.borrow(py));
        let timers = self.timers.borrow(py).clear();
        let fds = self.reactor.clear(py);
        let inbox = std::mem::take(&mut *self.inbox.lock());
        drop(inbox);
        self.spare_context.clear(py);
        for h in ready.iter().chain(fds.iter()) {
            h.core().release(py);
        }
        for t in timers.iter() {
            t.core().release(py);
        }
        drop((ready, timers, fds));
    }

    /// Wakes the loop from another thread (asyncio's `_write_to_self`).
    fn _write_to_self(&self) {
        self.reactor.waker.wake();
    }

    /// `selectors.EVENT_READ|EVENT_WRITE` mask of a watched fd, else None
    /// (backs the `_selector.get_key` that asyncio's transport reprs use).
    fn _fd_events(&self, py: Python<'_>, fd: i32) -> Option<u32> {
        self.reactor.events_of(py, fd)
    }

    /// Number of callbacks waiting in the ready queue.
    fn _ready_len(&self, py: Python<'_>) -> usize {
        self.ready.borrow(py).len()
    }

    /// Number of timers in the heap, cancelled ones included.
    fn _timers_len(&self, py: Python<'_>) -> usize {
        self.timers.borrow(py).len()
    }

    /// Unfinished `run_in_executor` jobs of this loop on ferrio pools
    /// (tests check that every way a job ends gives its count back).
    fn _executor_jobs(&self) -> usize {
        self.executor_jobs.load(Ordering::Relaxed)
    }

    #[pyo3(signature = (fd, callback, *args))]
    fn add_reader(
        &self,
        fd: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        io::add_obj(self, fd, Side::Read, callback, args).map(drop)
    }

    #[pyo3(signature = (fd, callback, *args))]
    fn add_writer(
        &self,
        fd: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        io::add_obj(self, fd, Side::Write, callback, args).map(drop)
    }

    fn remove_reader(&self, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        io::remove_obj(self, fd, Side::Read)
    }

    fn remove_writer(&self, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        io::remove_obj(self, fd, Side::Write)
    }

    /// Selector-loop internal names, used by code written against
    /// `asyncio.selector_events` (they skip the transport ownership check).
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_reader(
        &self,
        fd: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        io::add_obj(self, fd, Side::Read, callback, args).map(HandleRef::into_py)
    }

    #[pyo3(signature = (fd, callback, *args))]
    fn _add_writer(
        &self,
        fd: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        io::add_obj(self, fd, Side::Write, callback, args).map(HandleRef::into_py)
    }

    fn _remove_reader(&self, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.remove_reader(fd)
    }

    fn _remove_writer(&self, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.remove_writer(fd)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // The GC must never block: a structure in use is skipped, which only
        // under-reports references and keeps objects alive (safe).
        // SAFETY (both try_borrow_unattached): the collector runs holding
        // the GIL.
        if let Some(q) = unsafe { self.ready.try_borrow_unattached() } {
            for h in q.iter() {
                visit.call(h.as_py())?;
            }
        }
        if let Some(t) = unsafe { self.timers.try_borrow_unattached() } {
            t.traverse(&visit)?;
        }
        self.reactor.traverse(&visit)?;
        if let Some(h) = self.current_handle.try_lock() {
            if let Some(h) = h.as_ref() {
                visit.call(h)?;
            }
        }
        if let Some(inbox) = self.inbox.try_lock() {
            for (fut, outcome) in inbox.iter() {
                visit.call(fut)?;
                if let Some(Ok(v)) = outcome {
                    visit.call(v)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&self, py: Python<'_>) {
        self._close_native(py);
        self.set_current_handle(None);
    }
}
