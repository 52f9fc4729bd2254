//! Cold-path helpers written in Python (`ferrio/_helpers.py`), looked up
//! once and cached: formatting a handle's `repr`, reporting a callback's
//! exception to the loop's handler, capturing a debug-mode stack. Keeping
//! these in Python reuses asyncio's own formatting so messages match it.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyModule, PyTuple};

static FORMAT_HANDLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static REPORT_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static EXTRACT_STACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static WARN_SLOW: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static CHECK_CALLBACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static EMPTY_TUPLE: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();

const HELPERS: &str = "ferrio._helpers";

/// `repr()` of a handle, asyncio style.
pub fn format_handle(handle: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = handle.py();
    let f = FORMAT_HANDLE.import(py, HELPERS, "format_handle")?;
    f.call1((handle,))?.extract()
}

/// Sends a callback's exception to `loop.call_exception_handler` with
/// asyncio's context keys. Errors out of the handler (only
/// `SystemExit`/`KeyboardInterrupt` get that far) are returned.
pub fn report_callback_error(
    lp: &Bound<'_, PyAny>,
    handle: &Bound<'_, PyAny>,
    err: PyErr,
) -> PyResult<()> {
    let py = lp.py();
    let f = REPORT_ERROR.import(py, HELPERS, "report_callback_error")?;
    f.call1((lp, handle, err.into_value(py)))?;
    Ok(())
}

/// The creation stack of a handle, recorded in debug mode only.
pub fn extract_stack(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let f = EXTRACT_STACK.import(py, HELPERS, "extract_stack")?;
    Ok(f.call0()?.unbind())
}

/// Logs asyncio's "Executing <handle> took X seconds" warning.
pub fn warn_slow(handle: &Bound<'_, PyAny>, seconds: f64) -> PyResult<()> {
    let py = handle.py();
    let f = WARN_SLOW.import(py, HELPERS, "warn_slow_callback")?;
    f.call1((handle, seconds))?;
    Ok(())
}

/// Debug-mode argument check of `call_soon` and friends (asyncio's
/// `_check_callback`: no coroutines, must be callable).
pub fn check_callback(callback: &Bound<'_, PyAny>, method: &str) -> PyResult<()> {
    let py = callback.py();
    let f = CHECK_CALLBACK.import(py, HELPERS, "check_callback")?;
    f.call1((callback, method))?;
    Ok(())
}

/// The empty tuple, cached (`PyTuple::empty` goes through `PyTuple_New`).
#[inline]
pub fn empty_tuple(py: Python<'_>) -> Bound<'_, PyTuple> {
    EMPTY_TUPLE
        .get_or_init(py, || PyTuple::empty(py).unbind())
        .bind(py)
        .clone()
}

/// A new empty `contextvars.Context`.
#[inline]
pub fn new_context(py: Python<'_>) -> PyResult<Py<PyAny>> {
    // SAFETY: GIL held; PyContext_New returns a new reference or NULL with an
    // exception set.
    unsafe {
        let ctx = ffi::PyContext_New();
        if ctx.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, ctx).unbind())
    }
}

/// A copy of the current context for a new handle. With `lazy_if_empty`,
/// `None` when that copy is empty: the handle then makes an empty context on
/// first use (see handles/mod.rs) and the copy goes straight back to
/// CPython's context freelist.
#[inline]
pub fn copy_context_for_handle(py: Python<'_>, lazy_if_empty: bool) -> PyResult<Option<Py<PyAny>>> {
    // SAFETY: GIL held; PyContext_CopyCurrent returns a new reference or NULL
    // with an exception set; PyObject_Length on a Context cannot fail.
    unsafe {
        let ctx = ffi::PyContext_CopyCurrent();
        if ctx.is_null() {
            return Err(PyErr::fetch(py));
        }
        let ctx = Bound::from_owned_ptr(py, ctx);
        if lazy_if_empty && ffi::PyObject_Length(ctx.as_ptr()) == 0 {
            return Ok(None);
        }
        Ok(Some(ctx.unbind()))
    }
}

static HELPERS_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Calls `ferrio._helpers.<name>(*args)` (cold paths only: the attribute
/// is looked up on every call).
pub fn call_helper<'py, A>(py: Python<'py>, name: &str, args: A) -> PyResult<Bound<'py, PyAny>>
where
    A: pyo3::call::PyCallArgs<'py>,
{
    let m = HELPERS_MODULE.get_or_try_init(py, || py.import(HELPERS).map(Bound::unbind))?;
    m.bind(py).getattr(name)?.call1(args)
}
