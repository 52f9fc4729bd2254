//! One unit of work and where its outcome goes.
//!
//! - `Target::Future`: a `concurrent.futures.Future` returned by `submit`,
//!   driven exactly as the stdlib's `_WorkItem.run` does
//!   (`set_running_or_notify_cancel`, then `set_result`/`set_exception`,
//!   any `BaseException` included).
//! - `Target::Loop`: an asyncio future of a ferrio loop, made by
//!   `loop.run_in_executor`. No `concurrent.futures.Future` and no
//!   `call_soon_threadsafe` per item: the outcome goes to the loop's
//!   completion inbox (event_loop/inbox.rs), which sets every finished
//!   future in one callback per loop wake-up. A future cancelled before a
//!   worker takes the job is skipped (what cancelling the chained
//!   concurrent future does in asyncio); one cancelled while the function
//!   runs simply ignores the outcome (asyncio's `_copy_future_state`).
//! - `Target::Map`: one item of `ThreadPoolExecutor.map`; the outcome goes
//!   to its slot in the map's batch (map.rs). Skipped once the map's
//!   iterator is closed, as a cancelled future would be.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use std::sync::Arc;

use super::map::{Batch, Outcome};
use crate::event_loop::{InFlight, Loop};

pub(crate) enum Target {
    Future(Py<PyAny>),
    Loop {
        lp: Py<Loop>,
        fut: Py<PyAny>,
        /// Counts the job in the loop's unfinished executor jobs.
        in_flight: InFlight,
    },
    /// Item `index` of a native `map` (map.rs).
    Map {
        batch: Arc<Batch>,
        index: usize,
    },
}

pub(crate) struct Job {
    pub func: Py<PyAny>,
    pub args: Py<PyTuple>,
    pub kwargs: Option<Py<PyDict>>,
    pub target: Target,
}

impl Job {
    /// Runs the job on a worker (GIL held).
    pub(crate) fn run(self, py: Python<'_>) {
        let Job {
            func,
            args,
            kwargs,
            target,
        } = self;
        match target {
            Target::Future(fut) => {
                let fut = fut.bind(py);
                match fut
                    .call_method0(pyo3::intern!(py, "set_running_or_notify_cancel"))
                    .and_then(|r| r.is_truthy())
                {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => return e.write_unraisable(py, Some(fut)),
                }
                let outcome = func
                    .bind(py)
                    .call(args.bind(py), kwargs.as_ref().map(|k| k.bind(py)));
                let res = match outcome {
                    Ok(v) => fut.call_method1(pyo3::intern!(py, "set_result"), (v,)),
                    Err(e) => {
                        fut.call_method1(pyo3::intern!(py, "set_exception"), (e.into_value(py),))
                    }
                };
                if let Err(e) = res {
                    e.write_unraisable(py, Some(fut));
                }
            }
            Target::Loop { lp, fut, in_flight } => {
                match fut
                    .bind(py)
                    .call_method0(pyo3::intern!(py, "cancelled"))
                    .and_then(|r| r.is_truthy())
                {
                    Ok(false) => {}
                    Ok(true) => return,
                    Err(e) => return e.write_unraisable(py, Some(fut.bind(py))),
                }
                let outcome = func
                    .bind(py)
                    .call(args.bind(py), kwargs.as_ref().map(|k| k.bind(py)))
                    .map(Bound::unbind);
                Loop::complete_from_thread(lp.bind(py), fut, outcome);
                // Unfinished until delivered: the loop may be spinning for it.
                drop(in_flight);
            }
            Target::Map { batch, index } => {
                if batch.is_closed() {
                    return;
                }
                let outcome = match func
                    .bind(py)
                    .call(args.bind(py), kwargs.as_ref().map(|k| k.bind(py)))
                {
                    Ok(v) => Outcome::Done(v.unbind()),
                    Err(e) => Outcome::Failed(e),
                };
                batch.fill(index, outcome);
            }
        }
    }

    /// Cancels a job that will never run (`shutdown(cancel_futures=True)`).
    pub(crate) fn cancel(self, py: Python<'_>) {
        match self.target {
            Target::Future(fut) => {
                if let Err(e) = fut.bind(py).call_method0(pyo3::intern!(py, "cancel")) {
                    e.write_unraisable(py, Some(fut.bind(py)));
                }
            }
            Target::Loop { lp, fut, .. } => Loop::cancel_from_thread(lp.bind(py), fut),
            Target::Map { batch, index } => batch.fill(index, Outcome::Cancelled),
        }
    }

    /// Fails a job that will never run with `exc` (a broken pool).
    pub(crate) fn fail(self, py: Python<'_>, exc: &Bound<'_, PyAny>) {
        match self.target {
            Target::Future(fut) => {
                let fut = fut.bind(py);
                if let Err(e) = fut.call_method1(pyo3::intern!(py, "set_exception"), (exc,)) {
                    e.write_unraisable(py, Some(fut));
                }
            }
            Target::Loop { lp, fut, .. } => {
                Loop::complete_from_thread(lp.bind(py), fut, Err(PyErr::from_value(exc.clone())))
            }
            Target::Map { batch, index } => {
                batch.fill(index, Outcome::Failed(PyErr::from_value(exc.clone())))
            }
        }
    }

    /// GC traversal of the objects a queued job holds.
    pub(crate) fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.func)?;
        visit.call(&self.args)?;
        if let Some(k) = &self.kwargs {
            visit.call(k)?;
        }
        match &self.target {
            Target::Future(f) => visit.call(f),
            Target::Loop { lp, fut, .. } => {
                visit.call(lp)?;
                visit.call(fut)
            }
            Target::Map { .. } => Ok(()),
        }
    }
}
