//! [`GilCell`]: interior mutability for state that is only ever touched by a
//! thread attached to the interpreter, without an atomic read-modify-write
//! per access.
//!
//! Why it exists: on this kind of VM a locked instruction costs ~7.5 ns (a
//! `parking_lot` lock+unlock pair ~15 ns), and one `call_soon` → run
//! iteration took ten of them (the ready queue's push and swap, the timer
//! heap's check, the handle's callback slot): about a third of the loop's
//! own cost per callback (docs/decisions.md, "GIL cells"). On a build with
//! a GIL every user of these structures holds the GIL, which already
//! serialises them, so the mutex bought nothing but its atomics.
//!
//! - GIL builds: an `UnsafeCell` and a plain (non-atomic) borrow flag.
//!   Borrowing takes a `Python<'_>` token, the proof that the calling
//!   thread holds the GIL. The flag turns a broken invariant into a panic
//!   (which the boundary reports as a Python exception) instead of
//!   undefined behaviour; with the mutex the same bug was a deadlock.
//! - Free-threaded builds (`Py_GIL_DISABLED`, set by build.rs from PyO3's
//!   configuration): a `parking_lot` mutex, exactly what was here before.
//!
//! The rule for users, the same one the mutexes had: never run Python code
//! while a borrow is live — no calls, and no decref that could free an
//! object (a `__del__` may run, and running Python code can hand the GIL to
//! another thread). Take what you need out, drop the borrow, then decref.
//! The borrow guard is `!Send`, so it cannot be carried into
//! `Python::detach`.

#[cfg(not(Py_GIL_DISABLED))]
mod imp {
    use std::cell::{Cell, UnsafeCell};
    use std::marker::PhantomData;
    use std::ops::{Deref, DerefMut};

    use pyo3::Python;

    pub(crate) struct GilCell<T> {
        value: UnsafeCell<T>,
        borrowed: Cell<bool>,
    }

    // SAFETY: every access to `value` and `borrowed` goes through `borrow`,
    // which needs a `Python<'_>` token (the caller holds the
    // GIL), or through `try_borrow_unattached`, whose caller promises the
    // same. So accesses from different threads never overlap: the GIL
    // serialises them, and its release/acquire orders their memory effects.
    // `T: Send` because the value is handed from thread to thread that way.
    unsafe impl<T: Send> Sync for GilCell<T> {}

    impl<T> GilCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            GilCell {
                value: UnsafeCell::new(value),
                borrowed: Cell::new(false),
            }
        }

        /// Exclusive access. Panics if a borrow is already live (a bug: see
        /// the module doc).
        #[inline]
        pub(crate) fn borrow<'a>(&'a self, _py: Python<'a>) -> GilRef<'a, T> {
            match self.take_flag() {
                Some(r) => r,
                None => already_borrowed(),
            }
        }

        /// Exclusive access or None if a borrow is live, for code that holds
        /// the GIL without a token (the garbage collector's `__traverse__`).
        ///
        /// # Safety
        /// The calling thread must hold the GIL.
        #[inline]
        pub(crate) unsafe fn try_borrow_unattached(&self) -> Option<GilRef<'_, T>> {
            self.take_flag()
        }

        /// Sets the borrow flag and returns the guard, or None if it was
        /// set. Callers guarantee the GIL is held (see the Sync impl).
        #[inline]
        fn take_flag(&self) -> Option<GilRef<'_, T>> {
            if self.borrowed.replace(true) {
                return None;
            }
            Some(GilRef {
                cell: self,
                _not_send: PhantomData,
            })
        }

        pub(crate) fn into_inner(self) -> T {
            self.value.into_inner()
        }
    }

    #[cold]
    #[inline(never)]
    fn already_borrowed() -> ! {
        panic!("ferrio internal error: GilCell borrowed twice (Python code ran during a borrow)")
    }

    /// A live borrow; not `Send` (it must not outlive the GIL hold).
    pub(crate) struct GilRef<'a, T> {
        cell: &'a GilCell<T>,
        _not_send: PhantomData<*const ()>,
    }

    impl<T> Deref for GilRef<'_, T> {
        type Target = T;
        #[inline]
        fn deref(&self) -> &T {
            // SAFETY: this guard set the flag, so it is the only live
            // borrow, and the GIL keeps other threads out (see Sync above).
            unsafe { &*self.cell.value.get() }
        }
    }

    impl<T> DerefMut for GilRef<'_, T> {
        #[inline]
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: as in `deref`; `&mut self` makes this the only
            // reference derived from the guard.
            unsafe { &mut *self.cell.value.get() }
        }
    }

    impl<T> Drop for GilRef<'_, T> {
        #[inline]
        fn drop(&mut self) {
            self.cell.borrowed.set(false);
        }
    }
}

#[cfg(Py_GIL_DISABLED)]
mod imp {
    use pyo3::Python;

    /// Free-threaded build: a real mutex (no GIL to lean on).
    pub(crate) struct GilCell<T>(parking_lot::Mutex<T>);

    pub(crate) type GilRef<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> GilCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            GilCell(parking_lot::const_mutex(value))
        }

        #[inline]
        pub(crate) fn borrow<'a>(&'a self, _py: Python<'a>) -> GilRef<'a, T> {
            self.0.lock()
        }

        /// # Safety
        /// None needed here; kept `unsafe` to match the GIL build.
        #[inline]
        pub(crate) unsafe fn try_borrow_unattached(&self) -> Option<GilRef<'_, T>> {
            self.0.try_lock()
        }

        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner()
        }
    }
}

pub(crate) use imp::GilCell;

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::Python;

    #[test]
    fn borrow_flag_detects_overlap() {
        // SAFETY: the token is only passed to the cell, which never calls
        // into the interpreter; this test thread is the only one.
        let py = unsafe { Python::assume_attached() };
        let c = GilCell::new(vec![1]);
        {
            let mut b = c.borrow(py);
            b.push(2);
            #[cfg(not(Py_GIL_DISABLED))]
            // SAFETY: single-threaded test.
            assert!(unsafe { c.try_borrow_unattached() }.is_none());
        }
        // SAFETY: single-threaded test.
        let again = unsafe { c.try_borrow_unattached() };
        assert_eq!(again.as_deref(), Some(&vec![1, 2]));
        drop(again);
        assert_eq!(c.into_inner(), vec![1, 2]);
    }
}
