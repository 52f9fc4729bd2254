//! asyncio's `Handle` and `TimerHandle`, as native objects.
//!
//! A handle *is* the ready-queue entry: `call_soon` allocates one Python
//! object (the one it must return anyway) and the queue stores a reference
//! to it, so scheduling costs one allocation and running costs one
//! vectorcall inside `PyContext_Enter`/`PyContext_Exit`.
//!
//! Invariants:
//! - `cancelled` only goes false → true. `cancel()` drops the callback and
//!   its arguments at once (as asyncio does), so a cancelled timer that waits
//!   in the heap for compaction pins no user objects.
//! - A one-shot handle gives up its callback when it runs; if the callback
//!   raised, the callback is put back so the exception handler and `repr()`
//!   still show it. Persistent handles (`add_reader`/`add_writer`) keep theirs.
//! - No lock is held while Python code runs (a callback may cancel its own
//!   handle, and a `__del__` may run on any decref).
//! - Handles are *not* tracked by the cyclic GC (no `__traverse__`): with
//!   many pending handles, GC passes over them cost more than the rest of
//!   `call_soon` together (see docs/decisions.md). This is safe because a
//!   handle holds its callback only while it is pending, i.e. while the
//!   loop references it: running, cancelling and `loop.close()` all release
//!   the callback, which breaks any cycle through it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::PyTuple;

use crate::pyhelpers;

/// A callback and its positional arguments.
pub(crate) struct Callback {
    pub func: Py<PyAny>,
    pub args: Py<PyTuple>,
}

impl Callback {
    fn clone_ref(&self, py: Python<'_>) -> Self {
        Callback {
            func: self.func.clone_ref(py),
            args: self.args.clone_ref(py),
        }
    }
}

/// Calls `func(*args)` inside `ctx`, like `ctx.run(func, *args)` but without
/// building a bound method or an argument tuple.
#[inline]
pub(crate) fn call_in_context(
    py: Python<'_>,
    ctx: &Py<PyAny>,
    func: &Py<PyAny>,
    args: &Py<PyTuple>,
) -> PyResult<()> {
    // SAFETY: all pointers are owned references kept alive by the caller for
    // the duration of the call; the GIL is held (we have `py`). Enter/Exit
    // are balanced: Exit runs whether or not the call succeeded, which is
    // what `Context.run` does in CPython.
    unsafe {
        if ffi::PyContext_Enter(ctx.as_ptr()) < 0 {
            return Err(PyErr::fetch(py));
        }
        let a = args.as_ptr();
        let f = func.as_ptr();
        let ret = match ffi::PyTuple_GET_SIZE(a) {
            0 => ffi::PyObject_CallNoArgs(f),
            1 => ffi::PyObject_CallOneArg(f, ffi::PyTuple_GET_ITEM(a, 0)),
            _ => ffi::PyObject_Call(f, a, std::ptr::null_mut()),
        };
        let exit_rc = ffi::PyContext_Exit(ctx.as_ptr());
        if ret.is_null() {
            return Err(PyErr::fetch(py));
        }
        ffi::Py_DECREF(ret);
        if exit_rc < 0 {
            return Err(PyErr::fetch(py));
        }
    }
    Ok(())
}

/// `asyncio.Handle` equivalent returned by `call_soon` and friends.
// freelist: a freed handle is kept for reuse, so steady-state scheduling
// neither mallocs nor bumps the GC's allocation counter.
#[pyclass(module = "ferrio._ferrio", subclass, frozen, weakref, freelist = 1024)]
pub struct Handle {
    callback: Mutex<Option<Callback>>,
    context: Py<PyAny>,
    cancelled: AtomicBool,
    /// Reader/writer handles run many times and keep their callback.
    persistent: bool,
    /// `traceback.extract_stack()` at creation, only in debug mode.
    source_traceback: Option<Py<PyAny>>,
}

impl Handle {
    pub(crate) fn new(
        func: Py<PyAny>,
        args: Py<PyTuple>,
        context: Py<PyAny>,
        persistent: bool,
        source_traceback: Option<Py<PyAny>>,
    ) -> Self {
        Handle {
            callback: Mutex::new(Some(Callback { func, args })),
            context,
            cancelled: AtomicBool::new(false),
            persistent,
            source_traceback,
        }
    }

    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        // Relaxed: the flag is only a hint to skip work; the callback itself is
        // guarded by the mutex, and a racing cancel() from another thread is
        // already unordered with respect to the run in asyncio too.
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Marks the handle cancelled and releases the callback. Returns whether
    /// this call did the cancelling.
    pub(crate) fn cancel_inner(&self) -> bool {
        // AcqRel: exactly one caller wins the transition.
        if self.cancelled.swap(true, Ordering::AcqRel) {
            return false;
        }
        let taken = self.callback.lock().take();
        drop(taken); // decref outside the lock: __del__ may run here
        true
    }

    /// Drops the callback without cancelling (loop close): nothing will run
    /// it any more, and holding it could keep a garbage cycle alive.
    pub(crate) fn release(&self) {
        let taken = self.callback.lock().take();
        drop(taken);
    }

    /// Runs the callback in its context. On error the callback is kept (for
    /// the exception handler's message and `repr`) and the error returned.
    /// `keep` retains the callback after a successful run (debug mode, so
    /// the slow-callback warning can name it).
    #[inline]
    pub(crate) fn run(&self, py: Python<'_>, keep: bool) -> PyResult<()> {
        let keep = keep || self.persistent;
        let cb = {
            let mut slot = self.callback.lock();
            if keep {
                slot.as_ref().map(|c| c.clone_ref(py))
            } else {
                slot.take()
            }
        };
        let Some(cb) = cb else {
            return Ok(()); // cancelled after it was queued
        };
        let res = call_in_context(py, &self.context, &cb.func, &cb.args);
        if res.is_err() && !keep && !self.is_cancelled() {
            *self.callback.lock() = Some(cb);
        } else {
            // Decref with the GIL known held (Py's Drop checks a thread-local).
            drop((cb.func.into_bound(py), cb.args.into_bound(py)));
        }
        res
    }

    fn callback_ref(&self, py: Python<'_>) -> Option<Callback> {
        self.callback.lock().as_ref().map(|c| c.clone_ref(py))
    }
}

#[pymethods]
impl Handle {
    fn cancel(&self) {
        self.cancel_inner();
    }

    fn cancelled(&self) -> bool {
        self.is_cancelled()
    }

    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.context.clone_ref(py)
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.callback_ref(py).map(|c| c.func)
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.callback_ref(py).map(|c| c.args)
    }

    #[getter]
    fn _cancelled(&self) -> bool {
        self.is_cancelled()
    }

    #[getter]
    fn _context(&self, py: Python<'_>) -> Py<PyAny> {
        self.context.clone_ref(py)
    }

    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.source_traceback.as_ref().map(|t| t.clone_ref(py))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        pyhelpers::format_handle(slf.as_any())
    }
}

/// `asyncio.TimerHandle` equivalent returned by `call_later`/`call_at`.
#[pyclass(module = "ferrio._ferrio", extends = Handle, frozen, freelist = 1024)]
pub struct TimerHandle {
    when: f64,
    /// True while the handle sits in the loop's timer heap.
    scheduled: AtomicBool,
    /// The loop's count of cancelled handles still in the heap.
    cancelled_in_heap: Arc<AtomicUsize>,
}

impl TimerHandle {
    pub(crate) fn new(when: f64, cancelled_in_heap: Arc<AtomicUsize>) -> Self {
        TimerHandle {
            when,
            scheduled: AtomicBool::new(true),
            cancelled_in_heap,
        }
    }

    /// Called by the heap when the handle leaves it (run or reclaimed).
    #[inline]
    pub(crate) fn unschedule(&self) {
        // Relaxed: the flag and the counter only drive the compaction
        // heuristic; every access happens on the loop thread or under the GIL.
        self.scheduled.store(false, Ordering::Relaxed);
    }
}

#[pymethods]
impl TimerHandle {
    fn cancel(slf: &Bound<'_, Self>) {
        if slf.as_super().get().cancel_inner() && slf.get().scheduled.load(Ordering::Relaxed) {
            // Relaxed: a heuristic counter (see `unschedule`).
            slf.get().cancelled_in_heap.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn when(&self) -> f64 {
        self.when
    }

    #[getter]
    fn _when(&self) -> f64 {
        self.when
    }

    #[getter]
    fn _scheduled(&self) -> bool {
        self.scheduled.load(Ordering::Relaxed)
    }

    fn __hash__(&self) -> isize {
        // asyncio hashes a TimerHandle by its deadline.
        let bits = self.when.to_bits();
        (bits ^ (bits >> 32)) as isize
    }

    fn __richcmp__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let Ok(other) = other.cast::<TimerHandle>() else {
            return Ok(py.NotImplemented());
        };
        let (a, b) = (slf.get().when, other.get().when);
        let result = match op {
            CompareOp::Lt => a < b,
            CompareOp::Le => a < b || timer_eq(slf, other)?,
            CompareOp::Gt => a > b,
            CompareOp::Ge => a > b || timer_eq(slf, other)?,
            CompareOp::Eq => timer_eq(slf, other)?,
            CompareOp::Ne => !timer_eq(slf, other)?,
        };
        Ok(pyo3::types::PyBool::new(py, result)
            .to_owned()
            .into_any()
            .unbind())
    }
}

/// asyncio's `TimerHandle.__eq__`: same deadline, callback, args, and state.
fn timer_eq(a: &Bound<'_, TimerHandle>, b: &Bound<'_, TimerHandle>) -> PyResult<bool> {
    if a.is(b) {
        return Ok(true);
    }
    let py = a.py();
    if a.get().when != b.get().when {
        return Ok(false);
    }
    let (ha, hb) = (a.as_super().get(), b.as_super().get());
    if ha.is_cancelled() != hb.is_cancelled() {
        return Ok(false);
    }
    match (ha.callback_ref(py), hb.callback_ref(py)) {
        (None, None) => Ok(true),
        (Some(x), Some(y)) => {
            Ok(x.func.bind(py).eq(y.func.bind(py))? && x.args.bind(py).eq(y.args.bind(py))?)
        }
        _ => Ok(false),
    }
}

/// Removes a freshly built handle from the cyclic GC's lists (see the
/// module doc for why that is safe).
#[inline]
fn untrack<T>(obj: &Py<T>) {
    // SAFETY: `obj` is a live object of a PyO3 class, which always has
    // Py_TPFLAGS_HAVE_GC; untracking a tracked GC object is allowed at any
    // time with the GIL held (we are called right after allocation, with
    // the GIL), and PyO3's dealloc untracks only if still tracked.
    unsafe { ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) }
}

/// Builds a `Handle` object (not GC-tracked).
#[inline]
pub(crate) fn new_handle(py: Python<'_>, handle: Handle) -> PyResult<Py<Handle>> {
    let h = Py::new(py, handle)?;
    untrack(&h);
    Ok(h)
}

/// Builds a `TimerHandle` object (not GC-tracked).
#[inline]
pub(crate) fn new_timer_handle(
    py: Python<'_>,
    handle: Handle,
    timer: TimerHandle,
) -> PyResult<Py<TimerHandle>> {
    let h = Py::new(py, PyClassInitializer::from(handle).add_subclass(timer))?;
    untrack(&h);
    Ok(h)
}

/// Raises asyncio's error for a `None` delay/deadline.
pub(crate) fn none_time_error(what: &str) -> PyErr {
    PyTypeError::new_err(what.to_string())
}
