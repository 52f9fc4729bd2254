//! `ferrio.sync.RLock`: `threading.RLock`'s API (owner, recursion count,
//! `_is_owned`/`_release_save`/`_acquire_restore` for `Condition`) on a
//! one-permit `Permits` core, plus an async face.
//!
//! Owners: a thread is `threading.get_ident()`; a task that acquired with
//! `acquire_async`/`async with` is `TASK | id(task)` (re-entrant per task,
//! as a coroutine's "thread of control" is its task). Sync methods called
//! inside that task (`release()`, `_is_owned()`) accept the task as owner.
//! A thread compares `owner` only with its own key: it can read its own key
//! back only if it wrote it itself, so Relaxed loads suffice; `count` is
//! touched only by the owner.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use pyo3::exceptions::{PyOverflowError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::args::{self, Wait};
use super::permits::Permits;
use super::waiter::{self, Ready};

/// Marks a task key (object addresses never use the top bit on Linux).
const TASK: u64 = 1 << 63;

static CURRENT_TASK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn thread_key() -> u64 {
    // SAFETY: pthread_self has no preconditions; it is what
    // threading.get_ident() returns.
    unsafe { libc::pthread_self() as u64 }
}

/// The running task's key, or None outside a task.
fn task_key(py: Python<'_>) -> PyResult<Option<u64>> {
    let get = CURRENT_TASK.import(py, "asyncio", "current_task")?;
    let task = match get.call0() {
        Ok(t) => t,
        Err(_) => return Ok(None), // no running loop
    };
    if task.is_none() {
        return Ok(None);
    }
    Ok(Some(TASK | task.as_ptr() as u64))
}

#[pyclass(module = "ferrio.sync", name = "RLock", frozen, weakref)]
pub struct RLock {
    pub(crate) core: Permits,
    owner: AtomicU64,
    count: AtomicUsize,
}

impl RLock {
    pub(crate) fn new_unlocked() -> Self {
        Self {
            core: Permits::new(1, 1),
            owner: AtomicU64::new(0),
            count: AtomicUsize::new(0),
        }
    }

    /// Whether the caller (this thread, or the running task if a task owns
    /// the lock) is the owner; the owner key if so.
    pub(crate) fn caller_owns(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        // Relaxed: see the module doc.
        let owner = self.owner.load(Ordering::Relaxed);
        if owner == 0 {
            return Ok(None);
        }
        if owner == thread_key() {
            return Ok(Some(owner));
        }
        if owner & TASK != 0 && task_key(py)? == Some(owner) {
            return Ok(Some(owner));
        }
        Ok(None)
    }

    fn take(&self, key: u64, count: usize) {
        // Relaxed: see the module doc; the permit's Acquire orders them.
        self.owner.store(key, Ordering::Relaxed);
        self.count.store(count, Ordering::Relaxed);
    }

    fn reenter(&self) -> PyResult<bool> {
        // Relaxed: only the owner touches count.
        let c = self.count.load(Ordering::Relaxed);
        let Some(c) = c.checked_add(1) else {
            return Err(PyOverflowError::new_err("Internal lock count overflowed"));
        };
        self.count.store(c, Ordering::Relaxed);
        Ok(true)
    }

    pub(crate) fn acquire_with(slf: &Bound<'_, Self>, wait: Wait) -> PyResult<bool> {
        let me = slf.get();
        let key = thread_key();
        // Relaxed: see the module doc.
        let owner = me.owner.load(Ordering::Relaxed);
        if owner == key || (owner & TASK != 0 && me.caller_owns(slf.py())?.is_some()) {
            return me.reenter();
        }
        let got = me.core.acquire(slf.as_any(), wait)?;
        if got {
            me.take(key, 1);
        }
        Ok(got)
    }

    fn give_back(slf: &Bound<'_, Self>) {
        // Only the holder gives back: the permit is taken, so no overflow.
        let _ = slf.get().core.release_and_wake(slf.as_any(), 1);
    }

    pub(crate) fn release_inner(slf: &Bound<'_, Self>) -> PyResult<()> {
        let me = slf.get();
        if me.caller_owns(slf.py())?.is_none() {
            return Err(PyRuntimeError::new_err("cannot release un-acquired lock"));
        }
        // Relaxed: only the owner touches count.
        let c = me.count.load(Ordering::Relaxed) - 1;
        me.count.store(c, Ordering::Relaxed);
        if c == 0 {
            me.owner.store(0, Ordering::Relaxed);
            Self::give_back(slf);
        }
        Ok(())
    }

    /// `(count, owner)` and fully released (Condition.wait).
    pub(crate) fn release_save_inner(slf: &Bound<'_, Self>) -> PyResult<(usize, u64)> {
        let me = slf.get();
        // Relaxed: only the owner calls this (threading checks the count
        // alone, and so do we).
        let count = me.count.load(Ordering::Relaxed);
        if count == 0 {
            return Err(PyRuntimeError::new_err("cannot release un-acquired lock"));
        }
        let owner = me.owner.load(Ordering::Relaxed);
        me.take(0, 0);
        Self::give_back(slf);
        Ok((count, owner))
    }

    pub(crate) fn acquire_restore_inner(
        slf: &Bound<'_, Self>,
        count: usize,
        owner: u64,
    ) -> PyResult<()> {
        let me = slf.get();
        if !me.core.try_acquire() {
            // Blocks until acquired; a signal handler's error propagates.
            while !me.core.acquire_blocking(slf.py(), slf.as_any(), None)? {}
        }
        me.take(owner, count);
        Ok(())
    }

    /// The async acquire for key `key` with recursion count `count`
    /// (`value` is the awaited result).
    pub(crate) fn acquire_async_with(
        slf: &Bound<'_, Self>,
        key: u64,
        count: usize,
        value: Py<PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let me = slf.get();
        // Relaxed: see the module doc.
        if me.owner.load(Ordering::Relaxed) == key {
            me.reenter()?;
            return waiter::ready(slf.py(), value);
        }
        me.core
            .acquire_async(slf.as_any(), value, key, || me.take(key, count))
    }

    pub(crate) fn running_task_key(py: Python<'_>) -> PyResult<u64> {
        task_key(py)?.ok_or_else(|| {
            PyRuntimeError::new_err("RLock's async face needs a running asyncio task")
        })
    }
}

#[pymethods]
impl RLock {
    #[new]
    fn new() -> Self {
        Self::new_unlocked()
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

    fn _is_owned(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.caller_owns(py)?.is_some())
    }

    fn _recursion_count(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(match self.caller_owns(py)? {
            // Relaxed: only the owner touches count.
            Some(_) => self.count.load(Ordering::Relaxed),
            None => 0,
        })
    }

    fn _release_save(slf: &Bound<'_, Self>) -> PyResult<(usize, u64)> {
        Self::release_save_inner(slf)
    }

    fn _acquire_restore(slf: &Bound<'_, Self>, state: (usize, u64)) -> PyResult<()> {
        Self::acquire_restore_inner(slf, state.0, state.1)
    }

    /// `await rlock.acquire_async()` -> True; re-entrant per task.
    fn acquire_async(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let key = Self::running_task_key(slf.py())?;
        Self::acquire_async_with(slf, key, 1, waiter::py_true(slf.py()))
    }

    fn __aenter__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let key = Self::running_task_key(slf.py())?;
        Self::acquire_async_with(slf, key, 1, slf.py().None())
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

    /// Loop callback: a coroutine waiter was handed the lock; it becomes
    /// the owner (`tag`) with recursion count `value` (True/None: 1), or
    /// the lock is released again if the waiter is gone.
    fn _settle(
        slf: &Bound<'_, Self>,
        fut: Option<&Bound<'_, PyAny>>,
        value: &Bound<'_, PyAny>,
        tag: u64,
    ) -> PyResult<()> {
        if let Some(f) = fut {
            if !waiter::future_done(f)? {
                let count = value.extract::<usize>().unwrap_or(1).max(1);
                slf.get().take(tag, count);
            }
        }
        waiter::settle(fut, value, || {
            // Relaxed: see the module doc. A grant taken back from a
            // cancelled task may already have made it the owner.
            if slf.get().owner.load(Ordering::Relaxed) == tag {
                slf.get().take(0, 0);
            }
            Self::give_back(slf);
            Ok(())
        })
    }

    fn _forget(&self, fut: &Bound<'_, PyAny>) {
        drop(self.core.forget(fut));
    }

    fn _at_fork_reinit(&self) {
        self.core.reinit(1);
        self.take(0, 0);
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let me = slf.get();
        let state = if me.locked() { "locked" } else { "unlocked" };
        // Relaxed: a snapshot for display.
        let owner = me.owner.load(Ordering::Relaxed);
        let count = me.count.load(Ordering::Relaxed);
        format!(
            "<{state} ferrio.sync.RLock object owner={owner} count={count} at {:p}>",
            slf.as_ptr()
        )
    }
}
