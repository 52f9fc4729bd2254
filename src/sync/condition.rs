//! `ferrio.sync.Condition`: `threading.Condition`'s API over any lock
//! (default: a ferrio `RLock`), with native paths for ferrio's `Lock` and
//! `RLock` and `threading`'s duck-typed protocol (`_release_save`,
//! `_acquire_restore`, `_is_owned` when the lock has them, else
//! `release`/`acquire`) for anything else. Async face: `async with cond:`,
//! `await cond.wait_async()`, `await cond.wait_for_async(pred)` (ferrio
//! locks only).
//!
//! Waiters queue on the condition before the lock is released (so a
//! `notify` between the release and the sleep is not lost); `notify(n)`
//! marks up to `n` of them GRANTED. A waiter that gives up (timeout,
//! Ctrl-C) checks under the queue's mutex whether it was notified first.
//! A coroutine notified after its task was cancelled passes the
//! notification to the next waiter (asyncio 3.12's rule), so none is lost.

use std::time::Instant;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

use super::args::{self, Wait};
use super::lock::Lock;
use super::rlock::RLock;
use super::waiter::{self, Queue, Waiter, GRANTED};

static COND_WAIT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static COND_WAIT_FOR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
const HELPERS: &str = "ferrio._synchelpers";

enum Inner {
    Lock(Py<Lock>),
    RLock(Py<RLock>),
    Other(Py<PyAny>),
}

/// What `_release_save` returned, for `_acquire_restore`.
enum Saved {
    Lock,
    RLock(usize, u64),
    /// A duck-typed lock: its `_release_save()` result, or None if it was
    /// released with `release()`.
    Other(Option<Py<PyAny>>),
}

#[pyclass(module = "ferrio.sync", name = "Condition", frozen, weakref)]
pub struct Condition {
    inner: Inner,
    q: Mutex<Queue>,
}

impl Condition {
    fn lock<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match &self.inner {
            Inner::Lock(l) => l.bind(py).clone().into_any(),
            Inner::RLock(l) => l.bind(py).clone().into_any(),
            Inner::Other(l) => l.bind(py).clone(),
        }
    }

    fn is_owned(&self, py: Python<'_>) -> PyResult<bool> {
        match &self.inner {
            Inner::Lock(l) => {
                let l = l.bind(py);
                if l.get().core.try_acquire() {
                    Lock::release_inner(l)?;
                    Ok(false)
                } else {
                    Ok(true)
                }
            }
            Inner::RLock(l) => Ok(l.get().caller_owns(py)?.is_some()),
            Inner::Other(l) => {
                let l = l.bind(py);
                if let Ok(f) = l.getattr(pyo3::intern!(py, "_is_owned")) {
                    return f.call0()?.is_truthy();
                }
                // threading.Condition's fallback for plain locks.
                if l.call_method1(pyo3::intern!(py, "acquire"), (false,))?
                    .is_truthy()?
                {
                    l.call_method0(pyo3::intern!(py, "release"))?;
                    Ok(false)
                } else {
                    Ok(true)
                }
            }
        }
    }

    fn release_save(&self, py: Python<'_>) -> PyResult<Saved> {
        match &self.inner {
            Inner::Lock(l) => {
                Lock::release_inner(l.bind(py))?;
                Ok(Saved::Lock)
            }
            Inner::RLock(l) => {
                let (c, o) = RLock::release_save_inner(l.bind(py))?;
                Ok(Saved::RLock(c, o))
            }
            Inner::Other(l) => {
                let l = l.bind(py);
                if let Ok(f) = l.getattr(pyo3::intern!(py, "_release_save")) {
                    return Ok(Saved::Other(Some(f.call0()?.unbind())));
                }
                l.call_method0(pyo3::intern!(py, "release"))?;
                Ok(Saved::Other(None))
            }
        }
    }

    fn acquire_restore(&self, py: Python<'_>, saved: Saved) -> PyResult<()> {
        match (&self.inner, saved) {
            (Inner::Lock(l), _) => {
                while !Lock::acquire_with(l.bind(py), Wait::Until(None))? {}
                Ok(())
            }
            (Inner::RLock(l), Saved::RLock(c, o)) => RLock::acquire_restore_inner(l.bind(py), c, o),
            (Inner::RLock(l), _) => RLock::acquire_restore_inner(l.bind(py), 1, 0),
            (Inner::Other(l), Saved::Other(Some(state))) => {
                l.bind(py)
                    .call_method1(pyo3::intern!(py, "_acquire_restore"), (state,))?;
                Ok(())
            }
            (Inner::Other(l), _) => {
                l.bind(py).call_method0(pyo3::intern!(py, "acquire"))?;
                Ok(())
            }
        }
    }

    /// Marks up to `n` waiters notified and wakes them.
    fn notify_n(slf: &Bound<'_, Self>, n: usize) {
        let woken: Vec<_> = {
            let mut q = slf.get().q.lock();
            let k = n.min(q.len());
            q.drain(..k).inspect(|w| w.mark(GRANTED)).collect()
        };
        if !woken.is_empty() {
            waiter::wake(slf.py(), slf.as_any(), woken);
        }
    }

    /// RuntimeError(`msg`) unless this thread holds the lock.
    fn check_owned(slf: &Bound<'_, Self>, msg: &'static str) -> PyResult<()> {
        if slf.get().is_owned(slf.py())? {
            Ok(())
        } else {
            Err(PyRuntimeError::new_err(msg))
        }
    }

    fn wait_until(slf: &Bound<'_, Self>, wait: Wait) -> PyResult<bool> {
        let py = slf.py();
        let me = slf.get();
        if !me.is_owned(py)? {
            return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
        }
        let w = Waiter::thread();
        me.q.lock().push_back(w.clone());
        let saved = match me.release_save(py) {
            Ok(s) => s,
            Err(e) => {
                waiter::remove(&mut me.q.lock(), &w);
                return Err(e);
            }
        };
        let r = match wait {
            Wait::Try => Ok(None),
            Wait::Until(d) => waiter::block(py, &w, d),
        };
        let notified = match r {
            Ok(Some(_)) => true,
            _ => {
                let mut q = me.q.lock();
                let got = w.state() == GRANTED;
                if !got {
                    waiter::remove(&mut q, &w);
                }
                got
            }
        };
        if notified && r.is_err() {
            // Interrupted after being notified: pass it on.
            Self::notify_n(slf, 1);
        }
        me.acquire_restore(py, saved)?;
        r.map(|_| notified)
    }
}

#[pymethods]
impl Condition {
    #[new]
    #[pyo3(signature = (lock = None))]
    fn new(py: Python<'_>, lock: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let inner = match lock {
            None => Inner::RLock(Py::new(py, RLock::new_unlocked())?),
            Some(l) if l.is_none() => Inner::RLock(Py::new(py, RLock::new_unlocked())?),
            Some(l) => {
                if let Ok(x) = l.cast_exact::<Lock>() {
                    Inner::Lock(x.clone().unbind())
                } else if let Ok(x) = l.cast_exact::<RLock>() {
                    Inner::RLock(x.clone().unbind())
                } else {
                    // threading.Condition binds lock.acquire/lock.release
                    // at construction: a lock without them fails here.
                    l.getattr(pyo3::intern!(py, "acquire"))?;
                    l.getattr(pyo3::intern!(py, "release"))?;
                    Inner::Other(l.clone().unbind())
                }
            }
        };
        Ok(Self {
            inner,
            q: Mutex::new(Queue::new()),
        })
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn acquire<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lock(py)
            .call_method(pyo3::intern!(py, "acquire"), args, kwargs)
    }

    fn release<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.lock(py).call_method0(pyo3::intern!(py, "release"))
    }

    fn __enter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.inner {
            Inner::Lock(l) => Ok(pyo3::types::PyBool::new(
                py,
                Lock::acquire_with(l.bind(py), Wait::Until(None))?,
            )
            .to_owned()
            .into_any()),
            Inner::RLock(l) => Ok(pyo3::types::PyBool::new(
                py,
                RLock::acquire_with(l.bind(py), Wait::Until(None))?,
            )
            .to_owned()
            .into_any()),
            Inner::Other(l) => l.bind(py).call_method0(pyo3::intern!(py, "__enter__")),
        }
    }

    #[pyo3(signature = (*args))]
    fn __exit__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match &self.inner {
            Inner::Lock(l) => Lock::release_inner(l.bind(py)).map(|_| py.None().into_bound(py)),
            Inner::RLock(l) => RLock::release_inner(l.bind(py)).map(|_| py.None().into_bound(py)),
            Inner::Other(l) => l.bind(py).call_method1(pyo3::intern!(py, "__exit__"), args),
        }
    }

    fn _is_owned(&self, py: Python<'_>) -> PyResult<bool> {
        self.is_owned(py)
    }

    fn _release_save<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.release_save(py)? {
            Saved::Lock | Saved::Other(None) => py.None().into_bound(py),
            Saved::RLock(c, o) => (c, o).into_pyobject(py)?.into_any(),
            Saved::Other(Some(s)) => s.into_bound(py),
        })
    }

    fn _acquire_restore(&self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let saved = match &self.inner {
            Inner::Lock(_) => Saved::Lock,
            Inner::RLock(_) => {
                let (c, o): (usize, u64) = state.extract()?;
                Saved::RLock(c, o)
            }
            Inner::Other(_) if state.is_none() => Saved::Other(None),
            Inner::Other(_) => Saved::Other(Some(state.clone().unbind())),
        };
        self.acquire_restore(py, saved)
    }

    /// Waits until notified or `timeout` seconds passed (lock held on
    /// entry and on return); whether it was notified.
    #[pyo3(signature = (timeout = None))]
    fn wait(slf: &Bound<'_, Self>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        // `threading` checks ownership before it looks at the timeout.
        Self::check_owned(slf, "cannot wait on un-acquired lock")?;
        Self::wait_until(slf, args::cond_wait(slf.py(), timeout)?)
    }

    /// `threading.Condition.wait_for`: waits until `predicate()` is true
    /// or the timeout passed; the predicate's last value.
    #[pyo3(signature = (predicate, timeout = None))]
    fn wait_for<'py>(
        slf: &Bound<'py, Self>,
        predicate: &Bound<'py, PyAny>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut result = predicate.call0()?;
        // threading's loop: the deadline is computed (and the timeout
        // checked) before the first wait, and each later round waits for
        // what is left of it, or stops once it has passed.
        let mut deadline: Option<Option<Instant>> = None;
        while !result.is_truthy()? {
            let wait = match (timeout, deadline) {
                (None, _) => Wait::Until(None),
                (Some(t), None) => {
                    let w = args::timed_wait(slf.py(), Some(t))?;
                    deadline = Some(match w {
                        Wait::Try => Some(Instant::now()),
                        Wait::Until(d) => d,
                    });
                    w
                }
                (Some(_), Some(None)) => Wait::Until(None),
                (Some(_), Some(Some(d))) => {
                    if Instant::now() >= d {
                        break;
                    }
                    Wait::Until(Some(d))
                }
            };
            Self::wait_until(slf, wait)?;
            result = predicate.call0()?;
        }
        Ok(result)
    }

    /// `threading.Condition.notify(n)`: ownership first; `n` is only read
    /// when there are waiters, and as Python's `while waiters and n > 0:
    /// ...; n -= 1` loop reads it (an int fast, anything else by that loop).
    #[pyo3(signature = (n = args::Given::Missing), text_signature = "($self, n=1)")]
    fn notify(slf: &Bound<'_, Self>, n: args::Given<'_>) -> PyResult<()> {
        Self::check_owned(slf, "cannot notify on un-acquired lock")?;
        let count = match n {
            args::Given::Missing => 1,
            args::Given::Value(n) => {
                let waiting = slf.get().q.lock().len();
                if waiting == 0 {
                    return Ok(());
                }
                match n.extract::<i64>() {
                    Ok(k) => usize::try_from(k.max(0)).unwrap_or(usize::MAX),
                    Err(_) => {
                        let mut k = 0;
                        let mut left = n.clone();
                        while k < waiting && left.gt(0)? {
                            k += 1;
                            left = left.sub(1)?;
                        }
                        k
                    }
                }
            }
        };
        if count > 0 {
            Self::notify_n(slf, count);
        }
        Ok(())
    }

    fn notify_all(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::check_owned(slf, "cannot notify on un-acquired lock")?;
        Self::notify_n(slf, usize::MAX);
        Ok(())
    }

    #[pyo3(name = "notifyAll")]
    fn notify_all_alias(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::notify_all(slf)
    }

    fn __aenter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.inner {
            Inner::Lock(l) => Lock::acquire_async_with(l.bind(py), py.None()),
            Inner::RLock(l) => {
                let key = RLock::running_task_key(py)?;
                RLock::acquire_async_with(l.bind(py), key, 1, py.None())
            }
            Inner::Other(l) => Ok(l
                .bind(py)
                .call_method0(pyo3::intern!(py, "__aenter__"))?
                .unbind()),
        }
    }

    #[pyo3(signature = (*args))]
    fn __aexit__(&self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        match &self.inner {
            Inner::Lock(l) => Lock::release_inner(l.bind(py))?,
            Inner::RLock(l) => RLock::release_inner(l.bind(py))?,
            Inner::Other(l) => {
                return Ok(l
                    .bind(py)
                    .call_method1(pyo3::intern!(py, "__aexit__"), args)?
                    .unbind())
            }
        }
        waiter::ready(py, py.None())
    }

    /// `await cond.wait_async()` -> True when notified (the lock, a ferrio
    /// Lock or RLock held via `async with`, is released meanwhile and held
    /// again on return, even on cancellation).
    fn wait_async<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let me = slf.get();
        if let Inner::Other(_) = me.inner {
            return Err(PyTypeError::new_err(
                "Condition.wait_async() needs a ferrio.sync Lock or RLock",
            ));
        }
        if !me.is_owned(py)? {
            return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
        }
        let t = waiter::py_true(py);
        let (w, fut) = waiter::async_waiter(py, t, 0)?;
        me.q.lock().push_back(w.clone());
        let fut = waiter::track(slf.as_any(), fut)?.into_bound(py);
        let saved = match me.release_save(py) {
            Ok(s) => s,
            Err(e) => {
                waiter::remove(&mut me.q.lock(), &w);
                return Err(e);
            }
        };
        let saved = match saved {
            Saved::RLock(c, o) => (c, o).into_pyobject(py)?.into_any(),
            _ => py.None().into_bound(py),
        };
        COND_WAIT
            .import(py, HELPERS, "cond_wait")?
            .call1((slf, fut, saved))
    }

    /// `await cond.wait_for_async(predicate)`: asyncio.Condition.wait_for.
    fn wait_for_async<'py>(
        slf: &Bound<'py, Self>,
        predicate: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        COND_WAIT_FOR
            .import(slf.py(), HELPERS, "cond_wait_for")?
            .call1((slf, predicate))
    }

    /// The async reacquire after `wait_async` (`saved`: None for a Lock,
    /// `(count, owner)` for an RLock).
    fn _reacquire_async(&self, py: Python<'_>, saved: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match &self.inner {
            Inner::Lock(l) => Lock::acquire_async_with(l.bind(py), py.None()),
            Inner::RLock(l) => {
                let (c, o): (usize, u64) = saved.extract()?;
                let v = c.into_pyobject(py)?.into_any().unbind();
                RLock::acquire_async_with(l.bind(py), o, c, v)
            }
            Inner::Other(_) => Err(PyTypeError::new_err(
                "Condition.wait_async() needs a ferrio.sync Lock or RLock",
            )),
        }
    }

    /// Wakes one waiter without the ownership check (a notified coroutine
    /// that could not take its notification).
    fn _pass_on(slf: &Bound<'_, Self>) {
        Self::notify_n(slf, 1);
    }

    #[pyo3(signature = (fut, value, _tag))]
    fn _settle(
        slf: &Bound<'_, Self>,
        fut: Option<&Bound<'_, PyAny>>,
        value: &Bound<'_, PyAny>,
        _tag: u64,
    ) -> PyResult<()> {
        waiter::settle(fut, value, || {
            Self::notify_n(slf, 1);
            Ok(())
        })
    }

    fn _forget(&self, fut: &Bound<'_, PyAny>) {
        waiter::forget(&self.q, fut);
    }

    fn _at_fork_reinit(&self) {
        // Dropped after the mutex: coroutine waiters hold Python objects.
        let gone = std::mem::take(&mut *self.q.lock());
        drop(gone);
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let n = self.q.lock().len();
        Ok(format!("<Condition({}, {n})>", self.lock(py).repr()?))
    }
}
