//! The Rust → CPython boundary for hand-written entry points (raw method
//! descriptors and type slots that PyO3 does not wrap).
//!
//! [`guard`] runs the body, turns a `PyErr` into a raised exception and a
//! Rust panic into `pyo3_runtime.PanicException`, returning NULL in both
//! cases. Nothing unwinds into CPython (which would abort the process).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;

/// Runs `f` for a raw entry point. Only call from functions CPython invokes
/// with the GIL held (method and slot implementations).
#[inline]
pub fn guard(f: impl FnOnce(Python<'_>) -> PyResult<*mut ffi::PyObject>) -> *mut ffi::PyObject {
    // SAFETY: per the contract above, the GIL is held.
    let py = unsafe { Python::assume_attached() };
    match catch_unwind(AssertUnwindSafe(|| f(py))) {
        Ok(Ok(obj)) => obj,
        Ok(Err(e)) => {
            e.restore(py);
            ptr::null_mut()
        }
        Err(payload) => {
            panic_error(payload).restore(py);
            ptr::null_mut()
        }
    }
}

/// The `PanicException` a caught panic becomes (PyO3's trampolines do the
/// same for generated methods).
pub fn panic_error(payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic in ferrio".to_string());
    PanicException::new_err(msg)
}
