//! `create_task` without a task factory, natively.
//!
//! asyncio's `create_task` is a Python function; its factory-less branch is
//! `tasks.Task(coro, loop=self, name=name, context=context)` plus, in debug
//! mode, dropping its own (Python) frame from the task's
//! `_source_traceback`, a frame a native call does not have. That branch is
//! identical on 3.11-3.13, so it runs here; everything else (a
//! task factory, other keywords, other Python versions) calls asyncio's own
//! `BaseEventLoop.create_task`, so per-version behaviour (3.11's
//! `_set_task_name`, 3.13's `set_name`, 3.14's factory kwargs) is exact.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use super::Loop;

static TASKS_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
static ASYNCIO_CREATE_TASK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The fast path applies where asyncio's factory-less branch is the one
/// described above.
fn fast_path_version(py: Python<'_>) -> bool {
    let v = py.version_info();
    (v.major, v.minor) >= (3, 11) && (v.major, v.minor) < (3, 14)
}

pub(super) fn create_task(
    slf: &Bound<'_, Loop>,
    coro: &Bound<'_, PyAny>,
    name: Option<&Bound<'_, PyAny>>,
    context: Option<&Bound<'_, PyAny>>,
    extra: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let py = slf.py();
    let lp = slf.get();
    let has_factory = lp.task_factory.lock().is_some();
    if has_factory || extra.is_some() || !fast_path_version(py) {
        let f = ASYNCIO_CREATE_TASK.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            Ok(py
                .import("asyncio.base_events")?
                .getattr("BaseEventLoop")?
                .getattr("create_task")?
                .unbind())
        })?;
        // Only what the caller gave: 3.10's create_task has no `context`
        // (passing it raises TypeError there, as on asyncio's own loop).
        let kwargs = match extra {
            Some(e) => e.copy()?,
            None => PyDict::new(py),
        };
        if let Some(n) = name {
            kwargs.set_item("name", n)?;
        }
        if let Some(c) = context {
            kwargs.set_item("context", c)?;
        }
        return Ok(f.bind(py).call((slf, coro), Some(&kwargs))?.unbind());
    }
    lp.check_closed()?;
    let tasks = TASKS_MODULE.get_or_try_init(py, || -> PyResult<Py<PyModule>> {
        Ok(py.import("asyncio.tasks")?.unbind())
    })?;
    // Looked up per call, as asyncio's `tasks.Task(...)` does (tests and
    // libraries replace it).
    let task_type = tasks.bind(py).getattr(pyo3::intern!(py, "Task"))?;
    let kwargs = PyDict::new(py);
    kwargs.set_item(pyo3::intern!(py, "loop"), slf)?;
    if let Some(n) = name {
        kwargs.set_item(pyo3::intern!(py, "name"), n)?;
    }
    if let Some(c) = context {
        kwargs.set_item(pyo3::intern!(py, "context"), c)?;
    }
    // asyncio then drops the last `_source_traceback` entry: its own
    // create_task frame. Called natively there is no such frame (the last
    // entry is the caller's), so nothing is dropped.
    let task = task_type.call((coro,), Some(&kwargs))?;
    Ok(task.unbind())
}
