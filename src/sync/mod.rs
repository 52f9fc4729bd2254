//! `ferrio.sync`: threading-compatible synchronization primitives that
//! coroutines can use too (design: docs/locks.md).
//!
//! - `futex.rs`: a thread's sleep on its waiter's word (Ctrl-C aware).
//! - `waiter.rs`: thread and coroutine waiters, blocking with the GIL
//!   released, settling a coroutine's future on its loop, `_Ready`.
//! - `permits.rs`: the counting core (atomic fast path, barging, 1 ms
//!   fairness handoff, bounded spinning) under `Lock`, `RLock`,
//!   `Semaphore`, `BoundedSemaphore`.
//! - `lock.rs`, `rlock.rs`, `semaphore.rs`, `event.rs`, `condition.rs`,
//!   `barrier.rs`, `rwlock.rs`: the Python classes.
//! - `queue.rs`, `store.rs`: `ferrio.Queue`'s core (threads and coroutines
//!   on one queue; FIFO/LIFO/priority stores).
//! - `args.rs`: `threading`'s argument rules and error texts.
//! - `loomable.rs`: the atomics and mutex the permit core and the waiter
//!   word use, loom's in model runs.

mod args;
mod barrier;
mod condition;
mod event;
mod futex;
mod lock;
mod loomable;
mod permits;
mod queue;
mod rlock;
mod rwlock;
mod semaphore;
mod store;
pub(crate) mod waiter;

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<lock::Lock>()?;
    m.add_class::<rlock::RLock>()?;
    m.add_class::<semaphore::Semaphore>()?;
    m.add_class::<semaphore::BoundedSemaphore>()?;
    m.add_class::<event::Event>()?;
    m.add_class::<rwlock::RWLock>()?;
    m.add_class::<rwlock::RWLockGuard>()?;
    m.add_class::<condition::Condition>()?;
    m.add_class::<barrier::Barrier>()?;
    m.add_class::<waiter::Ready>()?;
    m.add_class::<queue::QueueBase>()?;
    Ok(())
}
