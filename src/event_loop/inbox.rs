//! The completion inbox: outcomes of `run_in_executor` jobs finished by
//! ferrio's executor threads, delivered to the loop in batches.
//!
//! A worker pushes `(future, outcome)`; only the push that finds the inbox
//! empty schedules the drain callback (a thread-safe `call_soon`, which
//! writes the wake-up fd only if the loop sleeps). One drain then sets
//! every future that finished meanwhile: many completions, one wake-up.
//! asyncio instead pays a `call_soon_threadsafe` (and a self-pipe write)
//! per completed future.
//!
//! Invariant: the inbox is non-empty exactly when a drain is scheduled and
//! has not yet taken the batch (the drain takes everything under the lock;
//! the next push after that schedules a new drain). If the loop is closed
//! the outcomes are dropped: nobody can await those futures any more
//! (asyncio's `call_soon_threadsafe` would raise in the worker instead and
//! the stdlib would log it as a callback error).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

use super::Loop;

/// Counts one `run_in_executor` job of a loop as unfinished for as long
/// as it lives (the job holds it and drops it after delivering its
/// outcome, or when it is dropped without running). The count is only a
/// hint for the loop's spin before sleeping.
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub(crate) fn new(lp: &Loop) -> Self {
        // Relaxed: a hint (see `Loop::executor_jobs`); nothing is
        // published through it.
        lp.executor_jobs.fetch_add(1, Ordering::Relaxed);
        InFlight(lp.executor_jobs.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Loop {
    /// Whether any `run_in_executor` job of this loop is unfinished.
    pub(crate) fn executor_busy(&self) -> bool {
        self.executor_jobs.load(Ordering::Relaxed) > 0
    }

    /// Whether finished jobs wait in the inbox.
    pub(crate) fn inbox_pending(&self) -> bool {
        !self.inbox.lock().is_empty()
    }
}

/// A finished job: `Ok(result)`, `Err(exception)`, or `None` = cancel.
pub(crate) type Outcome = Option<PyResult<Py<PyAny>>>;

static DRAIN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static CONVERT_EXC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

impl Loop {
    /// Delivers a job's outcome to `fut` on the loop (from any thread).
    pub(crate) fn complete_from_thread(
        slf: &Bound<'_, Loop>,
        fut: Py<PyAny>,
        outcome: PyResult<Py<PyAny>>,
    ) {
        Self::deliver(slf, fut, Some(outcome));
    }

    /// Cancels `fut` on the loop (from any thread).
    pub(crate) fn cancel_from_thread(slf: &Bound<'_, Loop>, fut: Py<PyAny>) {
        Self::deliver(slf, fut, None);
    }

    fn deliver(slf: &Bound<'_, Loop>, fut: Py<PyAny>, outcome: Outcome) {
        let py = slf.py();
        let me = slf.get();
        let first = {
            let mut inbox = me.inbox.lock();
            inbox.push((fut, outcome));
            inbox.len() == 1
        };
        if !first {
            return;
        }
        let scheduled = DRAIN
            .import(py, "ferrio._ferrio", "_drain_completions")
            .and_then(|drain| {
                let args = PyTuple::new(py, [slf.as_any()])?;
                me.call_soon_impl(py, drain, &args, None, true)
            });
        match scheduled {
            Ok(h) => h.release_ref(py),
            Err(_) => {
                // Closed loop: nobody will drain. Drop outside the lock.
                let dropped = std::mem::take(&mut *me.inbox.lock());
                drop(dropped);
            }
        }
    }
}

/// The drain callback: sets every future in the inbox (loop thread).
#[pyfunction]
pub(crate) fn _drain_completions(lp: &Bound<'_, Loop>) -> PyResult<()> {
    let py = lp.py();
    let batch = std::mem::take(&mut *lp.get().inbox.lock());
    for (fut, outcome) in batch {
        let fut = fut.bind(py);
        let res = (|| -> PyResult<()> {
            // asyncio's _copy_future_state: a cancelled destination stays so.
            if fut
                .call_method0(pyo3::intern!(py, "cancelled"))?
                .is_truthy()?
            {
                return Ok(());
            }
            match outcome {
                None => fut.call_method0(pyo3::intern!(py, "cancel")).map(drop),
                Some(Ok(v)) => fut
                    .call_method1(pyo3::intern!(py, "set_result"), (v,))
                    .map(drop),
                Some(Err(e)) => {
                    // asyncio's _convert_future_exc: the concurrent.futures
                    // CancelledError (etc.) a function raised becomes
                    // asyncio's, as wrap_future would deliver it.
                    let convert =
                        CONVERT_EXC.import(py, "asyncio.futures", "_convert_future_exc")?;
                    let exc = convert.call1((e.into_value(py),))?;
                    fut.call_method1(pyo3::intern!(py, "set_exception"), (exc,))
                        .map(drop)
                }
            }
        })();
        if let Err(e) = res {
            let ctx = PyDict::new(py);
            ctx.set_item(
                "message",
                "Exception while completing a run_in_executor future",
            )?;
            ctx.set_item("exception", e.into_value(py))?;
            ctx.set_item("future", fut)?;
            lp.call_method1(pyo3::intern!(py, "call_exception_handler"), (ctx,))?;
        }
    }
    Ok(())
}
