//! The thread layer's executor (`ferrio.ThreadPoolExecutor`'s native core).
//!
//! - `pool.rs`: `ThreadPool`, the Python-visible core: submit, the
//!   `run_in_executor` fast path, shutdown, the worker body.
//! - `queue.rs`: the work queue, idle workers, spinning and retirement
//!   (plain Rust, unit-tested without Python).
//! - `parker.rs`: one idle worker's sleeping place.
//! - `map.rs`: `map`'s native result iterator (no future per item).
//! - `job.rs`: a unit of work and where its outcome goes (a
//!   `concurrent.futures.Future`, or a ferrio loop's asyncio future).

mod job;
mod map;
mod parker;
mod pool;
mod queue;

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<pool::ThreadPool>()?;
    m.add_class::<map::MapIter>()?;
    m.add_function(wrap_pyfunction!(pool::_set_interpreter_exiting, m)?)?;
    Ok(())
}
