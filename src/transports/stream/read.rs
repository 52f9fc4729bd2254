//! The read path of [`StreamTransport`]: what one readable event does.
//!
//! - a plain `Protocol`: one `recv` into a new `bytes` (small reads through
//!   the per-thread scratch buffer, big ones straight into a `bytes` sized
//!   by the last read) and one call of the cached `data_received`;
//! - exactly asyncio's `StreamReaderProtocol`: the read lands in its
//!   reader's buffer, no Python frame (streamfeed.rs); anything unusual
//!   falls back to the plain path with the bytes already read;
//! - a `BufferedProtocol`: `get_buffer(-1)`, `recv_into` that buffer,
//!   `buffer_updated(n)`;
//! - EOF: asyncio's `_read_ready__on_eof` (`eof_received` decides whether
//!   the transport stays open for writing).
//!
//! Errors raised by the protocol become the transport's fatal error with
//! asyncio's messages; no lock is held while Python runs.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use super::super::buffer::{self, RawBuf, Read};
use super::super::common::{cloned, none_or};
use super::super::streamfeed::{Fed, Feed};
use super::StreamTransport;
use crate::reactor::Side;

/// asyncio's `_SelectorTransport.max_size`: the most one `recv` asks for.
const MAX_SIZE: usize = 256 * 1024;
/// Reads up to this size go through the per-thread scratch buffer
/// (`buffer::with_scratch`).
const SCRATCH_SIZE: usize = 64 * 1024;
/// After a read of at least this size, the next read goes straight into a
/// `bytes` object (copying big chunks out of the scratch costs more than
/// the allocation it saves).
pub(super) const BIG_READ: usize = 8 * 1024;

impl StreamTransport {
    pub(super) fn read_plain(
        slf: &Bound<'_, Self>,
        cb: Option<Py<PyAny>>,
        hint: usize,
        feed: Option<Feed>,
    ) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let mut data = None;
        if let Some(target) = feed.as_ref().and_then(|f| f.target(py)) {
            let res = if hint >= BIG_READ {
                target.recv_big(me.fd, hint, MAX_SIZE)
            } else {
                buffer::with_scratch(SCRATCH_SIZE, |s| target.recv_small(me.fd, s))
            };
            match res {
                Ok(Fed::Read(Read::WouldBlock)) => return Ok(()),
                Ok(Fed::Read(Read::Eof)) => return Self::on_eof(slf),
                Ok(Fed::Read(Read::Data(n))) => {
                    me.set_hint(py, hint, n);
                    return match target.wake() {
                        Ok(()) => Ok(()),
                        Err(e) => Self::fatal_error(
                            slf,
                            e,
                            "Fatal error: protocol.data_received() call failed.",
                        ),
                    };
                }
                Ok(Fed::Ordinary(d)) => data = d,
                Err(e) => return Self::fatal_error(slf, e, "Fatal read error on socket transport"),
            }
        }
        let data = match data {
            Some(d) => d,
            None => {
                let res = if hint >= BIG_READ {
                    buffer::recv_hinted(py, me.fd, hint, MAX_SIZE)
                } else {
                    buffer::with_scratch(SCRATCH_SIZE, |s| {
                        buffer::recv_bytes(py, me.fd, MAX_SIZE, s, false)
                    })
                };
                match res {
                    Ok(Read::WouldBlock) => return Ok(()),
                    Ok(Read::Eof) => return Self::on_eof(slf),
                    Ok(Read::Data(d)) => d,
                    Err(e) => {
                        return Self::fatal_error(slf, e, "Fatal read error on socket transport")
                    }
                }
            }
        };
        me.set_hint(py, hint, data.len().unwrap_or(0));
        let res = match cb {
            Some(cb) => cb.bind(py).call1((data,)),
            None => {
                let proto = cloned(py, &me.st.borrow(py).proto.obj);
                none_or(py, proto).call_method1("data_received", (data,))
            }
        };
        if let Err(e) = res {
            return Self::fatal_error(slf, e, "Fatal error: protocol.data_received() call failed.");
        }
        Ok(())
    }

    /// Switches between scratch and in-place reads by the last size.
    pub(super) fn set_hint(&self, py: Python<'_>, hint: usize, n: usize) {
        let next = if n >= BIG_READ { n } else { 0 };
        if next != hint {
            self.st.borrow(py).read_hint = next;
        }
    }

    pub(super) fn read_buffered(
        slf: &Bound<'_, Self>,
        get_buffer: Option<Py<PyAny>>,
        updated: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let proto = || none_or(py, cloned(py, &me.st.borrow(py).proto.obj));
        let got = match &get_buffer {
            Some(f) => f.bind(py).call1((-1,)),
            None => proto().call_method1("get_buffer", (-1,)),
        };
        let buf = match got.and_then(|b| {
            if b.len()? == 0 {
                Err(PyRuntimeError::new_err(
                    "get_buffer() returned an empty buffer",
                ))
            } else {
                Ok(b)
            }
        }) {
            Ok(b) => b,
            Err(e) => {
                return Self::fatal_error(slf, e, "Fatal error: protocol.get_buffer() call failed.")
            }
        };
        let n = match RawBuf::recv_target(&buf, "recv_into")
            .and_then(|view| buffer::recv(me.fd, view.as_mut_ptr(), view.len()))
        {
            Ok(None) => return Ok(()),
            Ok(Some(0)) => return Self::on_eof(slf),
            Ok(Some(n)) => n,
            Err(e) => return Self::fatal_error(slf, e, "Fatal read error on socket transport"),
        };
        drop(buf);
        let res = match &updated {
            Some(f) => f.bind(py).call1((n,)),
            None => proto().call_method1("buffer_updated", (n,)),
        };
        if let Err(e) = res {
            return Self::fatal_error(
                slf,
                e,
                "Fatal error: protocol.buffer_updated() call failed.",
            );
        }
        Ok(())
    }

    /// asyncio's `_read_ready__on_eof`.
    pub(super) fn on_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        Self::debug_log(slf, "%r received EOF")?;
        let proto = none_or(py, cloned(py, &slf.get().st.borrow(py).proto.obj));
        let keep_open = match proto
            .call_method0("eof_received")
            .and_then(|r| r.is_truthy())
        {
            Ok(k) => k,
            Err(e) => {
                return Self::fatal_error(
                    slf,
                    e,
                    "Fatal error: protocol.eof_received() call failed.",
                )
            }
        };
        if keep_open {
            // The protocol may still write, but nothing more can be read.
            slf.get().lp().unwatch(py, slf.get().fd, Side::Read);
            Ok(())
        } else {
            Self::close(slf)
        }
    }
}
