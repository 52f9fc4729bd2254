//! `ferrio.sync.RWLock`: a readers-writer lock for threads and coroutines.
//!
//! Many readers or one writer. Writer-preferring by default: once a writer
//! waits, new readers queue behind it, so a stream of readers cannot starve
//! writers. `RWLock(prefer_writers=False)` is reader-preferring: readers
//! enter whenever no writer holds the lock (writers can starve; higher read
//! throughput).
//!
//! Unlike `Permits`, every contended acquisition is a direct handoff: a
//! release runs `dispatch` under the mutex, which grants the next writer or
//! the batch of readers by the preference rule, and nobody can barge in
//! front of a queued writer (that is what "writers never starve" needs).
//! The uncontended paths are a few instructions under the mutex. Readers and
//! writers wait in separate FIFO queues. Not re-entrant, no owner (like
//! `threading.Lock`): any thread may release.

use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use super::args::{self, Wait};
use super::waiter::{self, Queue, Waiter, GRANTED};

const READ: u64 = 0;
const WRITE: u64 = 1;

struct St {
    readers: usize,
    writer: bool,
    readers_q: Queue,
    writers_q: Queue,
}

#[pyclass(module = "ferrio.sync", name = "RWLock", frozen, weakref)]
pub struct RWLock {
    prefer_writers: bool,
    st: Mutex<St>,
}

impl RWLock {
    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock()
    }

    /// Whether `mode` may enter now (nobody queued ahead by the rules).
    fn try_enter(&self, st: &mut St, mode: u64) -> bool {
        let ok = if mode == WRITE {
            !st.writer && st.readers == 0 && st.writers_q.is_empty()
        } else {
            !st.writer && (!self.prefer_writers || st.writers_q.is_empty())
        };
        if ok {
            if mode == WRITE {
                st.writer = true;
            } else {
                st.readers += 1;
            }
        }
        ok
    }

    /// Under the mutex, after a release or a departure: grants whoever may
    /// enter now by the preference rule.
    fn dispatch(&self, st: &mut St) -> Vec<Arc<Waiter>> {
        let mut woken = Vec::new();
        if st.writer {
            return woken;
        }
        let grant_writer = |st: &mut St, woken: &mut Vec<Arc<Waiter>>| {
            if st.readers == 0 {
                if let Some(w) = st.writers_q.pop_front() {
                    st.writer = true;
                    w.mark(GRANTED);
                    woken.push(w);
                }
            }
        };
        if self.prefer_writers {
            grant_writer(st, &mut woken);
            if !st.writer && st.writers_q.is_empty() {
                st.readers += st.readers_q.len();
                woken.extend(st.readers_q.drain(..).inspect(|w| w.mark(GRANTED)));
            }
        } else {
            st.readers += st.readers_q.len();
            woken.extend(st.readers_q.drain(..).inspect(|w| w.mark(GRANTED)));
            grant_writer(st, &mut woken);
        }
        woken
    }

    fn queue(st: &mut St, mode: u64) -> &mut Queue {
        if mode == WRITE {
            &mut st.writers_q
        } else {
            &mut st.readers_q
        }
    }

    fn acquire(slf: &Bound<'_, Self>, mode: u64, wait: Wait) -> PyResult<bool> {
        let me = slf.get();
        let w = {
            let mut st = me.lock();
            if me.try_enter(&mut st, mode) {
                return Ok(true);
            }
            let Wait::Until(deadline) = wait else {
                return Ok(false);
            };
            let w = Waiter::thread();
            Self::queue(&mut st, mode).push_back(w.clone());
            (w, deadline)
        };
        let (w, deadline) = w;
        let r = waiter::block(slf.py(), &w, deadline);
        if let Ok(Some(_)) = r {
            return Ok(true);
        }
        // Gave up: keep a grant that raced with it, else leave the queue.
        let mut st = me.lock();
        if w.state() == GRANTED {
            drop(st);
            if r.is_err() {
                let _ = Self::release(slf, mode);
            }
            return r.map(|_| true);
        }
        waiter::remove(Self::queue(&mut st, mode), &w);
        let woken = me.dispatch(&mut st);
        drop(st);
        waiter::wake(slf.py(), slf.as_any(), woken);
        r.map(|_| false)
    }

    fn release(slf: &Bound<'_, Self>, mode: u64) -> PyResult<()> {
        let me = slf.get();
        let mut st = me.lock();
        if mode == WRITE {
            if !st.writer {
                return Err(PyRuntimeError::new_err("release unlocked lock"));
            }
            st.writer = false;
        } else {
            if st.readers == 0 {
                return Err(PyRuntimeError::new_err("release unlocked lock"));
            }
            st.readers -= 1;
        }
        let woken = me.dispatch(&mut st);
        drop(st);
        waiter::wake(slf.py(), slf.as_any(), woken);
        Ok(())
    }

    fn acquire_async(slf: &Bound<'_, Self>, mode: u64, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let me = slf.get();
        if me.try_enter(&mut me.lock(), mode) {
            return waiter::ready(py, value);
        }
        let (w, fut) = waiter::async_waiter(py, value.clone_ref(py), mode)?;
        {
            let mut st = me.lock();
            if me.try_enter(&mut st, mode) {
                drop(st);
                return waiter::ready(py, value);
            }
            Self::queue(&mut st, mode).push_back(w);
        }
        waiter::track_grant(slf.as_any(), fut, value, mode)
    }
}

#[pymethods]
impl RWLock {
    #[new]
    #[pyo3(signature = (*, prefer_writers = true))]
    fn new(prefer_writers: bool) -> Self {
        Self {
            prefer_writers,
            st: Mutex::new(St {
                readers: 0,
                writer: false,
                readers_q: Queue::new(),
                writers_q: Queue::new(),
            }),
        }
    }

    /// Shared acquire; `threading.Lock.acquire`'s arguments and rules.
    #[pyo3(signature = (blocking = args::Given::Missing, timeout = args::Given::Missing), text_signature = "($self, blocking=True, timeout=-1)")]
    fn acquire_read(
        slf: &Bound<'_, Self>,
        blocking: args::Given<'_>,
        timeout: args::Given<'_>,
    ) -> PyResult<bool> {
        let wait = args::lock_acquire(slf.py(), &blocking, &timeout)?;
        Self::acquire(slf, READ, wait)
    }

    /// Exclusive acquire; `threading.Lock.acquire`'s arguments and rules.
    #[pyo3(signature = (blocking = args::Given::Missing, timeout = args::Given::Missing), text_signature = "($self, blocking=True, timeout=-1)")]
    fn acquire_write(
        slf: &Bound<'_, Self>,
        blocking: args::Given<'_>,
        timeout: args::Given<'_>,
    ) -> PyResult<bool> {
        let wait = args::lock_acquire(slf.py(), &blocking, &timeout)?;
        Self::acquire(slf, WRITE, wait)
    }

    fn release_read(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::release(slf, READ)
    }

    fn release_write(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::release(slf, WRITE)
    }

    /// `await rw.acquire_read_async()` -> True.
    fn acquire_read_async(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::acquire_async(slf, READ, waiter::py_true(slf.py()))
    }

    /// `await rw.acquire_write_async()` -> True.
    fn acquire_write_async(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::acquire_async(slf, WRITE, waiter::py_true(slf.py()))
    }

    /// `with rw.read():` / `async with rw.read():` (shared).
    fn read(slf: &Bound<'_, Self>) -> RWLockGuard {
        RWLockGuard {
            lock: slf.clone().unbind(),
            mode: READ,
        }
    }

    /// `with rw.write():` / `async with rw.write():` (exclusive).
    fn write(slf: &Bound<'_, Self>) -> RWLockGuard {
        RWLockGuard {
            lock: slf.clone().unbind(),
            mode: WRITE,
        }
    }

    /// Loop callback: completes a coroutine waiter that was granted the
    /// lock (`tag`: 0 read, 1 write), or releases it if the waiter is gone.
    fn _settle(
        slf: &Bound<'_, Self>,
        fut: Option<&Bound<'_, PyAny>>,
        value: &Bound<'_, PyAny>,
        tag: u64,
    ) -> PyResult<()> {
        waiter::settle(fut, value, || Self::release(slf, tag))
    }

    fn _forget(slf: &Bound<'_, Self>, fut: &Bound<'_, PyAny>) {
        let me = slf.get();
        let mut st = me.lock();
        let a = waiter::remove_future(&mut st.readers_q, fut);
        let b = waiter::remove_future(&mut st.writers_q, fut);
        // A writer that left may unblock the readers queued behind it.
        let woken = if b.is_some() {
            me.dispatch(&mut st)
        } else {
            Vec::new()
        };
        drop(st);
        drop((a, b));
        waiter::wake(slf.py(), slf.as_any(), woken);
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let me = slf.get();
        let st = me.lock();
        let state = if st.writer {
            "write-locked".to_string()
        } else if st.readers > 0 {
            format!("read-locked by {}", st.readers)
        } else {
            "unlocked".to_string()
        };
        let (r, w) = (st.readers_q.len(), st.writers_q.len());
        drop(st);
        format!(
            "<ferrio.sync.RWLock at {:p}: {state}, waiting readers={r} writers={w}>",
            slf.as_ptr()
        )
    }
}

/// The context manager `RWLock.read()` / `.write()` returns.
#[pyclass(module = "ferrio.sync", name = "RWLockGuard", frozen)]
pub struct RWLockGuard {
    lock: Py<RWLock>,
    mode: u64,
}

#[pymethods]
impl RWLockGuard {
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        RWLock::acquire(self.lock.bind(py), self.mode, Wait::Until(None))
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        RWLock::release(self.lock.bind(py), self.mode)
    }

    fn __aenter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        RWLock::acquire_async(self.lock.bind(py), self.mode, py.None())
    }

    #[pyo3(signature = (*_args))]
    fn __aexit__(
        &self,
        py: Python<'_>,
        _args: &Bound<'_, pyo3::types::PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        RWLock::release(self.lock.bind(py), self.mode)?;
        waiter::ready(py, py.None())
    }
}
