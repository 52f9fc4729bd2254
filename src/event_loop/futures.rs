//! `loop.create_future()`, natively.
//!
//! asyncio's version is the Python function `futures.Future(loop=self)`;
//! every `await` on a future made by asyncio's own code (streams' waiters,
//! `Event.wait`, `sock_*`, ...) pays for that Python frame. Here it is one
//! vectorcall of the C `Future` type with a `loop=` keyword. `Future` is
//! looked up on `asyncio.futures` at each call, as asyncio's global lookup
//! is (tests replace it).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

static FUTURES_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
static LOOP_KWNAMES: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();

/// `asyncio.futures.Future(loop=lp)`.
pub(crate) fn new_future<'py>(lp: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = lp.py();
    let module = FUTURES_MODULE.get_or_try_init(py, || -> PyResult<Py<PyModule>> {
        Ok(py.import("asyncio.futures")?.unbind())
    })?;
    let future_type = module.bind(py).getattr(pyo3::intern!(py, "Future"))?;
    let kwnames = LOOP_KWNAMES.get_or_init(py, || {
        PyTuple::new(py, [pyo3::intern!(py, "loop")])
            .map(Bound::unbind)
            .unwrap_or_else(|_| PyTuple::empty(py).unbind())
    });
    if kwnames.bind(py).len() != 1 {
        // Building the names tuple failed (out of memory): plain call.
        let kw = pyo3::types::PyDict::new(py);
        kw.set_item("loop", lp)?;
        return future_type.call((), Some(&kw));
    }
    let args = [lp.as_ptr()];
    // SAFETY: GIL held; `args` holds one borrowed, live object (the loop)
    // passed as the keyword argument named by the 1-tuple `kwnames`, with
    // zero positional arguments; the call returns a new reference or NULL
    // with an exception set.
    unsafe {
        let r = ffi::PyObject_Vectorcall(future_type.as_ptr(), args.as_ptr(), 0, kwnames.as_ptr());
        Bound::from_owned_ptr_or_err(py, r)
    }
}
