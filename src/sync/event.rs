//! `ferrio.sync.Event`: `threading.Event`'s API (`set`, `clear`,
//! `is_set`, `wait(timeout)`) plus `await event.wait_async()` from any
//! loop in any thread.
//!
//! The flag is an atomic (`is_set` and a set event's `wait` take no lock);
//! it is written under the waiter queue's mutex so a waiter that checks it
//! under the mutex and queues itself cannot miss a `set`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::prelude::*;

use super::args::{self, Wait};
use super::waiter::{self, Queue, Waiter, GRANTED};

#[pyclass(module = "ferrio.sync", name = "Event", frozen, weakref)]
pub struct Event {
    flag: AtomicBool,
    q: Mutex<Queue>,
}

impl Event {
    fn is_set_now(&self) -> bool {
        // Acquire: pairs with `set`'s Release, so a waiter that sees the
        // flag sees what the setter wrote before setting it.
        self.flag.load(Ordering::Acquire)
    }

    /// Queues `w` unless the flag is set (then `false`).
    fn enqueue(&self, w: &Arc<Waiter>) -> bool {
        let mut q = self.q.lock();
        if self.is_set_now() {
            return false;
        }
        q.push_back(w.clone());
        true
    }
}

#[pymethods]
impl Event {
    #[new]
    fn new() -> Self {
        Self {
            flag: AtomicBool::new(false),
            q: Mutex::new(Queue::new()),
        }
    }

    fn is_set(&self) -> bool {
        self.is_set_now()
    }

    #[pyo3(name = "isSet")]
    fn is_set_alias(&self) -> bool {
        self.is_set_now()
    }

    fn set(slf: &Bound<'_, Self>) {
        let me = slf.get();
        let woken: Vec<_> = {
            let mut q = me.q.lock();
            // Release: see is_set_now.
            me.flag.store(true, Ordering::Release);
            q.drain(..).inspect(|w| w.mark(GRANTED)).collect()
        };
        if !woken.is_empty() {
            waiter::wake(slf.py(), slf.as_any(), woken);
        }
    }

    fn clear(&self) {
        let _q = self.q.lock();
        // Relaxed: ordered by the queue's mutex against waiters.
        self.flag.store(false, Ordering::Relaxed);
    }

    /// Blocks until the flag is set or `timeout` seconds passed; True if
    /// the event was set (even if cleared again since), as `threading`.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        if self.is_set_now() {
            return Ok(true);
        }
        let deadline = match args::cond_wait(py, timeout)? {
            Wait::Try => return Ok(false),
            Wait::Until(d) => d,
        };
        let w = Waiter::thread();
        if !self.enqueue(&w) {
            return Ok(true);
        }
        let r = waiter::block(py, &w, deadline);
        if let Ok(Some(_)) = r {
            return Ok(true);
        }
        let mut q = self.q.lock();
        let set = w.state() == GRANTED;
        if !set {
            waiter::remove(&mut q, &w);
        }
        drop(q);
        r.map(|_| set)
    }

    /// `await event.wait_async()` -> True once the event is set.
    fn wait_async(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let me = slf.get();
        let t = waiter::py_true(py);
        if me.is_set_now() {
            return waiter::ready(py, t);
        }
        let (w, fut) = waiter::async_waiter(py, t.clone_ref(py), 0)?;
        if !me.enqueue(&w) {
            return waiter::ready(py, t);
        }
        waiter::track(slf.as_any(), fut)
    }

    #[pyo3(signature = (fut, value, _tag))]
    fn _settle(
        &self,
        fut: Option<&Bound<'_, PyAny>>,
        value: &Bound<'_, PyAny>,
        _tag: u64,
    ) -> PyResult<()> {
        waiter::settle(fut, value, || Ok(()))
    }

    fn _forget(&self, fut: &Bound<'_, PyAny>) {
        waiter::forget(&self.q, fut);
    }

    fn _at_fork_reinit(&self) {
        // Dropped after the mutex: coroutine waiters hold Python objects.
        let gone = std::mem::take(&mut *self.q.lock());
        drop(gone);
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let state = if slf.get().is_set_now() {
            "set"
        } else {
            "unset"
        };
        format!("<ferrio.sync.Event at {:p}: {state}>", slf.as_ptr())
    }
}
