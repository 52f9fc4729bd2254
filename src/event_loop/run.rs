//! One iteration of the loop (`_run_once`), asyncio's algorithm in Rust:
//!
//! 1. reclaim cancelled timers (rebuild the heap when most are cancelled);
//! 2. pick the poll timeout: 0 if callbacks are ready or the loop is
//!    stopping, else until the earliest timer (capped at one day), else
//!    forever;
//! 3. poll, queueing the handles of ready fds;
//! 4. queue every timer due before `now + clock resolution`;
//! 5. run exactly the callbacks that were ready when the pass started, in
//!    FIFO order. What they schedule runs in the next pass (generations), and
//!    `stop()` lets the pass finish.
//!
//! A busy loop takes the pass's callbacks before polling (one borrow); a
//! callback another thread adds during that poll runs in the next pass.
//!
//! Poll skipping: when callbacks are already ready the poll would use a zero
//! timeout. It is skipped when the previous iteration polled (so a busy loop
//! polls at least every other iteration: the callbacks that the last poll's
//! I/O scheduled, e.g. task wakeups after `data_received`, run first and the
//! next poll can then block, one `epoll_wait` per batch of I/O as libuv
//! does), or when the last poll found nothing less than
//! [`POLL_SKIP_WINDOW`] ago (a loop only running callbacks saves a syscall
//! per iteration and sees a new cross-thread wakeup or fd readiness at most
//! that late). Callbacks of fds that became ready together still run in the
//! same pass (CPython's test_sendfile checks this). The first iteration of a
//! run, and any iteration after a reader/writer was added or removed, always
//! polls.
//!
//! Waiting for the pool: an idle loop that has `run_in_executor` jobs on a
//! ferrio pool unfinished spins (GIL released, up to [`EXECUTOR_SPIN`])
//! for the completion's wake-up before it sleeps in `epoll_wait`. A
//! wake-up aimed at a sleeping thread costs a context switch, ~30 µs on
//! this kind of VM when its vCPU has gone idle, several times what a short
//! job takes; the pool's workers spin for the next job the same way
//! (executor/queue.rs). I/O readiness is seen at most `EXECUTOR_SPIN`
//! late meanwhile. The spin takes one of the sync layer's spin slots (one
//! per CPU beyond the first), and after [`EXECUTOR_SPIN_MISSES`] spins in
//! a row that caught nothing (long jobs) the loop just sleeps, until a
//! completion again arrives within `EXECUTOR_SPIN` of a sleep.
//!
//! If `KeyboardInterrupt` or `SystemExit` escapes a callback (or the
//! exception handler), the callbacks of the pass that did not run yet are
//! put back at the front of the ready queue before the error propagates, so
//! nothing is lost and the loop can be run again.

use std::collections::VecDeque;
use std::time::Duration;

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::prelude::*;

use super::Loop;
use crate::clock;
use crate::handles::HandleRef;
use crate::pyhelpers;

/// Longest an idle loop with unfinished `run_in_executor` jobs spins
/// for their completion before sleeping in `epoll_wait`.
const EXECUTOR_SPIN: Duration = Duration::from_micros(50);
/// Spins in a row that caught nothing after which the loop stops spinning,
/// until a completion again arrives within `EXECUTOR_SPIN` of a sleep.
const EXECUTOR_SPIN_MISSES: u32 = 3;

/// Longest a busy loop goes without polling for I/O.
pub const POLL_SKIP_WINDOW: f64 = 250e-6;
/// asyncio's MAXIMUM_SELECT_TIMEOUT: the longest single poll.
const MAX_SELECT_TIMEOUT: f64 = 24.0 * 3600.0;

fn is_fatal(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyKeyboardInterrupt>(py) || err.is_instance_of::<PySystemExit>(py)
}

/// Converts a timeout in seconds to epoll's milliseconds, rounding up like
/// `select.epoll.poll` so a timer is never polled for "too early" in a spin.
fn timeout_ms(seconds: f64) -> i32 {
    if seconds <= 0.0 || seconds.is_nan() {
        return 0;
    }
    let ms = (seconds.min(MAX_SELECT_TIMEOUT) * 1e3).ceil();
    ms as i32
}

/// Buffers reused across iterations by `run_forever` (no allocation per
/// iteration once they have grown).
#[derive(Default)]
pub(crate) struct Scratch {
    /// The pass being run; swapped with the ready queue each iteration.
    batch: VecDeque<HandleRef>,
    /// Handles made ready by I/O and timers this iteration.
    fired: Vec<HandleRef>,
    /// The last poll reported ready fds: poll every iteration meanwhile.
    io_active: bool,
    /// The previous iteration polled.
    polled_last: bool,
    /// Spins before sleeping that no executor completion ended, in a row
    /// (see "Waiting for the pool" above).
    spin_misses: u32,
}

pub(crate) fn run_once(slf: &Bound<'_, Loop>, scratch: &mut Scratch) -> PyResult<()> {
    let py = slf.py();
    let lp = slf.get();
    debug_assert!(scratch.batch.is_empty() && scratch.fired.is_empty());

    // 1-2. A busy loop (callbacks ready, or stopping) takes this pass's
    // callbacks now, in the same borrow, and polls with a zero timeout. An idle
    // one reclaims cancelled timers and sleeps until the earliest timer.
    let busy = {
        let mut ready = lp.ready.borrow(py);
        if !ready.is_empty() || lp.is_stopping() {
            std::mem::swap(&mut *ready, &mut scratch.batch);
            lp.reset_ready_hint();
            true
        } else {
            false
        }
    };
    let mut timeout = 0;
    if !busy {
        let (reclaimed, next_deadline) = {
            let mut timers = lp.timers.borrow(py);
            let r = timers.reclaim();
            (r, timers.next_deadline())
        };
        drop(reclaimed); // decref outside the heap: __del__ may run
        timeout = match next_deadline {
            None => -1,
            Some(when) if lp.is_time_overridden() => timeout_ms(when - Loop::now(slf)?),
            Some(when) => timeout_ms(when - clock::now()),
        };
        if timeout != 0 {
            lp.reactor.waker.announce_sleep();
            // A threadsafe producer may have pushed before seeing the flag.
            if !lp.ready.borrow(py).is_empty() {
                timeout = 0;
            }
        }
    }

    // 3. Poll, or skip the poll on a busy loop that polled very recently.
    // The clock is read only when something needs it (~27 ns a read on
    // this VM, a sixth of a callback iteration): the window check, after a
    // poll, and for due timers.
    let mut now = None;
    let may_skip = timeout == 0
        && !lp.reactor.changed()
        && (scratch.polled_last
            || (!scratch.io_active && {
                let t = clock::now();
                now = Some(t);
                t - lp.last_poll() < POLL_SKIP_WINDOW
            }));
    scratch.polled_last = !may_skip;
    if !may_skip {
        let before = scratch.fired.len();
        let waiting_for_pool = timeout != 0 && lp.executor_busy();
        let spin = (waiting_for_pool && scratch.spin_misses < EXECUTOR_SPIN_MISSES)
            .then_some(EXECUTOR_SPIN);
        // Timed only to learn whether spinning would have paid off.
        let slept_at = (waiting_for_pool && spin.is_none()).then(clock::now);
        let res = lp.reactor.poll(py, timeout, &mut scratch.fired, spin);
        scratch.io_active = scratch.fired.len() > before;
        lp.reactor.waker.awake();
        let t = clock::now();
        now = Some(t);
        lp.set_last_poll(t);
        match res {
            Err(e) => {
                requeue(py, lp, scratch);
                return Err(e);
            }
            Ok(Some(true)) => scratch.spin_misses = 0,
            Ok(Some(false)) => scratch.spin_misses += 1,
            Ok(None) => {
                if let Some(t0) = slept_at {
                    if t - t0 < EXECUTOR_SPIN.as_secs_f64() && lp.inbox_pending() {
                        scratch.spin_misses = 0;
                    }
                }
            }
        }
    }

    // 4. Due timers (and, on a busy loop, reclaim cancelled ones now).
    // With `time` overridden, "now" is whatever `self.time()` says, read
    // once per pass as asyncio does.
    if lp.is_time_overridden() && !lp.timers.borrow(py).is_empty() {
        match Loop::now(slf) {
            Ok(t) => now = Some(t),
            Err(e) => {
                requeue(py, lp, scratch);
                return Err(e);
            }
        }
    }
    let reclaimed = {
        let mut timers = lp.timers.borrow(py);
        if timers.is_empty() {
            None
        } else {
            let mut r = if busy { timers.reclaim() } else { Vec::new() };
            let now = now.unwrap_or_else(clock::now);
            timers.pop_due(now + lp.clock_resolution, &mut scratch.fired, &mut r);
            Some(r)
        }
    };
    drop(reclaimed); // decref outside the heap: __del__ may run

    // 5. This generation: what was ready, then I/O, then timers (asyncio's
    // order). An idle loop picks up what arrived while it slept.
    if busy {
        if !scratch.fired.is_empty() {
            append(&mut scratch.batch, &mut scratch.fired);
        }
    } else {
        let mut ready = lp.ready.borrow(py);
        if !scratch.fired.is_empty() {
            append(&mut ready, &mut scratch.fired);
        }
        std::mem::swap(&mut *ready, &mut scratch.batch);
        lp.reset_ready_hint();
    }
    let result = run_batch(slf, &mut scratch.batch);
    if result.is_err() {
        requeue(py, lp, scratch);
    }
    result
}

/// Moves `fired` (in order) to the back of `queue`. A `push_back` per
/// handle: an iteration usually fires one or two, and `VecDeque::extend`'s
/// bulk path cost ~100 instructions for one (callgrind).
#[inline]
fn append(queue: &mut VecDeque<HandleRef>, fired: &mut Vec<HandleRef>) {
    if fired.len() == 1 {
        if let Some(h) = fired.pop() {
            queue.push_back(h);
        }
        return;
    }
    queue.reserve(fired.len());
    for h in fired.drain(..) {
        queue.push_back(h);
    }
}

/// Puts callbacks that did not run back at the front of the ready queue
/// (a BaseException escaped, or polling failed).
fn requeue(py: Python<'_>, lp: &Loop, scratch: &mut Scratch) {
    append(&mut scratch.batch, &mut scratch.fired);
    if scratch.batch.is_empty() {
        return;
    }
    let mut ready = lp.ready.borrow(py);
    while let Some(h) = scratch.batch.pop_back() {
        ready.push_front(h);
    }
}

fn run_batch(slf: &Bound<'_, Loop>, batch: &mut VecDeque<HandleRef>) -> PyResult<()> {
    let py = slf.py();
    let debug = slf.get().is_debug();
    while let Some(h) = batch.pop_front() {
        let handle = h.core();
        if handle.is_cancelled() {
            h.release_ref(py);
            continue;
        }
        let res = if debug {
            run_debug(slf, &h)
        } else {
            handle.run(py, false, &slf.get().spare_context)
        };
        if let Err(err) = res {
            if is_fatal(py, &err) {
                return Err(err);
            }
            pyhelpers::report_callback_error(slf.as_any(), h.bind(py), err)?;
        }
        h.release_ref(py);
    }
    Ok(())
}

/// Debug-mode run: tracks `_current_handle` and warns about slow callbacks.
fn run_debug(slf: &Bound<'_, Loop>, h: &HandleRef) -> PyResult<()> {
    let py = slf.py();
    let lp = slf.get();
    lp.set_current_handle(Some(h.clone_ref(py).into_py()));
    let t0 = clock::now();
    // Keep the callback after running so the slow-callback message names it.
    let res = h.core().run(py, true, &lp.spare_context);
    let dt = clock::now() - t0;
    lp.set_current_handle(None);
    if dt >= lp.slow_callback_duration() {
        pyhelpers::warn_slow(h.bind(py), dt)?;
    }
    res
}

/// Runs iterations until `stop()` is requested.
pub(crate) fn run_forever(slf: &Bound<'_, Loop>) -> PyResult<()> {
    let mut scratch = Scratch::default();
    // Never skip the first poll of a run (readiness that arrived while the
    // loop was stopped must be seen in the first pass, as on asyncio).
    slf.get().set_last_poll(f64::NEG_INFINITY);
    loop {
        run_once(slf, &mut scratch)?;
        if slf.get().is_stopping() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_rounds_up_and_caps() {
        assert_eq!(timeout_ms(0.0), 0);
        assert_eq!(timeout_ms(-5.0), 0);
        assert_eq!(timeout_ms(f64::NAN), 0);
        assert_eq!(timeout_ms(0.0001), 1);
        assert_eq!(timeout_ms(0.0015), 2);
        assert_eq!(timeout_ms(1.0), 1000);
        assert_eq!(timeout_ms(f64::INFINITY), 86_400_000);
        assert_eq!(timeout_ms(1e300), 86_400_000);
    }
}
