//! `ferrio.sync.Lock`: `threading.Lock`'s API on the `Permits` core (one
//! permit), plus an async face (`await lock.acquire_async()`,
//! `async with lock:`) usable from any loop in any thread while threads
//! use the same lock.
//!
//! A coroutine waiter is handed the lock directly when it is released
//! (permits.rs); if its task was cancelled before the handoff arrived,
//! `_settle` releases the lock again, so a cancellation never leaks it.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use super::args::{self, Wait};
use super::permits::Permits;
use super::waiter::{self, Ready};

#[pyclass(module = "ferrio.sync", name = "Lock", frozen, weakref)]
pub struct Lock {
    pub(crate) core: Permits,
}

impl Lock {
    /// Acquire with a decided wait; the shared body of `acquire`,
    /// `__enter__` and `Condition`'s reacquire.
    pub(crate) fn acquire_with(slf: &Bound<'_, Self>, wait: Wait) -> PyResult<bool> {
        slf.get().core.acquire(slf.as_any(), wait)
    }

    pub(crate) fn release_inner(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get()
            .core
            .release_and_wake(slf.as_any(), 1)
            .map_err(|_| PyRuntimeError::new_err("release unlocked lock"))
    }

    /// The async acquire: a finished awaitable if the lock was free, else a
    /// future the releaser completes with `value`.
    pub(crate) fn acquire_async_with(
        slf: &Bound<'_, Self>,
        value: Py<PyAny>,
    ) -> PyResult<Py<PyAny>> {
        slf.get().core.acquire_async(slf.as_any(), value, 0, || {})
    }
}

#[pymethods]
impl Lock {
    #[new]
    fn new() -> Self {
        Self {
            core: Permits::new(1, 1),
        }
    }

    #[pyo3(signature = (blocking = args::Given::Missing, timeout = args::Given::Missing), text_signature = "($self, blocking=True, timeout=-1)")]
    fn acquire(
        slf: &Bound<'_, Self>,
        blocking: args::Given<'_>,
        timeout: args::Given<'_>,
    ) -> PyResult<bool> {
        let wait = args::lock_acquire(slf.py(), &blocking, &timeout)?;
        Self::acquire_with(slf, wait)
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Self::acquire_with(slf, Wait::Until(None))
    }

    fn release(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::release_inner(slf)
    }

    #[pyo3(signature = (_t = None, _v = None, _tb = None))]
    fn __exit__(
        slf: &Bound<'_, Self>,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        Self::release_inner(slf)
    }

    fn locked(&self) -> bool {
        self.core.value() == 0
    }

    /// `await lock.acquire_async()` -> True, without blocking the loop.
    fn acquire_async(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::acquire_async_with(slf, waiter::py_true(slf.py()))
    }

    fn __aenter__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::acquire_async_with(slf, slf.py().None())
    }

    #[pyo3(signature = (_t = None, _v = None, _tb = None))]
    fn __aexit__(
        slf: &Bound<'_, Self>,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Ready> {
        Self::release_inner(slf)?;
        Ok(Ready::new(slf.py().None()))
    }

    /// Loop callback: completes a coroutine waiter that was handed the
    /// lock, or releases it again if the waiter is gone.
    #[pyo3(signature = (fut, value, _tag))]
    fn _settle(
        slf: &Bound<'_, Self>,
        fut: Option<&Bound<'_, PyAny>>,
        value: &Bound<'_, PyAny>,
        _tag: u64,
    ) -> PyResult<()> {
        waiter::settle(fut, value, || Self::release_inner(slf))
    }

    /// Done callback of a waiting coroutine's future (cancellation).
    fn _forget(&self, fut: &Bound<'_, PyAny>) {
        drop(self.core.forget(fut));
    }

    fn _at_fork_reinit(&self) {
        self.core.reinit(1);
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let state = if slf.get().locked() {
            "locked"
        } else {
            "unlocked"
        };
        format!("<{state} ferrio.sync.Lock object at {:p}>", slf.as_ptr())
    }
}
