//! `Parker`: one idle worker's sleeping place.
//!
//! A token (`notified`) under a mutex plus a condition variable: `unpark`
//! sets the token and signals; `park` sleeps until the token is set or the
//! timeout passes and consumes the token. Setting the token before the
//! sleeper arrives is not lost (it returns at once), so the pool can hand a
//! worker a job and unpark it without caring whether it is asleep yet.

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
pub(crate) struct Parker {
    notified: Mutex<bool>,
    cv: Condvar,
}

impl Parker {
    /// Wakes the parked thread (or makes its next `park` return at once).
    pub(crate) fn unpark(&self) {
        let mut n = self.notified.lock();
        *n = true;
        self.cv.notify_one();
    }

    /// Sleeps until unparked or `timeout` passed; whether it was unparked.
    pub(crate) fn park(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut n = self.notified.lock();
        while !*n {
            match deadline {
                Some(d) => {
                    if self.cv.wait_until(&mut n, d).timed_out() {
                        break;
                    }
                }
                None => self.cv.wait(&mut n),
            }
        }
        std::mem::replace(&mut *n, false)
    }

    /// Drops a token that arrived after the sleeper gave up.
    pub(crate) fn reset(&self) {
        *self.notified.lock() = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn unpark_before_park_is_not_lost() {
        let p = Parker::default();
        p.unpark();
        assert!(p.park(Duration::from_secs(5)));
        assert!(!p.park(Duration::from_millis(1)));
    }

    #[test]
    fn unpark_wakes_a_sleeper() {
        let p = Arc::new(Parker::default());
        let q = p.clone();
        let t = std::thread::spawn(move || q.park(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        p.unpark();
        assert!(t.join().unwrap_or(false));
    }
}
