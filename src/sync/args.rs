//! `threading`'s argument rules, shared by the primitives: which timeouts
//! are valid, with the exception types and texts of the running Python.
//!
//! `threading`'s Python primitives look at their arguments lazily: a
//! `Semaphore.acquire(timeout=...)` that gets a permit at once never reads
//! the timeout, `Event.wait` on a set event never does, and a timeout is
//! only converted for the C lock (`_PyTime_FromSecondsObject`) when a wait
//! really blocks. The helpers here are called at the same points, so the
//! same call succeeds or raises the same exception on both
//! (tests/test_sync_args.py). One difference is kept on purpose: a NaN
//! timeout on a wait that must block makes `threading`'s
//! Semaphore/Queue loops spin forever at 100% CPU; ferrio treats it as
//! "do not wait" (docs/compatibility.md).

use std::time::Instant;

use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyFloat;
use pyo3::Borrowed;

use super::waiter;

/// `threading.TIMEOUT_MAX` on 64-bit Linux.
const TIMEOUT_MAX: f64 = 9_223_372_036.0;

/// How long a wait may block.
pub(crate) enum Wait {
    /// Try once (`blocking=False`, or a timeout already over).
    Try,
    /// Block until this deadline (None: forever).
    Until(Option<Instant>),
}

/// An argument whose absence is not the same as an explicit `None`: PyO3
/// maps both to `None` for an `Option` parameter, but `threading` treats
/// `acquire(None)` as "don't block" (or, for `Lock` before 3.12, as a
/// TypeError) and `q.get(None)` as non-blocking. Declared with
/// `blocking = Given::Missing` in a signature.
pub(crate) enum Given<'py> {
    Missing,
    Value(Bound<'py, PyAny>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Given<'py> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Given::Value(obj.to_owned()))
    }
}

/// `blocking`/`block` as the Python primitives read it: its truth (an
/// explicit None is false), true when not given.
pub(crate) fn truthy(v: &Given<'_>) -> PyResult<bool> {
    match v {
        Given::Missing => Ok(true),
        Given::Value(v) => v.is_truthy(),
    }
}

/// `Lock.acquire`'s `blocking`: an int (C `int`) before 3.12, as
/// `_thread`'s "i" format parses it (a float or None is a TypeError), any
/// object's truth from 3.12 on.
pub(crate) fn lock_blocking(py: Python<'_>, blocking: &Given<'_>) -> PyResult<bool> {
    match blocking {
        Given::Missing => Ok(true),
        Given::Value(b) if py.version_info() < (3, 12) => {
            Ok(b.extract::<std::os::raw::c_int>()? != 0)
        }
        Given::Value(b) => b.is_truthy(),
    }
}

/// `Lock.acquire`'s `timeout`, in seconds: -1 when not given, else as
/// `_PyTime_FromSecondsObject` converts it (None is a TypeError).
pub(crate) fn lock_timeout(py: Python<'_>, timeout: &Given<'_>) -> PyResult<f64> {
    match timeout {
        Given::Missing => Ok(-1.0),
        Given::Value(t) => pytime_seconds(py, t),
    }
}

/// `_PyTime_FromSecondsObject(obj)`, in seconds, with the running
/// Python's errors: a float is checked for NaN and range; anything else
/// must be an integer (`__index__`), so `None`, `"1"` or a `Decimal` are
/// TypeErrors ("'str' object cannot be interpreted as an integer").
pub(crate) fn pytime_seconds(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    let int_overflow = || {
        PyOverflowError::new_err(if py.version_info() >= (3, 13) {
            "timestamp too large to convert to C PyTime_t"
        } else {
            "timestamp too large to convert to C _PyTime_t"
        })
    };
    if let Ok(f) = obj.cast::<PyFloat>() {
        let d = f.value();
        if d.is_nan() {
            return Err(PyValueError::new_err("Invalid value NaN (not a number)"));
        }
        // The range check of pytime_from_double: |d| * 1e9 within int64.
        let ns = d * 1e9;
        // i64::MIN as f64 is exact (-2^63); NaN is excluded above.
        let limit = -(i64::MIN as f64);
        if !(-limit..limit).contains(&ns) {
            return Err(PyOverflowError::new_err(if py.version_info() >= (3, 11) {
                "timestamp out of range for platform time_t"
            } else {
                "timestamp too large to convert to C _PyTime_t"
            }));
        }
        return Ok(d);
    }
    // SAFETY: GIL held (`py`); PyNumber_Index returns a new reference or
    // NULL with an exception set, which `from_owned_ptr_or_err` takes.
    let index = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyNumber_Index(obj.as_ptr())) }?;
    let secs: i64 = index.extract().map_err(|_| int_overflow())?;
    let ns = secs.checked_mul(1_000_000_000).ok_or_else(int_overflow)?;
    Ok(ns as f64 / 1e9)
}

/// What `threading.Condition.wait(timeout)` does with its timeout: None
/// blocks forever; `timeout > 0` (a Python comparison) waits that long,
/// converted as `Lock.acquire(True, timeout)` converts it; anything else
/// only checks.
pub(crate) fn cond_wait(py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Wait> {
    let Some(t) = timeout else {
        return Ok(Wait::Until(None));
    };
    if !t.gt(0)? {
        return Ok(Wait::Try);
    }
    let secs = pytime_seconds(py, t)?;
    if secs > TIMEOUT_MAX {
        return Err(PyOverflowError::new_err("timeout value is too large"));
    }
    Ok(Wait::Until(waiter::deadline(secs)))
}

/// A wait with a deadline computed first, as `Semaphore.acquire`,
/// `Condition.wait_for` and `Barrier.wait` do (`endtime = _time() +
/// timeout`, then `Condition.wait(timeout)`): `_time() + timeout` raises
/// first for a non-number, then `cond_wait`'s rules.
pub(crate) fn timed_wait(py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Wait> {
    if let Some(t) = timeout {
        PyFloat::new(py, 0.0).add(t)?;
    }
    cond_wait(py, timeout)
}

/// Seconds `_PyTime_FromSecondsObject` can represent (int64 nanoseconds).
const PYTIME_MAX_SECONDS: f64 = 9_223_372_036.854_775;

/// `Lock.acquire(blocking, timeout)` from its raw arguments.
pub(crate) fn lock_acquire(
    py: Python<'_>,
    blocking: &Given<'_>,
    timeout: &Given<'_>,
) -> PyResult<Wait> {
    let blocking = lock_blocking(py, blocking)?;
    lock_wait(py, blocking, lock_timeout(py, timeout)?)
}

/// `Lock.acquire(blocking=True, timeout=-1)` / `RLock.acquire` rules, in
/// `_thread`'s order: the timeout is converted first (NaN: ValueError;
/// out of range: OverflowError), then checked against `blocking`.
pub(crate) fn lock_wait(py: Python<'_>, blocking: bool, timeout: f64) -> PyResult<Wait> {
    if timeout.is_nan() {
        return Err(PyValueError::new_err("Invalid value NaN (not a number)"));
    }
    if timeout.abs() > PYTIME_MAX_SECONDS {
        return Err(PyOverflowError::new_err(
            "timestamp too large to convert to C _PyTime_t",
        ));
    }
    if !blocking {
        if timeout != -1.0 {
            return Err(PyValueError::new_err(
                "can't specify a timeout for a non-blocking call",
            ));
        }
        return Ok(Wait::Try);
    }
    if timeout < 0.0 && timeout != -1.0 {
        let msg = if py.version_info() >= (3, 13) {
            "timeout value must be a non-negative number"
        } else {
            "timeout value must be positive"
        };
        return Err(PyValueError::new_err(msg));
    }
    if timeout > TIMEOUT_MAX {
        return Err(PyOverflowError::new_err("timeout value is too large"));
    }
    Ok(Wait::Until(waiter::deadline(timeout)))
}

/// `Semaphore.acquire(blocking=True, timeout=None)`'s eager check: a
/// timeout with a non-blocking call is a ValueError. Whether a blocking
/// call may wait, and how long, is decided only when it must wait
/// (`timed_wait`).
pub(crate) fn sem_check(blocking: bool, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    if !blocking && timeout.is_some() {
        return Err(PyValueError::new_err(
            "can't specify timeout for non-blocking acquire",
        ));
    }
    Ok(())
}
