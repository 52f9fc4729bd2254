//! The atomics and mutex under the permit core and the thread waiter's
//! word, swapped for loom's in model runs (`RUSTFLAGS="--cfg loom" cargo
//! test --release loom`), so loom explores every interleaving of the real
//! code (permits.rs and waiter.rs's `loom_model` tests).
//!
//! Only what those models touch goes through here: the permit word and
//! its queue mutex, the waiter's outcome word and `sleeping` flag. Statics
//! (spinner counters) stay `std` types: loom's are not `const`. Under loom
//! the futex calls become a yield (`futex.rs`), so a model never sleeps in
//! the kernel.

#[cfg(not(loom))]
pub(crate) use parking_lot::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize};

/// loom's mutex with parking_lot's `lock()` (no poisoning: a panic in a
/// model fails the model anyway).
#[cfg(loom)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(v: T) -> Self {
        Self(loom::sync::Mutex::new(v))
    }

    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
