//! `ferrio.sync.Barrier`: `threading.Barrier`'s API and state machine
//! (filling, draining, resetting, broken; `abort`, `reset`, `action`,
//! default timeout, `BrokenBarrierError`), plus `await b.wait_async()`
//! (asyncio.Barrier's cancellation rule: a cancelled waiter just leaves).
//!
//! The state lives under one mutex; every change that waiters care about
//! wakes all of them and each re-checks (a notify-all monitor, as
//! `threading`'s Condition-based Barrier). The action runs outside the
//! mutex (it is Python) while `acting` holds back new arrivals, as the
//! Condition's lock does in `threading`.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyFloat;

use super::args::{self, Wait};
use super::waiter::{self, Queue, Waiter, GRANTED};

const FILLING: i8 = 0;
const DRAINING: i8 = 1;
const RESETTING: i8 = -1;
const BROKEN: i8 = -2;

static BROKEN_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static WAIT_ASYNC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
const HELPERS: &str = "ferrio._synchelpers";

struct St {
    state: i8,
    count: usize,
    acting: bool,
    q: Queue,
}

impl St {
    /// Marks every waiter; they re-check the state when they run.
    fn notify_all(&mut self) -> Vec<Arc<Waiter>> {
        self.q.drain(..).inspect(|w| w.mark(GRANTED)).collect()
    }

    fn exit(&mut self) -> Vec<Arc<Waiter>> {
        self.count -= 1;
        if self.count == 0 && (self.state == RESETTING || self.state == DRAINING) {
            self.state = FILLING;
            return self.notify_all();
        }
        Vec::new()
    }

    fn brk(&mut self) -> Vec<Arc<Waiter>> {
        self.state = BROKEN;
        self.notify_all()
    }
}

/// Outcome of one look at the state.
enum Step {
    Go(usize),
    Queued,
}

#[pyclass(module = "ferrio.sync", name = "Barrier", frozen, weakref)]
pub struct Barrier {
    parties: usize,
    action: Option<Py<PyAny>>,
    timeout: Option<f64>,
    st: Mutex<St>,
}

fn broken(py: Python<'_>) -> PyErr {
    match BROKEN_ERROR.import(py, HELPERS, "BrokenBarrierError") {
        Ok(cls) => match cls.call0() {
            Ok(e) => PyErr::from_value(e),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

impl Barrier {
    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock()
    }

    /// Entering: wait while draining, resetting or acting; broken raises.
    fn arrive(&self, py: Python<'_>, w: &Arc<Waiter>) -> PyResult<Step> {
        let mut st = self.lock();
        if st.state == DRAINING || st.state == RESETTING || st.acting {
            w.rearm();
            st.q.push_back(w.clone());
            return Ok(Step::Queued);
        }
        if st.state < 0 {
            // Never call Python under the mutex (waiter.rs): raise after.
            drop(st);
            return Err(broken(py));
        }
        let index = st.count;
        st.count += 1;
        if index + 1 == self.parties {
            st.acting = true;
        }
        Ok(Step::Go(index))
    }

    /// The last arrival: runs the action, then lets everyone go.
    fn release_last(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let r = match &me.action {
            Some(a) => a.bind(py).call0().map(drop),
            None => Ok(()),
        };
        let mut st = me.lock();
        st.acting = false;
        let ok = r.is_ok() && st.state == FILLING;
        let woken = if ok {
            st.state = DRAINING;
            st.notify_all()
        } else {
            st.brk()
        };
        drop(st);
        waiter::wake(py, slf.as_any(), woken);
        match r {
            Err(e) => Err(e),
            Ok(()) if ok => Ok(()),
            Ok(()) => Err(broken(py)),
        }
    }

    /// Waiting for the release: `Go(0)` once the state left FILLING.
    fn released(&self, w: &Arc<Waiter>) -> Step {
        let mut st = self.lock();
        if st.state != FILLING {
            return Step::Go(0);
        }
        w.rearm();
        st.q.push_back(w.clone());
        Step::Queued
    }

    /// After the wait: broken/resetting raises; leaves either way.
    fn leave(slf: &Bound<'_, Self>, check: bool) -> PyResult<()> {
        let mut st = slf.get().lock();
        let bad = check && st.state < 0;
        let woken = st.exit();
        drop(st);
        waiter::wake(slf.py(), slf.as_any(), woken);
        if bad {
            Err(broken(slf.py()))
        } else {
            Ok(())
        }
    }

    /// A waiter timed out: unless released meanwhile, break the barrier.
    fn time_out(slf: &Bound<'_, Self>, w: Option<&Arc<Waiter>>) -> bool {
        let mut st = slf.get().lock();
        if let Some(w) = w {
            waiter::remove(&mut st.q, w);
        }
        if st.state != FILLING {
            return false;
        }
        let woken = st.brk();
        drop(st);
        waiter::wake(slf.py(), slf.as_any(), woken);
        true
    }

    fn wake_all(slf: &Bound<'_, Self>, f: impl FnOnce(&mut St)) {
        let mut st = slf.get().lock();
        f(&mut st);
        let woken = st.notify_all();
        drop(st);
        waiter::wake(slf.py(), slf.as_any(), woken);
    }
}

#[pymethods]
impl Barrier {
    #[new]
    #[pyo3(signature = (parties, action = None, timeout = None))]
    fn new(
        py: Python<'_>,
        parties: i64,
        action: Option<Py<PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        if parties < 1 && py.version_info() >= (3, 13) {
            return Err(PyValueError::new_err("parties must be > 0"));
        }
        Ok(Self {
            parties: usize::try_from(parties).unwrap_or(0),
            action: action.filter(|a| !a.is_none(py)),
            timeout,
            st: Mutex::new(St {
                state: FILLING,
                count: 0,
                acting: false,
                q: Queue::new(),
            }),
        })
    }

    /// Waits for all parties; this thread's arrival index.
    #[pyo3(signature = (timeout = None))]
    fn wait(slf: &Bound<'_, Self>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
        let py = slf.py();
        let me = slf.get();
        let timeout = timeout
            .cloned()
            .or_else(|| me.timeout.map(|t| PyFloat::new(py, t).into_any()));
        let w = Waiter::thread();
        let index = loop {
            match me.arrive(py, &w)? {
                Step::Go(i) => break i,
                Step::Queued => {
                    if let Err(e) = waiter::block(py, &w, None) {
                        waiter::remove(&mut me.lock().q, &w);
                        return Err(e);
                    }
                }
            }
        };
        if index + 1 == me.parties {
            let r = Self::release_last(slf);
            let left = Self::leave(slf, false);
            return r.and(left).map(|_| index);
        }
        // As threading's `wait_for`: the timeout is read (and may raise)
        // only once this thread has to wait.
        let mut deadline: Option<Option<Instant>> = None;
        loop {
            if let Step::Go(_) = me.released(&w) {
                break;
            }
            let d = match deadline {
                Some(d) => Ok(d),
                None => args::timed_wait(py, timeout.as_ref()).map(|wait| match wait {
                    Wait::Try => Some(Instant::now()),
                    Wait::Until(d) => d,
                }),
            };
            let r = d.and_then(|d| {
                deadline = Some(d);
                waiter::block(py, &w, d)
            });
            match r {
                Ok(Some(_)) => {}
                Ok(None) => {
                    if Self::time_out(slf, Some(&w)) {
                        Self::leave(slf, false)?;
                        return Err(broken(py));
                    }
                }
                Err(e) => {
                    waiter::remove(&mut me.lock().q, &w);
                    Self::leave(slf, false)?;
                    return Err(e);
                }
            }
        }
        Self::leave(slf, true).map(|_| index)
    }

    /// `await barrier.wait_async(timeout=None)` -> the arrival index.
    #[pyo3(signature = (timeout = None))]
    fn wait_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = timeout.or(slf.get().timeout);
        WAIT_ASYNC
            .import(slf.py(), HELPERS, "barrier_wait")?
            .call1((slf, timeout))
    }

    /// Async driver step: enter. The index, or a future to await first.
    fn _arrive(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let (w, fut) = waiter::async_waiter(py, py.None(), 0)?;
        Ok(match slf.get().arrive(py, &w)? {
            Step::Go(i) => i.into_pyobject(py)?.into_any().unbind(),
            Step::Queued => waiter::track(slf.as_any(), fut)?,
        })
    }

    /// Async driver step: the last arrival runs the action and releases.
    fn _release_last(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::release_last(slf)
    }

    /// Async driver step: None once released, or a future to await.
    fn _released(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let (w, fut) = waiter::async_waiter(py, py.None(), 0)?;
        Ok(match slf.get().released(&w) {
            Step::Go(_) => py.None(),
            Step::Queued => waiter::track(slf.as_any(), fut)?,
        })
    }

    /// Async driver step: leave (`check`: raise if broken or reset).
    fn _leave(slf: &Bound<'_, Self>, check: bool) -> PyResult<()> {
        Self::leave(slf, check)
    }

    /// Async driver step: a timed-out waiter breaks the barrier unless it
    /// was released meanwhile; whether it broke it.
    fn _time_out(slf: &Bound<'_, Self>) -> bool {
        Self::time_out(slf, None)
    }

    fn reset(slf: &Bound<'_, Self>) {
        Self::wake_all(slf, |st| {
            if st.count > 0 {
                if st.state == FILLING || st.state == BROKEN {
                    st.state = RESETTING;
                }
            } else {
                st.state = FILLING;
            }
        });
    }

    fn abort(slf: &Bound<'_, Self>) {
        Self::wake_all(slf, |st| st.state = BROKEN);
    }

    #[getter]
    fn parties(&self) -> usize {
        self.parties
    }

    #[getter]
    fn n_waiting(&self) -> usize {
        let st = self.lock();
        if st.state == FILLING {
            st.count
        } else {
            0
        }
    }

    #[getter]
    fn broken(&self) -> bool {
        self.lock().state == BROKEN
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
        let gone = waiter::remove_future(&mut self.lock().q, fut);
        drop(gone);
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let me = slf.get();
        if me.broken() {
            return format!("<ferrio.sync.Barrier at {:p}: broken>", slf.as_ptr());
        }
        format!(
            "<ferrio.sync.Barrier at {:p}: waiters={}/{}>",
            slf.as_ptr(),
            me.n_waiting(),
            me.parties
        )
    }
}
