//! `ferrio.sync.Semaphore` and `BoundedSemaphore`: `threading`'s API
//! (`acquire(blocking, timeout)`, `release(n)`, context manager) on the
//! `Permits` core, plus an async face. One class: `BoundedSemaphore` is a
//! subclass whose core has a bound, as in `threading`.

use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;

use super::args::{self, Wait};
use super::permits::Permits;
use super::waiter::{self, Ready};

/// The most permits a state word holds (one bit is the PARKED flag).
const MAX_PERMITS: usize = usize::MAX >> 2;

#[pyclass(module = "ferrio.sync", name = "Semaphore", frozen, weakref, subclass)]
pub struct Semaphore {
    pub(crate) core: Permits,
    bounded: bool,
}

fn initial(value: i64) -> PyResult<usize> {
    if value < 0 {
        return Err(PyValueError::new_err(
            "semaphore initial value must be >= 0",
        ));
    }
    usize::try_from(value)
        .ok()
        .filter(|v| *v <= MAX_PERMITS)
        .ok_or_else(|| PyOverflowError::new_err("semaphore initial value is too large"))
}

impl Semaphore {
    pub(crate) fn acquire_with(slf: &Bound<'_, Self>, wait: Wait) -> PyResult<bool> {
        slf.get().core.acquire(slf.as_any(), wait)
    }

    pub(crate) fn release_n(slf: &Bound<'_, Self>, n: usize) -> PyResult<()> {
        let me = slf.get();
        me.core
            .release_and_wake(slf.as_any(), n)
            .map_err(|_| match me.bounded {
                true => PyValueError::new_err("Semaphore released too many times"),
                false => PyOverflowError::new_err("Semaphore value is too large"),
            })
    }

    fn acquire_async_with(slf: &Bound<'_, Self>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        slf.get().core.acquire_async(slf.as_any(), value, 0, || {})
    }
}

#[pymethods]
impl Semaphore {
    #[new]
    #[pyo3(signature = (value = 1))]
    fn new(value: i64) -> PyResult<Self> {
        Ok(Self {
            core: Permits::new(initial(value)?, MAX_PERMITS),
            bounded: false,
        })
    }

    /// `threading.Semaphore.acquire`: the timeout is read only when no
    /// permit is free (args.rs).
    #[pyo3(signature = (blocking = args::Given::Missing, timeout = None), text_signature = "($self, blocking=True, timeout=None)")]
    fn acquire(
        slf: &Bound<'_, Self>,
        blocking: args::Given<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let blocking = args::truthy(&blocking)?;
        args::sem_check(blocking, timeout)?;
        if !blocking {
            return Self::acquire_with(slf, Wait::Try);
        }
        if timeout.is_some() && Self::acquire_with(slf, Wait::Try)? {
            return Ok(true);
        }
        let wait = args::timed_wait(slf.py(), timeout)?;
        Self::acquire_with(slf, wait)
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Self::acquire_with(slf, Wait::Until(None))
    }

    /// `threading.Semaphore.release(n)`: `n < 1` is checked as Python
    /// compares (so `release(0.5)` is a ValueError, `release("x")` a
    /// TypeError); a float `n >= 1`, which `threading` adds to its counter,
    /// is a TypeError here (docs/compatibility.md).
    #[pyo3(signature = (n = args::Given::Missing), text_signature = "($self, n=1)")]
    fn release(slf: &Bound<'_, Self>, n: args::Given<'_>) -> PyResult<()> {
        let n = match n {
            args::Given::Missing => 1,
            args::Given::Value(n) => {
                if n.lt(1)? {
                    return Err(PyValueError::new_err("n must be one or more"));
                }
                n.extract::<i64>().or_else(|e| {
                    let py = slf.py();
                    if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(py) {
                        return Ok(i64::MAX);
                    }
                    // A float past a bounded semaphore's bound is
                    // threading's ValueError before it is our TypeError.
                    let me = slf.get();
                    if me.bounded {
                        if let Ok(f) = n.extract::<f64>() {
                            if me.core.value() as f64 + f > me.core.bound() as f64 {
                                return Err(PyValueError::new_err(
                                    "Semaphore released too many times",
                                ));
                            }
                        }
                    }
                    Err(e)
                })?
            }
        };
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        Self::release_n(slf, n)
    }

    #[pyo3(signature = (_t = None, _v = None, _tb = None))]
    fn __exit__(
        slf: &Bound<'_, Self>,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        Self::release_n(slf, 1)
    }

    /// `await sem.acquire_async()` -> True, without blocking the loop.
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
        Self::release_n(slf, 1)?;
        Ok(Ready::new(slf.py().None()))
    }

    /// Whether no permit is free (asyncio.Semaphore's `locked()`).
    fn locked(&self) -> bool {
        self.core.value() == 0
    }

    /// The free permits (`threading.Semaphore._value`).
    #[getter]
    fn _value(&self) -> usize {
        self.core.value()
    }

    /// Loop callback: completes a coroutine waiter that was handed a
    /// permit, or returns the permit if the waiter is gone.
    #[pyo3(signature = (fut, value, _tag))]
    fn _settle(
        slf: &Bound<'_, Self>,
        fut: Option<&Bound<'_, PyAny>>,
        value: &Bound<'_, PyAny>,
        _tag: u64,
    ) -> PyResult<()> {
        waiter::settle(fut, value, || Self::release_n(slf, 1))
    }

    fn _forget(&self, fut: &Bound<'_, PyAny>) {
        drop(self.core.forget(fut));
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let me = slf.get();
        let name = slf.get_type().qualname()?;
        let value = me.core.value();
        Ok(if me.bounded {
            format!(
                "<ferrio.sync.{name} at {:p}: value={value}/{}>",
                slf.as_ptr(),
                me.core.bound()
            )
        } else {
            format!("<ferrio.sync.{name} at {:p}: value={value}>", slf.as_ptr())
        })
    }
}

/// `threading.BoundedSemaphore`: releasing past the initial value raises
/// `ValueError`.
#[pyclass(module = "ferrio.sync", name = "BoundedSemaphore", frozen, weakref, extends = Semaphore)]
pub struct BoundedSemaphore;

#[pymethods]
impl BoundedSemaphore {
    #[new]
    #[pyo3(signature = (value = 1))]
    fn new(value: i64) -> PyResult<PyClassInitializer<Self>> {
        let v = initial(value)?;
        Ok(PyClassInitializer::from(Semaphore {
            core: Permits::new(v, v),
            bounded: true,
        })
        .add_subclass(Self))
    }
}
