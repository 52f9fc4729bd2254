//! Cross-thread wakeup of a sleeping loop through an eventfd.
//!
//! Protocol (no lost wakeup, at most one write per sleep):
//! - The loop calls [`Waker::announce_sleep`] *before* its final check of the
//!   ready queue and the blocking `epoll_wait`, and [`Waker::awake`] after.
//! - A producer pushes its handle into the ready queue (holding the GIL, or
//!   the queue's mutex on a free-threaded build) and then calls
//!   [`Waker::wake_if_sleeping`].
//!
//! If the loop's queue check came after the producer's push, the loop sees
//! the handle and polls with a zero timeout. Otherwise the loop's
//! `sleeping = true` store happened before its queue check, which happened
//! before the producer's push (both hold the GIL or the mutex), so the
//! producer reads `sleeping` as true and writes the eventfd. `wake_sent` collapses many producers into
//! one write until the loop drains the eventfd.

use crate::oserror::{OsError, OsResult};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct Waker {
    fd: OwnedFd,
    sleeping: AtomicBool,
    wake_sent: AtomicBool,
}

impl Waker {
    pub fn new() -> OsResult<Self> {
        // SAFETY: plain syscall creating a new descriptor that we then own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(OsError::last());
        }
        Ok(Waker {
            // SAFETY: `fd` is a fresh descriptor owned by no one else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            sleeping: AtomicBool::new(false),
            wake_sent: AtomicBool::new(false),
        })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The loop is about to block. SeqCst: this store must be ordered before
    /// the loop's subsequent check of the ready queue (see module doc).
    #[inline]
    pub fn announce_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
    }

    /// The loop returned from polling. Relaxed: only the loop thread writes
    /// `false`, and a stale `true` seen by a producer costs one extra write.
    #[inline]
    pub fn awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Wakes the loop if it is (about to be) asleep; cheap otherwise.
    #[inline]
    pub fn wake_if_sleeping(&self) {
        // SeqCst pairs with `announce_sleep`. (Tried, eighth session:
        // loading `wake_sent` before swapping it. The threadsafe bench got
        // slower, 3.3-4.1M -> 3.1-3.7M/s, so the plain swap stays.)
        if self.sleeping.load(Ordering::SeqCst) && !self.wake_sent.swap(true, Ordering::AcqRel) {
            self.write();
        }
    }

    /// Spins (GIL released, after [`Waker::announce_sleep`]) until a
    /// producer wakes the loop or `limit` passes; whether one did. The
    /// producer still writes the eventfd, so the poll that follows sees
    /// the wake-up as usual.
    pub fn spin_until_woken(&self, limit: Duration) -> bool {
        // Relaxed: only a signal to stop spinning; the eventfd poll that
        // follows orders what the producer pushed.
        crate::sync::waiter::spin_until(limit, || self.wake_sent.load(Ordering::Relaxed))
    }

    /// Unconditional wakeup (asyncio's `_write_to_self`).
    pub fn wake(&self) {
        self.wake_sent.store(true, Ordering::Release);
        self.write();
    }

    fn write(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our own eventfd. EAGAIN
        // (counter saturated) means a wakeup is pending anyway.
        unsafe {
            libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }

    /// Called by the loop when the eventfd polled readable.
    pub fn drain(&self) {
        let mut buf: u64 = 0;
        // SAFETY: reads at most 8 bytes into a valid u64; nonblocking fd.
        unsafe {
            libc::read(self.fd.as_raw_fd(), (&mut buf as *mut u64).cast(), 8);
        }
        // Release: a producer that sees `false` must also see the drain.
        self.wake_sent.store(false, Ordering::Release);
    }
}
