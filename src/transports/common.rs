//! Helpers shared by the transport cores: error classification, reporting
//! through the loop's exception handler (asyncio's `_fatal_error` and
//! flow-control messages), debug logging. All cold paths; they call the
//! Python helpers in `ferrio/_helpers.py` so messages match asyncio's.

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::prelude::*;

use crate::event_loop::Loop;
use crate::pyhelpers;

/// KeyboardInterrupt and SystemExit are never reported: they propagate.
pub fn is_fatal(py: Python<'_>, e: &PyErr) -> bool {
    e.is_instance_of::<PyKeyboardInterrupt>(py) || e.is_instance_of::<PySystemExit>(py)
}

/// A cloned reference out of locked state.
pub fn cloned(py: Python<'_>, o: &Option<Py<PyAny>>) -> Option<Py<PyAny>> {
    o.as_ref().map(|o| o.clone_ref(py))
}

pub fn none_or<'py>(py: Python<'py>, o: Option<Py<PyAny>>) -> Bound<'py, PyAny> {
    match o {
        Some(o) => o.into_bound(py),
        None => py.None().into_bound(py),
    }
}

/// The reporting half of asyncio's `_fatal_error` (the caller then
/// force-closes). Returns the exception value for that.
pub fn report_fatal<'py>(
    lp: &Bound<'py, Loop>,
    err: PyErr,
    transport: Option<Py<PyAny>>,
    protocol: Option<Py<PyAny>>,
    message: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let py = lp.py();
    if is_fatal(py, &err) {
        return Err(err);
    }
    let exc = err.into_value(py).into_any().into_bound(py);
    pyhelpers::call_helper(
        py,
        "transport_fatal_error",
        (
            lp,
            none_or(py, transport),
            none_or(py, protocol),
            &exc,
            message,
        ),
    )?;
    Ok(exc)
}

/// Calls `protocol.pause_writing()`/`resume_writing()`; an error goes to
/// the exception handler as asyncio's `_FlowControlMixin` does.
pub fn flow_call(
    lp: &Bound<'_, Loop>,
    proto: Option<Py<PyAny>>,
    transport: Option<Py<PyAny>>,
    method: &str,
) -> PyResult<()> {
    let py = lp.py();
    let proto = none_or(py, proto);
    if let Err(e) = proto.call_method0(method) {
        if is_fatal(py, &e) {
            return Err(e);
        }
        pyhelpers::call_helper(
            py,
            "protocol_call_failed",
            (
                lp,
                none_or(py, transport),
                &proto,
                e.into_value(py),
                format!("protocol.{method}() failed"),
            ),
        )?;
    }
    Ok(())
}

/// Debug-mode log line about a transport (`message` has one `%r`).
pub fn debug_log(
    lp: &Bound<'_, Loop>,
    transport: Option<Py<PyAny>>,
    message: &str,
) -> PyResult<()> {
    let py = lp.py();
    if !lp.get().is_debug() {
        return Ok(());
    }
    pyhelpers::call_helper(py, "transport_debug", (lp, message, none_or(py, transport)))?;
    Ok(())
}

/// asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

/// The lifecycle and flow-control flags every transport core has, with
/// asyncio's transitions. Lives inside the core's state mutex; the methods
/// only decide, the caller performs the effects after unlocking.
pub struct Life {
    /// `close()` or a fatal error started shutting down.
    pub closing: bool,
    /// Scheduled `connection_lost` calls, then writes after it.
    pub conn_lost: u32,
    /// `pause_reading()` is in effect.
    pub paused: bool,
    /// `protocol.pause_writing()` was called and not yet resumed.
    pub protocol_paused: bool,
    pub high_water: usize,
    pub low_water: usize,
}

impl Default for Life {
    fn default() -> Self {
        Life {
            closing: false,
            conn_lost: 0,
            paused: false,
            protocol_paused: false,
            high_water: 64 * 1024,
            low_water: 16 * 1024,
        }
    }
}

impl Life {
    pub fn is_reading(&self) -> bool {
        !self.closing && !self.paused
    }

    /// `close()`: None if already closing; else whether connection_lost is
    /// due now (nothing left to write).
    pub fn close(&mut self, nothing_buffered: bool) -> Option<bool> {
        if self.closing {
            return None;
        }
        self.closing = true;
        if nothing_buffered {
            self.conn_lost += 1;
        }
        Some(nothing_buffered)
    }

    /// `_force_close()`: None if connection_lost is already scheduled; else
    /// whether reading must stop (it was not closing yet).
    pub fn force_close(&mut self) -> Option<bool> {
        if self.conn_lost > 0 {
            return None;
        }
        let stop_reading = !self.closing;
        self.closing = true;
        self.conn_lost += 1;
        Some(stop_reading)
    }

    /// `pause_reading()`: whether reading was on (and is now paused).
    pub fn pause_reading(&mut self) -> bool {
        if !self.is_reading() {
            return false;
        }
        self.paused = true;
        true
    }

    /// `resume_reading()`: whether it was paused (and may resume).
    pub fn resume_reading(&mut self) -> bool {
        if self.closing || !self.paused {
            return false;
        }
        self.paused = false;
        true
    }

    /// Flow control: whether `pause_writing()` (pause) or
    /// `resume_writing()` (!pause) must be called for `size` buffered.
    pub fn flow(&mut self, size: usize, pause: bool) -> bool {
        if pause {
            if size <= self.high_water || self.protocol_paused {
                return false;
            }
            self.protocol_paused = true;
        } else {
            if !self.protocol_paused || size > self.low_water {
                return false;
            }
            self.protocol_paused = false;
        }
        true
    }

    /// A write after the connection was lost: None if not lost, else
    /// whether to log asyncio's warning.
    pub fn lost_write(&mut self) -> Option<bool> {
        if self.conn_lost == 0 {
            return None;
        }
        let warn = self.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES;
        self.conn_lost += 1;
        Some(warn)
    }
}

/// Effects of `close()`/`_force_close()` once decided: stop watching the
/// sides asked for and schedule `core._call_connection_lost(exc)`.
pub fn schedule_lost(
    core: &Bound<'_, PyAny>,
    lp: &Loop,
    fd: std::os::fd::RawFd,
    unwatch_read: bool,
    unwatch_write: bool,
    exc: Bound<'_, PyAny>,
) -> PyResult<()> {
    let py = core.py();
    if unwatch_write {
        lp.unwatch(py, fd, crate::reactor::Side::Write);
    }
    if unwatch_read {
        lp.unwatch(py, fd, crate::reactor::Side::Read);
    }
    let cb = core.getattr("_call_connection_lost")?;
    lp.soon(&cb, &pyo3::types::PyTuple::new(py, [exc])?)
}

/// Effects of `close()` once `Life::close` allowed it: stop reading now
/// and, if nothing is left to flush (`lost`), schedule
/// `core._call_connection_lost(None)` (else the last flush does).
pub fn closed(
    core: &Bound<'_, PyAny>,
    lp: &Loop,
    fd: std::os::fd::RawFd,
    lost: bool,
) -> PyResult<()> {
    let py = core.py();
    lp.unwatch(py, fd, crate::reactor::Side::Read);
    if lost {
        schedule_lost(core, lp, fd, false, true, py.None().into_bound(py))?;
    }
    Ok(())
}

/// Logs asyncio's "socket.send() raised exception." warning.
pub fn warn_lost_write(py: Python<'_>, warn: bool) -> PyResult<()> {
    if warn {
        pyhelpers::call_helper(py, "warn_conn_lost_writes", ())?;
    }
    Ok(())
}

/// `type(obj).__name__` (empty if even that fails).
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// asyncio's TypeError for `write`/`sendto` data that is not bytes,
/// bytearray or memoryview (`{type(data).__name__!r}`: single quotes).
pub fn not_bytes_like(data: &Bound<'_, PyAny>) -> PyErr {
    pyo3::exceptions::PyTypeError::new_err(format!(
        "data argument must be a bytes-like object, not '{}'",
        type_name(data)
    ))
}

#[cfg(test)]
mod tests {
    use super::Life;

    #[test]
    fn close_with_and_without_buffered_data() {
        let mut l = Life::default();
        assert_eq!(l.close(false), Some(false)); // data left: lost later
        assert_eq!(l.conn_lost, 0);
        assert_eq!(l.close(true), None); // second close is a no-op
        assert_eq!(l.force_close(), Some(false)); // already closing: reader gone
        assert_eq!(l.conn_lost, 1);
        assert_eq!(l.force_close(), None);

        let mut l = Life::default();
        assert_eq!(l.close(true), Some(true));
        assert_eq!(l.conn_lost, 1);
        assert!(!l.is_reading());
    }

    #[test]
    fn force_close_stops_reading_once() {
        let mut l = Life::default();
        assert_eq!(l.force_close(), Some(true));
        assert!(l.closing && !l.is_reading());
        assert_eq!(l.lost_write(), Some(false));
        for _ in 0..3 {
            l.lost_write();
        }
        assert_eq!(l.lost_write(), Some(true)); // asyncio warns from the 5th
    }

    #[test]
    fn pause_resume_reading_transitions() {
        let mut l = Life::default();
        assert!(l.pause_reading());
        assert!(!l.pause_reading());
        assert!(l.resume_reading());
        assert!(!l.resume_reading());
        l.paused = true;
        l.closing = true;
        assert!(!l.resume_reading()); // never resumes a closing transport
    }

    #[test]
    fn flow_control_water_marks() {
        let mut l = Life {
            high_water: 100,
            low_water: 10,
            ..Life::default()
        };
        assert!(!l.flow(100, true)); // at the mark: not above it
        assert!(l.flow(101, true));
        assert!(!l.flow(500, true)); // already paused
        assert!(!l.flow(11, false));
        assert!(l.flow(10, false));
        assert!(!l.flow(0, false)); // already resumed
    }
}
