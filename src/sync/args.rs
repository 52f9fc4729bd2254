//! `threading`'s argument rules, shared by the primitives: which timeouts
//! are valid, with the exception types and texts of the running Python.

use std::time::Instant;

use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;

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

pub(crate) fn truthy(v: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
    v.map_or(Ok(true), |v| v.is_truthy())
}

/// `Lock.acquire`'s `blocking`: an int (C `int`) before 3.12, as
/// `_thread`'s "i" format parses it (a float is a TypeError), any object's
/// truth from 3.12 on.
pub(crate) fn lock_blocking(py: Python<'_>, blocking: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
    match blocking {
        None => Ok(true),
        Some(b) if py.version_info() < (3, 12) => Ok(b.extract::<std::os::raw::c_int>()? != 0),
        Some(b) => b.is_truthy(),
    }
}

/// Seconds `_PyTime_FromSecondsObject` can represent (int64 nanoseconds).
const PYTIME_MAX_SECONDS: f64 = 9_223_372_036.854_775;

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

/// `Semaphore.acquire(blocking=True, timeout=None)` rules.
pub(crate) fn sem_wait(blocking: bool, timeout: Option<f64>) -> PyResult<Wait> {
    match (blocking, timeout) {
        (false, Some(_)) => Err(PyValueError::new_err(
            "can't specify timeout for non-blocking acquire",
        )),
        (false, None) => Ok(Wait::Try),
        (true, t) => Ok(timed(t)),
    }
}

/// `Event.wait(timeout=None)` / `Condition.wait` rules: None blocks
/// forever, zero or less only checks.
pub(crate) fn timed(timeout: Option<f64>) -> Wait {
    match timeout {
        None => Wait::Until(None),
        Some(t) if t.is_nan() || t <= 0.0 => Wait::Try,
        Some(t) => Wait::Until(waiter::deadline(t)),
    }
}
