//! The thread side of waiting: a futex word per waiter.
//!
//! A parked thread sleeps in `FUTEX_WAIT` on its waiter's state word until
//! a waker changes the word and calls `wake`. Unlike a condition variable,
//! the wait returns `Interrupted` when a signal handler ran (CPython
//! installs its handlers without `SA_RESTART`), so a blocked `acquire` can
//! run Python's signal handlers and raise `KeyboardInterrupt` as
//! `threading`'s do.

use super::loomable::AtomicU32;
use std::time::Duration;

/// Why a `wait` returned. `Changed` may be spurious: callers re-check the
/// word.
pub(crate) enum Woke {
    Changed,
    TimedOut,
    Interrupted,
}

/// Sleeps while `word == expected`, at most `timeout` (None: no limit).
#[cfg(not(loom))]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Woke {
    let ts;
    let tsp: *const libc::timespec = match timeout {
        Some(d) => {
            ts = libc::timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64 / 2) as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            };
            &ts
        }
        None => std::ptr::null(),
    };
    // SAFETY: `word` is a live, aligned u32 for the whole call (the caller
    // borrows it); FUTEX_WAIT only reads it atomically and compares it with
    // `expected`. `tsp` is null or points at `ts`, alive until return.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            tsp,
        )
    };
    if r == 0 {
        return Woke::Changed;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => Woke::TimedOut,
        Some(libc::EINTR) => Woke::Interrupted,
        // EAGAIN: the word already differed.
        _ => Woke::Changed,
    }
}

/// Under loom: a yield (the caller re-checks the word, as after a
/// spurious wake-up).
#[cfg(loom)]
pub(crate) fn wait(_word: &AtomicU32, _expected: u32, _timeout: Option<Duration>) -> Woke {
    loom::thread::yield_now();
    Woke::Changed
}

/// Under loom: nothing to wake (waiters yield, see `wait`).
#[cfg(loom)]
pub(crate) fn wake(_word: &AtomicU32) {}

/// Wakes the thread sleeping on `word` (one sleeper per word by design).
#[cfg(not(loom))]
pub(crate) fn wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32 (the caller holds an `Arc` to
    // its waiter); FUTEX_WAKE does not dereference it beyond hashing the
    // address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn changed_word_returns_at_once() {
        let w = AtomicU32::new(1);
        assert!(matches!(
            wait(&w, 0, Some(Duration::from_secs(5))),
            Woke::Changed
        ));
    }

    #[test]
    fn timeout_expires() {
        let w = AtomicU32::new(0);
        assert!(matches!(
            wait(&w, 0, Some(Duration::from_millis(5))),
            Woke::TimedOut
        ));
    }

    #[test]
    fn wake_ends_a_wait() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                wait(&w2, 0, Some(Duration::from_secs(10)));
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        w.store(1, Ordering::Release);
        wake(&w);
        assert!(t.join().is_ok());
    }
}
