//! `ThreadPool`: the native core of `ferrio.ThreadPoolExecutor`
//! (python/ferrio/_executor.py owns the `concurrent.futures` facade).
//!
//! Workers are `threading.Thread`s (so `threading.current_thread()`, thread
//! names and interpreter-exit joining behave as with the stdlib) whose body
//! is `_worker`: Rust that waits for jobs with the GIL released
//! (queue.rs: spin briefly, then park) and holds it only to run a job.
//! Threads start on demand, up to `max_workers`, when a job finds no idle
//! or spinning worker, and retire after `idle_timeout` without work.
//!
//! Error texts and types are the stdlib's: `RuntimeError('cannot schedule
//! new futures after shutdown')`, `... after interpreter shutdown`,
//! `BrokenThreadPool('A thread initializer failed, the thread pool is not
//! usable anymore')`, and a failing initializer is logged with
//! `LOGGER.critical('Exception in initializer:', exc_info=True)`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::job::{Job, Target};
use super::map::{Batch, MapIter};
use super::parker::Parker;
use super::queue::{Refused, Shared, Spin, Wake};
use crate::event_loop::{new_future, InFlight, Loop};

/// Set once the interpreter started exiting (`_python_exit`): no new work.
/// Relaxed: a one-way flag; a submit racing with exit may still get in,
/// as with the stdlib's check.
static INTERPRETER_EXITING: AtomicBool = AtomicBool::new(false);

static CF_FUTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ZIP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static BROKEN_THREAD_POOL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static INIT_FAILED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

const BROKEN_MSG: &str = "A thread initializer failed, the thread pool is not usable anymore";

#[pyclass(module = "ferrio._ferrio", name = "ThreadPool", frozen, weakref)]
pub struct ThreadPool {
    shared: Arc<Shared<Job>>,
    initializer: Option<Py<PyAny>>,
    initargs: Py<PyTuple>,
    /// `spawn(core, index)`: starts a worker thread running `core._worker`
    /// and returns its `threading.Thread`.
    spawn: Py<PyAny>,
    threads: Mutex<Vec<Py<PyAny>>>,
    spawned: AtomicU64,
    broken: AtomicBool,
}

impl ThreadPool {
    /// The stdlib's first `submit` check; shutdown and interpreter exit are
    /// checked by `enqueue`, under the queue's lock.
    fn check_broken(&self, py: Python<'_>) -> PyResult<()> {
        // Relaxed: `broken` is set under the GIL (or, free-threaded, a late
        // observer just queues a job the drain in break_pool then fails).
        if self.broken.load(Ordering::Relaxed) {
            let cls =
                BROKEN_THREAD_POOL.import(py, "concurrent.futures.thread", "BrokenThreadPool")?;
            return Err(PyErr::from_value(cls.call1((BROKEN_MSG,))?));
        }
        Ok(())
    }

    fn enqueue(slf: &Bound<'_, Self>, job: Job) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        match me
            .shared
            .push(job, INTERPRETER_EXITING.load(Ordering::Relaxed))
        {
            Err((job, why)) => {
                drop(job);
                Err(PyRuntimeError::new_err(match why {
                    Refused::Shutdown => "cannot schedule new futures after shutdown",
                    Refused::Exiting => "cannot schedule new futures after interpreter shutdown",
                }))
            }
            Ok(Wake::Nobody) => Ok(()),
            Ok(Wake::Unpark(p)) => {
                p.unpark();
                Ok(())
            }
            Ok(Wake::Spawn) => {
                // Relaxed: a name counter only.
                let index = me.spawned.fetch_add(1, Ordering::Relaxed);
                match me.spawn.bind(py).call1((slf, index)) {
                    Ok(t) => {
                        let mut threads = me.threads.lock();
                        threads.push(t.unbind());
                        Ok(())
                    }
                    Err(e) => {
                        // The job stays queued for another worker, as
                        // the stdlib leaves it when `Thread.start` fails.
                        me.shared.spawn_failed();
                        Err(e)
                    }
                }
            }
        }
    }

    fn break_pool(&self, py: Python<'_>) {
        self.broken.store(true, Ordering::Relaxed);
        let jobs = self.shared.drain();
        if jobs.is_empty() {
            return;
        }
        let exc = BROKEN_THREAD_POOL
            .import(py, "concurrent.futures.thread", "BrokenThreadPool")
            .and_then(|cls| cls.call1((BROKEN_MSG,)));
        match exc {
            Ok(exc) => {
                for j in jobs {
                    j.fail(py, &exc);
                }
            }
            Err(e) => e.write_unraisable(py, None),
        }
    }
}

#[pymethods]
impl ThreadPool {
    #[new]
    #[pyo3(signature = (max_workers, initializer, initargs, spawn, idle_timeout))]
    fn new(
        max_workers: usize,
        initializer: Option<Py<PyAny>>,
        initargs: Py<PyTuple>,
        spawn: Py<PyAny>,
        idle_timeout: f64,
    ) -> PyResult<Self> {
        if max_workers == 0 {
            return Err(PyValueError::new_err("max_workers must be greater than 0"));
        }
        let idle = Duration::try_from_secs_f64(idle_timeout)
            .map_err(|_| PyValueError::new_err("idle_timeout must be a non-negative number"))?;
        Ok(ThreadPool {
            shared: Arc::new(Shared::new(max_workers, idle)),
            initializer,
            initargs,
            spawn,
            threads: Mutex::new(Vec::new()),
            spawned: AtomicU64::new(0),
            broken: AtomicBool::new(false),
        })
    }

    /// `Executor.submit(fn, /, *args, **kwargs)`: a new
    /// `concurrent.futures.Future`.
    #[pyo3(signature = (r#fn, /, *args, **kwargs))]
    fn submit(
        slf: &Bound<'_, Self>,
        r#fn: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        slf.get().check_broken(py)?;
        let fut = CF_FUTURE
            .import(py, "ferrio._executor", "Future")?
            .call0()?;
        let job = Job {
            func: r#fn,
            args,
            kwargs: kwargs.filter(|k| !k.bind(py).is_empty()),
            target: Target::Future(fut.clone().unbind()),
        };
        Self::enqueue(slf, job)?;
        Ok(fut.unbind())
    }

    /// `Executor.map(fn, *iterables, timeout=None)`: one job per item,
    /// submitted now (pulling the items one by one, as the stdlib's list
    /// comprehension does); results come through a `MapIter`.
    #[pyo3(signature = (r#fn, iterables, timeout = None))]
    fn map(
        slf: &Bound<'_, Self>,
        r#fn: Py<PyAny>,
        iterables: &Bound<'_, PyTuple>,
        timeout: Option<f64>,
    ) -> PyResult<MapIter> {
        let py = slf.py();
        let deadline = timeout.and_then(|t| crate::sync::waiter::deadline(t.max(0.0)));
        let zip = ZIP.import(py, "builtins", "zip")?.call1(iterables)?;
        let batch = Batch::new();
        for args in zip.try_iter()? {
            let args = args?.cast_into::<PyTuple>()?.unbind();
            slf.get().check_broken(py)?;
            let job = Job {
                func: r#fn.clone_ref(py),
                args,
                kwargs: None,
                target: Target::Map {
                    batch: batch.clone(),
                    index: batch.add_slot(),
                },
            };
            Self::enqueue(slf, job)?;
        }
        Ok(MapIter::new(batch, deadline))
    }

    /// `loop.run_in_executor(this, func, *args)` for a ferrio loop: an
    /// asyncio future completed through the loop's inbox.
    fn run_for_loop(
        slf: &Bound<'_, Self>,
        lp: &Bound<'_, Loop>,
        func: Py<PyAny>,
        args: Py<PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        slf.get().check_broken(py)?;
        let fut = new_future(lp.as_any())?;
        let job = Job {
            func,
            args,
            kwargs: None,
            target: Target::Loop {
                lp: lp.clone().unbind(),
                fut: fut.clone().unbind(),
                in_flight: InFlight::new(lp.get()),
            },
        };
        Self::enqueue(slf, job)?;
        Ok(fut.unbind())
    }

    /// Starts shutting down: no new jobs; queued jobs are cancelled if
    /// `cancel_futures`, else they still run; idle workers exit.
    fn shutdown(&self, py: Python<'_>, cancel_futures: bool) {
        for j in self.shared.shutdown(cancel_futures) {
            j.cancel(py);
        }
    }

    /// The executor object was garbage-collected without `shutdown()`:
    /// workers exit once idle (the stdlib's workers do when their weak
    /// reference dies); work submitted later still runs.
    fn _orphan(&self) {
        self.shared.orphan();
    }

    /// The worker threads started and not yet known to have exited.
    fn threads(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        let mut threads = self.threads.lock();
        // Forget exited threads (a retired worker's `is_alive()` is False).
        threads.retain(|t| {
            t.bind(py)
                .call_method0("is_alive")
                .and_then(|a| a.is_truthy())
                .unwrap_or(true)
        });
        threads.iter().map(|t| t.clone_ref(py)).collect()
    }

    /// Workers counted alive, and jobs queued: `(workers, queued)`.
    fn _counts(&self) -> (usize, usize) {
        (self.shared.workers(), self.shared.queued())
    }

    #[getter]
    fn broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    #[getter]
    fn shutdown_called(&self) -> bool {
        self.shared.st.lock().shutdown
    }

    /// A worker thread's body (called by `threading.Thread.run`).
    fn _worker(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        if let Some(init) = &me.initializer {
            if let Err(e) = init.bind(py).call1(me.initargs.bind(py)) {
                let logged = INIT_FAILED
                    .import(py, "ferrio._executor", "_initializer_failed")
                    .and_then(|f| f.call1((e.into_value(py),)));
                if let Err(e) = logged {
                    e.write_unraisable(py, None);
                }
                me.break_pool(py);
                me.shared.spawn_failed();
                return Ok(());
            }
        }
        let shared = me.shared.clone();
        let parker = Arc::new(Parker::default());
        let mut spin = Spin::default();
        loop {
            shared.worker_available();
            let job = py.detach(|| {
                crate::sync::waiter::gil_released();
                let job = shared.next_job(&parker, &mut spin);
                if job.is_some() && spin.waited {
                    // The submitter usually still holds the GIL (it pushed
                    // the job a moment ago); asking for it now would put
                    // this worker to sleep on the GIL's condition variable
                    // until the submitter blocks. Wait for that release
                    // spinning instead (bounded; docs/locks.md, "GIL
                    // spin"). Not for a job that was already queued: the
                    // GIL this worker just let go of is likely still free.
                    crate::sync::waiter::spin_for_gil_release(true);
                }
                job
            });
            match job {
                Some(j) => j.run(py),
                None => return Ok(()),
            }
        }
    }

    /// In a forked child: the parent's workers do not exist here.
    fn _after_fork_in_child(&self) {
        self.shared.after_fork_in_child();
        self.threads.lock().clear();
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(i) = &self.initializer {
            visit.call(i)?;
        }
        visit.call(&self.initargs)?;
        visit.call(&self.spawn)?;
        if let Some(st) = self.shared.st.try_lock() {
            for j in st.queue.iter() {
                j.traverse(&visit)?;
            }
        }
        if let Some(t) = self.threads.try_lock() {
            for t in t.iter() {
                visit.call(t)?;
            }
        }
        Ok(())
    }
}

/// Called by the interpreter-exit hook: no pool accepts work after it.
#[pyfunction]
pub(crate) fn _set_interpreter_exiting() {
    INTERPRETER_EXITING.store(true, Ordering::Relaxed);
}
