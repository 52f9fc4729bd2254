//! `ThreadPoolExecutor.map`'s native iterator (`MapIter`).
//!
//! `Executor.map` submits one job per item at call time and yields their
//! results in order, each `result(timeout)` counted from the call; an
//! exception (the function's, a timeout, a cancellation) ends the
//! iteration and cancels what has not run. This does the same without a
//! `concurrent.futures.Future` per item: each job writes its outcome into
//! its slot of a shared `Batch`, and the consumer, waiting for the next
//! slot, sleeps on a thread waiter (GIL released, brief spin first) that
//! the job filling that slot wakes.
//!
//! Invariants: a slot is written once (by its job, by `cancel` or by a
//! broken pool's `fail`), under the batch mutex; the consumer is the only
//! one that takes outcomes out. Once `closed` (exhausted, failed, closed,
//! or garbage-collected), jobs not yet started are skipped, as cancelled
//! futures are.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use pyo3::exceptions::{PyStopIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{PyTraverseError, PyVisit};

use crate::sync::waiter::{self, Waiter, GRANTED};

pub(crate) enum Outcome {
    Pending,
    Done(Py<PyAny>),
    Failed(PyErr),
    Cancelled,
    Taken,
}

struct Slots {
    slots: Vec<Outcome>,
    /// The consumer waiting for slot `.0`.
    want: Option<(usize, Arc<Waiter>)>,
}

pub(crate) struct Batch {
    st: Mutex<Slots>,
    /// No job of this batch starts any more. Relaxed: a hint read before
    /// starting a job; a job that misses it just runs, as a future whose
    /// cancel() came a moment too late.
    closed: AtomicBool,
}

impl Batch {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            st: Mutex::new(Slots {
                slots: Vec::new(),
                want: None,
            }),
            closed: AtomicBool::new(false),
        })
    }

    /// A new pending slot for the next item; its index.
    pub(crate) fn add_slot(&self) -> usize {
        let mut st = self.st.lock();
        st.slots.push(Outcome::Pending);
        st.slots.len() - 1
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Records slot `i`'s outcome (first writer wins) and wakes the
    /// consumer if it waits for it. Call with the GIL held; the outcome's
    /// references are dropped after the mutex if the slot was taken.
    pub(crate) fn fill(&self, i: usize, outcome: Outcome) {
        let (woken, unused) = {
            let mut st = self.st.lock();
            let unused = match st.slots.get_mut(i) {
                Some(s @ Outcome::Pending) => {
                    *s = outcome;
                    None
                }
                _ => Some(outcome),
            };
            let woken = match st.want {
                Some((w, _)) if w == i => st.want.take().map(|(_, w)| w),
                _ => None,
            };
            if let Some(w) = &woken {
                w.mark(GRANTED);
            }
            (woken, unused)
        };
        drop(unused);
        if let Some(w) = woken {
            waiter::wake_thread(&w);
        }
    }
}

/// What a generator says when `next()` or `close()` overlaps a running
/// `next()` (another thread is waiting for a result in it).
fn already_executing() -> PyErr {
    PyValueError::new_err("generator already executing")
}

static TIMEOUT_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static CANCELLED_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The iterator `ThreadPoolExecutor.map` returns.
#[pyclass(module = "ferrio._ferrio", name = "MapIter", frozen)]
pub struct MapIter {
    batch: Arc<Batch>,
    next: Mutex<usize>,
    /// `__next__` was called: from then on closing the iterator (or
    /// dropping it) cancels the items not started, as closing the stdlib's
    /// started generator runs its `finally`. An iterator never advanced
    /// cancels nothing: `ex.map(f, items)` with the result unused still
    /// runs every item, as with the stdlib.
    started: AtomicBool,
    deadline: Option<Instant>,
}

impl MapIter {
    /// `deadline`: from `timeout`, counted from the `map` call (before
    /// the items were submitted, as the stdlib counts it).
    pub(crate) fn new(batch: Arc<Batch>, deadline: Option<Instant>) -> Self {
        Self {
            deadline,
            batch,
            next: Mutex::new(0),
            started: AtomicBool::new(false),
        }
    }

    /// Closes the batch (its queued jobs are skipped) if iteration had
    /// started.
    fn cancel_rest(&self) {
        // Relaxed: see Batch::closed; `started` is only read by the
        // iterator's own calls, serialized by the GIL or `next`'s mutex.
        if self.started.load(Ordering::Relaxed) {
            self.batch.closed.store(true, Ordering::Relaxed);
        }
    }

    /// Ends the iteration: `cancel_rest`, and the results are dropped.
    fn finish(&self) {
        self.cancel_rest();
        let gone = {
            let mut st = self.batch.st.lock();
            std::mem::take(&mut st.slots)
        };
        drop(gone);
    }

    /// Takes slot `i`'s outcome if it is there.
    fn take(&self, i: usize, w: Option<&Arc<Waiter>>) -> Option<Outcome> {
        let mut st = self.batch.st.lock();
        let slot = st.slots.get_mut(i)?;
        if let Outcome::Pending = slot {
            if let Some(w) = w {
                w.rearm();
                st.want = Some((i, w.clone()));
            }
            return None;
        }
        Some(std::mem::replace(slot, Outcome::Taken))
    }
}

impl Drop for MapIter {
    fn drop(&mut self) {
        self.cancel_rest();
    }
}

#[pymethods]
impl MapIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        // Relaxed: see finish.
        self.started.store(true, Ordering::Relaxed);
        // try_lock: `next` is held while the first caller waits (GIL
        // released), so a second thread (or `close()`) blocking on it with
        // the GIL held would deadlock; the stdlib's generator refuses the
        // same overlap with this error.
        let Some(mut next) = self.next.try_lock() else {
            return Err(already_executing());
        };
        let i = *next;
        let n = self.batch.st.lock().slots.len();
        if i >= n {
            drop(next);
            self.finish();
            return Err(PyStopIteration::new_err(()));
        }
        let outcome = match self.take(i, None) {
            Some(o) => o,
            None => loop {
                let w = Waiter::thread();
                if let Some(o) = self.take(i, Some(&w)) {
                    break o;
                }
                let r = waiter::block(py, &w, self.deadline);
                let late = {
                    let mut st = self.batch.st.lock();
                    st.want = None;
                    matches!(st.slots.get(i), Some(Outcome::Pending))
                };
                match r {
                    Err(e) => {
                        drop(next);
                        self.finish();
                        return Err(e);
                    }
                    // Ok(None) only with a deadline: the timeout passed.
                    Ok(None) if late => {
                        drop(next);
                        self.finish();
                        let cls = TIMEOUT_ERROR.import(py, "concurrent.futures", "TimeoutError")?;
                        return Err(PyErr::from_value(cls.call0()?));
                    }
                    _ => continue,
                }
            },
        };
        *next = i + 1;
        let out = match outcome {
            Outcome::Done(v) => return Ok(v),
            Outcome::Failed(e) => e,
            Outcome::Cancelled => {
                let cls = CANCELLED_ERROR.import(py, "concurrent.futures", "CancelledError")?;
                PyErr::from_value(cls.call0()?)
            }
            Outcome::Pending | Outcome::Taken => PyStopIteration::new_err(()),
        };
        drop(next);
        self.finish();
        Err(out)
    }

    /// As a generator's `close()`: if iteration had started, the jobs not
    /// started are cancelled.
    fn close(&self) -> PyResult<()> {
        *self.next.try_lock().ok_or_else(already_executing)? = usize::MAX;
        self.finish();
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(st) = self.batch.st.try_lock() {
            for s in st.slots.iter() {
                if let Outcome::Done(v) = s {
                    visit.call(v)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        self.finish();
    }
}
