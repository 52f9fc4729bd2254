//! `ferrio._ferrio`: the native core of ferrio. This file only wires the
//! module; each concept lives in its own module:
//!
//! - `event_loop/`: the loop (`Loop`), its run iteration and fd watching.
//! - `handles/`: `Handle`/`TimerHandle` (hand-built, non-GC Python types).
//! - `timers`: the timer heap.
//! - `reactor/`: epoll and the cross-thread waker.
//! - `transports/`: native socket transports (per-packet I/O).
//! - `executor/`: the thread pool behind `ferrio.ThreadPoolExecutor`.
//! - `sync/`: `ferrio.sync`'s locks, semaphores, events, conditions, barriers.
//! - `clock`: the monotonic clock.
//! - `gilcell`: GIL-serialised cells for the loop's hot state.
//! - `oserror`: errno from native syscalls, raised as Python raises it.
//! - `boundary`: the panic/exception guard for raw CPython entry points.
//! - `pyhelpers`: cached calls into `ferrio._helpers` for cold paths.

mod boundary;
mod clock;
mod event_loop;
mod executor;
mod gilcell;
mod handles;
mod methoddef;
mod oserror;
mod pyhelpers;
mod reactor;
mod sync;
mod timers;
mod transports;

use pyo3::prelude::*;

#[pymodule(gil_used = true)]
fn _ferrio(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<event_loop::Loop>()?;
    event_loop::install_fastcall_methods(m.py())?;
    handles::register(m)?;
    transports::register(m)?;
    executor::register(m)?;
    sync::register(m)?;
    m.add_function(wrap_pyfunction!(event_loop::_drain_completions, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
