//! The loop's clock: `CLOCK_MONOTONIC` in seconds as `f64`.
//!
//! This is the clock `time.monotonic()` reads on Linux, so `loop.time()`
//! agrees with it to the nanosecond, as asyncio's loop does. It goes
//! through the vDSO (no syscall), so reading it per iteration is cheap.

/// Seconds on the monotonic clock.
#[inline]
pub fn now() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists
    // on the platforms this crate builds for, so the call cannot fail.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Resolution of the monotonic clock in seconds (what
/// `time.get_clock_info('monotonic').resolution` reports).
pub fn resolution() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as above; clock_getres only writes into `ts`.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 1e-9;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic_and_fine_grained() {
        let a = now();
        let b = now();
        assert!(b >= a);
        assert!(resolution() > 0.0 && resolution() < 1e-3);
    }
}
