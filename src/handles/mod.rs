//! asyncio's `Handle` and `TimerHandle`, as native objects.
//!
//! - `mod.rs` (this file): the handle's state ([`HandleCore`]), running a
//!   callback in its context, and [`HandleRef`], the owning reference the
//!   loop's queues hold.
//! - `pytype.rs`: the two Python types (`ferrio.Handle`,
//!   `ferrio.TimerHandle`), hand-built with `PyType_FromSpec`.
//!
//! A handle *is* the ready-queue entry: `call_soon` allocates one Python
//! object (the one it must return anyway) and the queue stores a reference
//! to it, so scheduling costs one allocation and running costs one
//! vectorcall inside `PyContext_Enter`/`PyContext_Exit`.
//!
//! Why hand-built types rather than `#[pyclass]`: PyO3 0.30 makes every
//! class a GC type, and each GC allocation advances the collector's
//! counters, so with many pending callbacks the collector ran about twice
//! as often and `call_soon` cost ~2x (docs/decisions.md). Handles are not
//! GC objects, as in asyncio's C-accelerated competitors. That is safe
//! because a handle holds its callback only while pending, i.e. while the
//! loop references it: running, `cancel()` and `loop.close()` all release
//! the callback, which breaks any cycle through it.
//!
//! Contexts: a handle scheduled without `context=` must run in a copy of
//! the caller's context (asyncio). When that copy is empty (no contextvars
//! set, the common case) it is dropped at once and the handle makes a fresh
//! empty context only when it runs or `get_context()` is called, which is
//! indistinguishable from a copy of an empty context. Pending handles then
//! hold no GC-tracked context, so bursts of pending callbacks (a producer
//! thread, 1M `call_soon`) do not make every collection walk them.
//!
//! Invariants:
//! - `cancelled` only goes false → true. `cancel()` drops the callback and
//!   its arguments at once (as asyncio does).
//! - A one-shot handle gives up its callback when it runs; if the callback
//!   raised, the callback is put back so the exception handler and `repr()`
//!   still show it. Persistent handles (`add_reader`/`add_writer`) keep theirs.
//! - No lock is held while Python code runs (a callback may cancel its own
//!   handle, and a `__del__` may run on any decref).

mod pytype;

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::Borrowed;

use crate::gilcell::GilCell;

pub(crate) use pytype::register;

/// A callback and its positional arguments.
pub(crate) struct Callback {
    pub func: Py<PyAny>,
    pub args: Py<PyTuple>,
}

impl Callback {
    /// Decrefs both objects now. `Py`'s own `Drop` defers the decref when
    /// PyO3 does not know the thread is attached, which is the case in the
    /// raw slot functions of pytype.rs and in the fastcall entry points.
    pub(crate) fn dispose(self, py: Python<'_>) {
        drop((self.func.into_bound(py), self.args.into_bound(py)));
    }

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
    ctx: &Bound<'_, PyAny>,
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

/// `func()` for a builtin bound method `func` whose body is `f(self)`:
/// `f(func.__self__)` inside `ctx`, with the panic boundary PyO3's
/// trampoline would have given (a panic becomes `PanicException`).
#[inline]
fn call_native_in_context(
    py: Python<'_>,
    ctx: &Bound<'_, PyAny>,
    func: &Py<PyAny>,
    f: NativeFn,
) -> PyResult<()> {
    // SAFETY: GIL held; `func` is a live object. `with_native` handles are
    // made only for builtin bound methods, whose `m_self` is a borrowed
    // reference kept alive by the method object (which the caller holds).
    let slf = unsafe {
        let m = func.as_ptr();
        if ffi::PyCFunction_Check(m) == 0 {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "native watcher without a builtin method",
            ));
        }
        let s = ffi::PyCFunction_GetSelf(m);
        if s.is_null() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "native watcher without a bound self",
            ));
        }
        Borrowed::from_ptr(py, s)
    };
    // SAFETY: balanced Enter/Exit, as in `call_in_context`.
    if unsafe { ffi::PyContext_Enter(ctx.as_ptr()) } < 0 {
        return Err(PyErr::fetch(py));
    }
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&slf)))
        .unwrap_or_else(|payload| Err(crate::boundary::panic_error(payload)));
    // SAFETY: as above.
    if unsafe { ffi::PyContext_Exit(ctx.as_ptr()) } < 0 {
        let exit_err = PyErr::fetch(py);
        return res.and(Err(exit_err));
    }
    res
}

/// A set-once reference to a Python object (a handle's context).
///
/// `std::sync::OnceLock` costs ~80 instructions to initialise through its
/// `Once`; this is one store at creation and one compare-exchange when set
/// later. The object is owned (one reference) once set; `dispose` releases
/// it. Orderings: Release on publication pairs with Acquire on read, so a
/// reader on another thread sees a fully initialised object.
struct LazyObject(AtomicPtr<ffi::PyObject>);

impl LazyObject {
    fn new(obj: Option<Py<PyAny>>) -> Self {
        LazyObject(AtomicPtr::new(
            obj.map_or(std::ptr::null_mut(), |o| o.into_ptr()),
        ))
    }

    /// The object, borrowed for as long as `self` lives.
    #[inline]
    fn get<'a>(&'a self, py: Python<'a>) -> Option<Borrowed<'a, 'a, PyAny>> {
        let p = self.0.load(Ordering::Acquire);
        if p.is_null() {
            None
        } else {
            // SAFETY: a non-null pointer is an owned reference we hold until
            // `dispose`, which needs `self` by value.
            Some(unsafe { Borrowed::from_ptr(py, p) })
        }
    }

    /// Sets the object unless already set; returns the one in place.
    fn get_or_set<'a>(&'a self, py: Python<'a>, obj: Py<PyAny>) -> Borrowed<'a, 'a, PyAny> {
        let new = obj.into_ptr();
        match self.0.compare_exchange(
            std::ptr::null_mut(),
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: we just published `new`, an owned reference.
            Ok(_) => unsafe { Borrowed::from_ptr(py, new) },
            Err(existing) => {
                // SAFETY: `new` is our owned reference (decref it now, GIL
                // held); `existing` is the owned reference in place.
                unsafe {
                    ffi::Py_DECREF(new);
                    Borrowed::from_ptr(py, existing)
                }
            }
        }
    }

    /// Releases the object now, with the GIL known held. Owning `self`
    /// means no other thread can see the pointer: a plain read, no RMW.
    fn dispose(mut self, py: Python<'_>) {
        let p = std::mem::replace(self.0.get_mut(), std::ptr::null_mut());
        if !p.is_null() {
            // SAFETY: the owned reference we held; GIL held.
            drop(unsafe { Bound::from_owned_ptr(py, p) });
        }
    }
}

impl Drop for LazyObject {
    /// Only reached on error paths (a core dropped before it was placed in
    /// a Python object); normal teardown goes through `dispose`, which
    /// leaves nothing to release here.
    fn drop(&mut self) {
        let p = std::mem::replace(self.0.get_mut(), std::ptr::null_mut());
        if !p.is_null() {
            Python::attach(|py| {
                // SAFETY: the owned reference we held; attached to Python.
                drop(unsafe { Bound::from_owned_ptr(py, p) });
            });
        }
    }
}

/// A loop's spare empty context, lent to each handle whose context is unset
/// while it runs (one `PyContext_New` and one free saved per callback of a
/// burst or a timer). Which empty context a callback runs in cannot be
/// observed: a callback only reaches copies of its context, and one that
/// sets a variable keeps the context (it is not given back). A nested run
/// (the cell is empty meanwhile) makes a new one.
pub(crate) struct SpareContext(GilCell<Option<Py<PyAny>>>);

impl SpareContext {
    pub(crate) const fn new() -> Self {
        SpareContext(GilCell::new(None))
    }

    #[inline]
    fn lend<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let spare = self.0.borrow(py).take();
        match spare {
            Some(c) => Ok(c.into_bound(py)),
            None => crate::pyhelpers::new_context(py).map(|c| c.into_bound(py)),
        }
    }

    #[inline]
    fn give_back(&self, py: Python<'_>, ctx: Bound<'_, PyAny>) {
        let old = self.0.borrow(py).replace(ctx.unbind());
        drop(old); // normally None; freed outside the borrow
    }

    /// Frees the spare (loop close).
    pub(crate) fn clear(&self, py: Python<'_>) {
        let old = self.0.borrow(py).take();
        drop(old);
    }
}

/// The timer part of a `TimerHandle`.
pub(crate) struct TimerPart {
    when: f64,
    /// `when` was given as an `int`: `when()` answers an `int` again.
    when_is_int: bool,
    /// True while the handle sits in the loop's timer heap.
    scheduled: AtomicBool,
    /// The loop's count of cancelled handles still in the heap.
    cancelled_in_heap: Arc<AtomicUsize>,
}

/// Everything a handle knows; lives inside the Python object.
/// A native transport's readiness method, called with the `self` of the
/// handle's callback (a builtin bound method of that transport) instead of
/// through the method object: see [`HandleCore::with_native`].
pub(crate) type NativeFn = fn(&Bound<'_, PyAny>) -> PyResult<()>;

pub(crate) struct HandleCore {
    callback: GilCell<Option<Callback>>,
    /// Set for the watchers of ferrio's own transports (`Loop::watch`).
    native: Option<NativeFn>,
    /// Unset: an empty context, made on first use (see module doc).
    context: LazyObject,
    cancelled: AtomicBool,
    /// Reader/writer handles run many times and keep their callback.
    persistent: bool,
    /// `traceback.extract_stack()` at creation, only in debug mode.
    source_traceback: Option<Py<PyAny>>,
    timer: Option<TimerPart>,
}

impl HandleCore {
    pub(crate) fn new(
        func: Py<PyAny>,
        args: Py<PyTuple>,
        context: Option<Py<PyAny>>,
        persistent: bool,
        source_traceback: Option<Py<PyAny>>,
    ) -> Self {
        HandleCore {
            callback: GilCell::new(Some(Callback { func, args })),
            native: None,
            context: LazyObject::new(context),
            cancelled: AtomicBool::new(false),
            persistent,
            source_traceback,
            timer: None,
        }
    }

    /// Runs `f(callback.__self__)` instead of `callback()`: the callback
    /// must be a builtin bound method (no arguments) that does exactly
    /// that. It stays the handle's callback for `repr`, the exception
    /// handler and anything else that reads it; the call skips the method
    /// object and PyO3's trampoline (~150 instructions per readiness event
    /// under callgrind, docs/next-networking.md).
    pub(crate) fn with_native(mut self, f: NativeFn) -> Self {
        self.native = Some(f);
        self
    }

    /// Makes this a timer handle due at `when`.
    pub(crate) fn with_timer(
        mut self,
        when: f64,
        when_is_int: bool,
        cancelled_in_heap: Arc<AtomicUsize>,
    ) -> Self {
        self.timer = Some(TimerPart {
            when,
            when_is_int,
            scheduled: AtomicBool::new(true),
            cancelled_in_heap,
        });
        self
    }

    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        // Relaxed: the flag is only a hint to skip work; the callback itself
        // is in a GilCell (GIL-serialised), and a racing cancel() from
        // another thread is already unordered with respect to the run in
        // asyncio too.
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Marks the handle cancelled and releases the callback; a timer still
    /// in the heap is counted for compaction. Returns whether this call did
    /// the cancelling.
    pub(crate) fn cancel(&self, py: Python<'_>) -> bool {
        // AcqRel: exactly one caller wins the transition.
        if self.cancelled.swap(true, Ordering::AcqRel) {
            return false;
        }
        let taken = self.callback.borrow(py).take();
        if let Some(cb) = taken {
            cb.dispose(py); // decref outside the lock: __del__ may run here
        }
        if let Some(t) = &self.timer {
            // Relaxed: a heuristic counter read by the loop thread only.
            if t.scheduled.load(Ordering::Relaxed) {
                t.cancelled_in_heap.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }

    /// Drops the callback without cancelling (loop close): nothing will run
    /// it any more, and holding it could keep a garbage cycle alive.
    pub(crate) fn release(&self, py: Python<'_>) {
        let taken = self.callback.borrow(py).take();
        if let Some(cb) = taken {
            cb.dispose(py);
        }
    }

    /// Decrefs every Python object the core holds, now (see
    /// [`Callback::dispose`]). Used by the type's dealloc.
    pub(crate) fn dispose(self, py: Python<'_>) {
        let HandleCore {
            callback,
            context,
            source_traceback,
            ..
        } = self;
        if let Some(cb) = callback.into_inner() {
            cb.dispose(py);
        }
        context.dispose(py);
        if let Some(tb) = source_traceback {
            drop(tb.into_bound(py));
        }
    }

    /// Runs the callback in its context. On error the callback is kept (for
    /// the exception handler's message and `repr`) and the error returned.
    /// `keep` retains the callback after a successful run (debug mode, so
    /// the slow-callback warning can name it). A handle whose context is
    /// still unset (an empty one, see the module doc) runs in `spare`'s.
    #[inline]
    pub(crate) fn run(&self, py: Python<'_>, keep: bool, spare: &SpareContext) -> PyResult<()> {
        let keep = keep || self.persistent;
        let cb = {
            let mut slot = self.callback.borrow(py);
            if keep {
                slot.as_ref().map(|c| c.clone_ref(py))
            } else {
                slot.take()
            }
        };
        let Some(cb) = cb else {
            return Ok(()); // cancelled after it was queued
        };
        let res = match self.context.get(py) {
            Some(ctx) => match self.native {
                Some(f) => call_native_in_context(py, &ctx, &cb.func, f),
                None => call_in_context(py, &ctx, &cb.func, &cb.args),
            },
            None => self.run_in_spare(py, &cb, spare),
        };
        if res.is_err() && !keep && !self.is_cancelled() {
            // Nothing can refill the slot meanwhile (only this path puts a
            // callback back), but drop whatever was there outside the borrow.
            let old = self.callback.borrow(py).replace(cb);
            drop(old);
        } else {
            cb.dispose(py);
        }
        res
    }

    /// Runs a handle with an empty (unset) context in the loop's spare empty
    /// context. If the callback left a variable set, that context becomes
    /// the handle's own (as if it had been made for it: `get_context()`
    /// shows it); otherwise it goes back for the next handle.
    #[inline]
    fn run_in_spare(&self, py: Python<'_>, cb: &Callback, spare: &SpareContext) -> PyResult<()> {
        let ctx = spare.lend(py)?;
        let res = match self.native {
            Some(f) => call_native_in_context(py, &ctx, &cb.func, f),
            None => call_in_context(py, &ctx, &cb.func, &cb.args),
        };
        // SAFETY: GIL held; `ctx` is a live Context, whose length cannot fail.
        if unsafe { ffi::PyObject_Length(ctx.as_ptr()) } == 0 {
            spare.give_back(py, ctx);
        } else {
            self.context.get_or_set(py, ctx.unbind());
        }
        res
    }

    /// The context the callback runs in, making the empty one if unset.
    #[inline]
    pub(crate) fn context<'a>(&'a self, py: Python<'a>) -> PyResult<Borrowed<'a, 'a, PyAny>> {
        if let Some(c) = self.context.get(py) {
            return Ok(c);
        }
        // A racing initialiser (another thread calling get_context) wins.
        Ok(self
            .context
            .get_or_set(py, crate::pyhelpers::new_context(py)?))
    }

    fn callback_ref(&self, py: Python<'_>) -> Option<Callback> {
        self.callback.borrow(py).as_ref().map(|c| c.clone_ref(py))
    }

    /// Deadline of a timer handle (None for a plain handle).
    #[inline]
    pub(crate) fn when(&self) -> Option<f64> {
        self.timer.as_ref().map(|t| t.when)
    }

    /// `when()` as Python sees it: an `int` if it was given as one (exact
    /// up to 2**53; the heap orders by the float).
    pub(crate) fn when_object<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let Some(t) = self.timer.as_ref() else {
            return Ok(f64::NAN.into_pyobject(py)?.into_any());
        };
        if t.when_is_int && t.when.is_finite() {
            // The float of an int is integral; within i64 it converts back
            // exactly, beyond it Python's int(float) does.
            if t.when.abs() < 9.0e18 {
                return Ok((t.when as i64).into_pyobject(py)?.into_any());
            }
            return py.get_type::<pyo3::types::PyInt>().call1((t.when,));
        }
        Ok(t.when.into_pyobject(py)?.into_any())
    }

    /// Called by the heap when a timer leaves it (run or reclaimed).
    #[inline]
    pub(crate) fn unschedule(&self) {
        if let Some(t) = &self.timer {
            // Relaxed: see `cancel`.
            t.scheduled.store(false, Ordering::Relaxed);
        }
    }
}

/// An owned reference to a `Handle` or `TimerHandle` object.
///
/// Invariant: the pointee is an object created by [`new_handle`], so it is a
/// `pytype::HandleObject` and [`HandleRef::core`] may read its state.
pub(crate) struct HandleRef(Py<PyAny>);

impl HandleRef {
    #[inline]
    pub(crate) fn core(&self) -> &HandleCore {
        // SAFETY: by the type invariant the object is a HandleObject, which
        // stays alive (and its core initialised) while we hold a reference.
        unsafe { pytype::core_of(self.0.as_ptr()) }
    }

    #[inline]
    pub(crate) fn clone_ref(&self, py: Python<'_>) -> Self {
        HandleRef(self.0.clone_ref(py))
    }

    #[inline]
    pub(crate) fn bind<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.0.bind(py)
    }

    #[inline]
    pub(crate) fn as_py(&self) -> &Py<PyAny> {
        &self.0
    }

    #[inline]
    pub(crate) fn into_py(self) -> Py<PyAny> {
        self.0
    }

    /// Drops the reference with the GIL known held (skips PyO3's
    /// thread-local check).
    #[inline]
    pub(crate) fn release_ref(self, py: Python<'_>) {
        drop(self.0.into_bound(py));
    }
}

/// Creates a `Handle` (or, if `core` has a timer part, a `TimerHandle`).
#[inline]
pub(crate) fn new_handle(py: Python<'_>, core: HandleCore) -> PyResult<HandleRef> {
    pytype::new_object(py, core).map(HandleRef)
}
