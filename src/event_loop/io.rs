//! `add_reader`/`add_writer`/`remove_*` with selector-loop semantics:
//! adding replaces (and cancels) the previous handle for that fd and side;
//! removing returns whether a handle was removed; a closed loop refuses to
//! add and reports "nothing removed".

use std::os::fd::RawFd;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyTuple};

use super::Loop;
use crate::handles::{self, HandleCore, HandleRef};
use crate::pyhelpers;
use crate::reactor::Side;

/// `selectors._fileobj_to_fd`: an int, or an object with `fileno()`.
pub(super) fn fileobj_to_fd(obj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    let fd: i64 = if obj.is_instance_of::<PyInt>() {
        obj.extract()?
    } else {
        let invalid = || PyValueError::new_err(format!("Invalid file object: {}", repr(obj)));
        let r = obj.call_method0("fileno").map_err(|e| {
            let py = obj.py();
            if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py)
                || e.is_instance_of::<pyo3::exceptions::PyTypeError>(py)
                || e.is_instance_of::<PyValueError>(py)
            {
                invalid()
            } else {
                e
            }
        })?;
        // int(fileobj.fileno())
        let as_int = obj
            .py()
            .get_type::<PyInt>()
            .call1((r,))
            .map_err(|_| invalid())?;
        as_int.extract()?
    };
    if fd < 0 {
        return Err(PyValueError::new_err(format!(
            "Invalid file descriptor: {fd}"
        )));
    }
    RawFd::try_from(fd)
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("file descriptor out of range"))
}

/// `fileobj_to_fd` for `remove_reader`/`remove_writer`: an fd too large
/// for the platform cannot be registered, so it is `None` (nothing to
/// remove: asyncio's selector lookup answers False) instead of an error.
pub(super) fn fd_to_remove(obj: &Bound<'_, PyAny>) -> PyResult<Option<RawFd>> {
    match fileobj_to_fd(obj) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) => Ok(None),
        Err(e) => Err(e),
    }
}

fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<object>".to_string())
}

/// A persistent reader/writer handle for `callback(*args)`, capturing the
/// current context (and, in debug mode, the creation stack).
/// With `native`, the loop calls it instead of `callback`
/// (`HandleCore::with_native`).
pub(super) fn new_watcher(
    lp: &Loop,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    native: Option<handles::NativeFn>,
) -> PyResult<HandleRef> {
    lp.check_closed()?;
    let py = callback.py();
    let ctx = pyhelpers::copy_context_for_handle(py, false)?;
    let tb = if lp.is_debug() {
        Some(pyhelpers::extract_stack(py)?)
    } else {
        None
    };
    let core = HandleCore::new(
        callback.clone().unbind(),
        args.clone().unbind(),
        ctx,
        true,
        tb,
    );
    handles::new_handle(
        py,
        match native {
            Some(f) => core.with_native(f),
            None => core,
        },
    )
}

/// Cancels the watcher a new one replaced.
pub(super) fn retire(py: Python<'_>, old: Option<HandleRef>) {
    if let Some(old) = old {
        old.core().cancel(py);
        old.release_ref(py);
    }
}

/// Watches `fd` for `side` with a new watcher (see [`new_watcher`]),
/// cancelling the one it replaces.
pub(super) fn add(
    lp: &Loop,
    fd: RawFd,
    side: Side,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    native: Option<handles::NativeFn>,
) -> PyResult<HandleRef> {
    let py = callback.py();
    let handle = new_watcher(lp, callback, args, native)?;
    retire(py, lp.reactor.set(py, fd, side, handle.clone_ref(py))?);
    Ok(handle)
}

/// `add_reader`/`add_writer` of a file object: as [`add`], and a non-int
/// object is remembered for [`remove_obj`]'s identity lookup.
pub(super) fn add_obj(
    lp: &Loop,
    obj: &Bound<'_, PyAny>,
    side: Side,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<HandleRef> {
    let py = obj.py();
    let fd = fileobj_to_fd(obj)?;
    let prev = lp.reactor.take_fileobj(py, fd);
    let handle = match add(lp, fd, side, callback, args, None) {
        Ok(h) => h,
        Err(e) => {
            drop(lp.reactor.remember_fileobj(py, fd, prev));
            return Err(e);
        }
    };
    // asyncio's key keeps the object of the first registration while the
    // key lives; a recorded object that is closed (or now names another
    // fd) is stale: the fd number was reused without a remove. `obj` itself
    // just answered `fd` (the common re-add of one socket: no call).
    let keep = match prev {
        Some(p) if p.is(obj) || still_on(p.bind(py), fd) => Some(p),
        _ if !obj.is_instance_of::<PyInt>() => Some(obj.clone().unbind()),
        _ => None,
    };
    // The replaced object is dropped after the table borrow: freeing it may
    // run Python code.
    drop(lp.reactor.remember_fileobj(py, fd, keep));
    Ok(handle)
}

/// Whether `obj.fileno()` still answers `fd`.
fn still_on(obj: &Bound<'_, PyAny>, fd: RawFd) -> bool {
    obj.call_method0("fileno")
        .and_then(|n| n.extract::<i64>())
        .is_ok_and(|n| n == i64::from(fd))
}

/// `remove_reader`/`remove_writer` of a file object, as asyncio's
/// `_remove_reader`: a closed loop removes nothing; an object whose
/// `fileno()` no longer works (a closed socket answers -1) is looked up by
/// identity among the registered objects, and only if it is not there does
/// the ValueError propagate (`selectors._BaseSelectorImpl._fileobj_lookup`).
pub(super) fn remove_obj(lp: &Loop, obj: &Bound<'_, PyAny>, side: Side) -> PyResult<bool> {
    let py = obj.py();
    if lp.is_closed() {
        return Ok(false);
    }
    let fd = match fd_to_remove(obj) {
        Ok(fd) => fd,
        Err(e) if e.is_instance_of::<PyValueError>(py) && !obj.is_instance_of::<PyInt>() => {
            match lp.reactor.fd_of_fileobj(py, obj) {
                Some(fd) => Some(fd),
                None => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    Ok(fd.is_some_and(|fd| remove(py, lp, fd, side)))
}

pub(super) fn remove(py: Python<'_>, lp: &Loop, fd: RawFd, side: Side) -> bool {
    if lp.is_closed() {
        return false;
    }
    match lp.reactor.remove(py, fd, side) {
        Some(h) => {
            h.core().cancel(py);
            true
        }
        None => false,
    }
}
