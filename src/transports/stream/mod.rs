//! `StreamTransport`: the native core of ferrio's socket transport (TCP and
//! Unix stream sockets), asyncio's `_SelectorSocketTransport` with the
//! per-packet work in Rust.
//!
//! The Python class `ferrio._transports.SocketTransport` (a subclass of
//! `asyncio.Transport`, so `isinstance` checks hold) owns one of these and
//! forwards to it; its hot methods (`write`, `writelines`, `is_closing`) are
//! C method descriptors on that class that call this object's methods
//! (fastmethods.rs), so a protocol's `transport.write(data)` goes straight
//! to Rust.
//!
//! Per readable event: one `recv` into a new `bytes` object and one call of
//! the protocol's cached `data_received` (or `get_buffer`/`recv_into`/
//! `buffer_updated` for a `BufferedProtocol`; or, for exactly asyncio's
//! `StreamReaderProtocol`, a `recv` straight into its reader's buffer and
//! no Python frame: streamfeed.rs). Per write: one `send` when nothing is
//! queued; what the kernel does not take is queued (see writebuf.rs) and
//! flushed with `writev` when the socket is writable.
//!
//! State machine (asyncio's, field for field): `closing` once `close()` or a
//! fatal error started shutting down; `conn_lost` counts scheduled
//! `connection_lost` calls (and writes after it); reading is on while
//! `!closing && !paused`; `eof` after `write_eof()`. The reader is
//! registered with the loop exactly while reading is on (after the
//! connection was made); the writer exactly while the write queue is
//! non-empty.
//!
//! Locking: all mutable state sits in one GIL cell (src/gilcell.rs: no
//! atomic per access; a mutex on free-threaded builds) that is never
//! borrowed while Python code runs (a protocol callback may re-enter the
//! transport), and Python objects are dropped only after the borrow ends.
//!
//! Files: this one has the state, writes, flow control, close/abort and
//! the Python-facing methods; `read.rs` the read path (one readable event:
//! plain, buffered, fed to a stream reader, EOF).

mod read;

use std::os::fd::RawFd;

use crate::gilcell::GilCell;
use crate::oserror::OsError;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};
use pyo3::{PyTraverseError, PyVisit};

use super::buffer::{self, RawBuf};
use super::common::{self, cloned, none_or, report_fatal, Life};
use super::streamfeed::Feed;
use super::writebuf::WriteBuffer;
use crate::event_loop::Loop;
use crate::reactor::Side;

static BUFFERED_PROTOCOL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The protocol and its bound methods, cached when it is set.
#[derive(Default)]
struct Proto {
    obj: Option<Py<PyAny>>,
    buffered: bool,
    /// Exactly asyncio's `StreamReaderProtocol`: reads feed its reader
    /// natively (streamfeed.rs).
    feed: Option<Feed>,
    data_received: Option<Py<PyAny>>,
    get_buffer: Option<Py<PyAny>>,
    buffer_updated: Option<Py<PyAny>>,
}

impl Proto {
    fn new(p: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = p.py();
        let bp = BUFFERED_PROTOCOL.import(py, "asyncio", "BufferedProtocol")?;
        let buffered = p.is_instance(bp)?;
        let method = |name: &str| p.getattr(name).ok().map(Bound::unbind);
        Ok(if buffered {
            Proto {
                obj: Some(p.clone().unbind()),
                buffered,
                feed: None,
                data_received: None,
                get_buffer: method("get_buffer"),
                buffer_updated: method("buffer_updated"),
            }
        } else {
            Proto {
                obj: Some(p.clone().unbind()),
                buffered,
                feed: Feed::new(p),
                data_received: method("data_received"),
                get_buffer: None,
                buffer_updated: None,
            }
        })
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        for o in [
            &self.obj,
            &self.data_received,
            &self.get_buffer,
            &self.buffer_updated,
        ]
        .into_iter()
        .flatten()
        {
            visit.call(o)?;
        }
        if let Some(f) = &self.feed {
            f.traverse(visit)?;
        }
        Ok(())
    }
}

struct State {
    proto: Proto,
    protocol_connected: bool,
    /// The Python socket object; None once connection_lost ran.
    sock: Option<Py<PyAny>>,
    server: Option<Py<PyAny>>,
    /// The Python `SocketTransport` wrapping this core.
    transport: Option<Py<PyAny>>,
    empty_waiter: Option<Py<PyAny>>,
    wbuf: WriteBuffer,
    life: Life,
    eof: bool,
    /// The last read filled the scratch buffer: read big ones in place.
    /// Size of the last read if it was big (>= read::BIG_READ), else 0: the next
    /// read goes straight into a `bytes` sized by it (buffer::recv_hinted).
    read_hint: usize,
}

#[pyclass(module = "ferrio._ferrio", name = "StreamTransport", frozen)]
pub struct StreamTransport {
    fd: RawFd,
    lp: Py<Loop>,
    st: GilCell<State>,
}

impl StreamTransport {
    fn lp(&self) -> &Loop {
        self.lp.get()
    }

    /// asyncio's `_fatal_error`: report (OSErrors only in debug mode), then
    /// force-close. KeyboardInterrupt/SystemExit are not reported; they
    /// propagate to the loop.
    fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        let (transport, protocol) = {
            let st = slf.get().st.borrow(py);
            (cloned(py, &st.transport), cloned(py, &st.proto.obj))
        };
        let exc = report_fatal(slf.get().lp.bind(py), err, transport, protocol, message)?;
        Self::force_close(slf, exc)
    }

    /// asyncio's `_force_close(exc)`.
    fn force_close(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let (dropped, had_buffer, stop_reading) = {
            let mut st = me.st.borrow(py);
            let Some(stop) = st.life.force_close() else {
                return Ok(());
            };
            let had = !st.wbuf.is_empty();
            (st.wbuf.take_all(), had, stop)
        };
        drop(dropped);
        common::schedule_lost(slf.as_any(), me.lp(), me.fd, stop_reading, had_buffer, exc)
    }

    /// `pause_writing()` (pause) or `resume_writing()` if the buffer
    /// crossed a water mark.
    fn flow(slf: &Bound<'_, Self>, pause: bool) -> PyResult<()> {
        let py = slf.py();
        let (proto, transport) = {
            let mut st = slf.get().st.borrow(py);
            let size = st.wbuf.len();
            if !st.life.flow(size, pause) {
                return Ok(());
            }
            (cloned(py, &st.proto.obj), cloned(py, &st.transport))
        };
        let method = if pause {
            "pause_writing"
        } else {
            "resume_writing"
        };
        common::flow_call(slf.get().lp.bind(py), proto, transport, method)
    }

    fn debug_log(slf: &Bound<'_, Self>, message: &str) -> PyResult<()> {
        let py = slf.py();
        let transport = cloned(py, &slf.get().st.borrow(py).transport);
        common::debug_log(slf.get().lp.bind(py), transport, message)
    }

    /// `_read_ready()` as the loop calls it (`Loop::watch_native`).
    fn read_ready_native(slf: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::_read_ready(slf.cast::<Self>()?)
    }

    fn shutdown_write(&self) -> PyResult<()> {
        // SAFETY: plain syscall on our fd.
        if unsafe { libc::shutdown(self.fd, libc::SHUT_WR) } != 0 {
            return Err(OsError::last().into());
        }
        Ok(())
    }

    /// Sends `data` now if nothing is queued, queueing what the kernel did
    /// not take. `obj` is the `bytes` object `data` borrows from, if any.
    fn write_slice(
        slf: &Bound<'_, Self>,
        data: &[u8],
        obj: Option<&Bound<'_, PyBytes>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let mut st = me.st.borrow(py);
        if obj.is_some() {
            // `bytes` writes are checked here, under the one lock; other
            // buffers were checked before their view was taken.
            Self::check_writable_locked(&st, "write")?;
        }
        if let Some(warn) = st.life.lost_write() {
            drop(st);
            return common::warn_lost_write(py, warn);
        }
        let mut sent = 0;
        if st.wbuf.is_empty() {
            match buffer::send(me.fd, data) {
                Ok(n) => sent = n,
                Err(e) => {
                    drop(st);
                    return Self::fatal_error(
                        slf,
                        e.into(),
                        "Fatal write error on socket transport",
                    );
                }
            }
            if sent == data.len() {
                return Ok(());
            }
            drop(st);
            // Not all was written: watch for writability.
            let cb = slf.getattr("_write_ready")?;
            me.lp().watch(me.fd, Side::Write, &cb)?;
            st = me.st.borrow(py);
        }
        match obj {
            Some(b) => st.wbuf.push_bytes(py, b.clone().unbind(), sent),
            None => st.wbuf.push_copy(&data[sent..]),
        }
        drop(st);
        Self::flow(slf, true)
    }

    fn check_writable(&self, py: Python<'_>, method: &str) -> PyResult<()> {
        Self::check_writable_locked(&self.st.borrow(py), method)
    }

    /// asyncio's `write()` preconditions (after `write_eof()`, during
    /// sendfile), checked under the caller's lock.
    fn check_writable_locked(st: &State, method: &str) -> PyResult<()> {
        if st.eof {
            return Err(PyRuntimeError::new_err(format!(
                "Cannot call {method}() after write_eof()"
            )));
        }
        if st.empty_waiter.is_some() {
            return Err(PyRuntimeError::new_err(format!(
                "unable to {method}; sendfile is in progress"
            )));
        }
        Ok(())
    }
}

#[pymethods]
impl StreamTransport {
    /// `StreamTransport(loop, transport, sock, protocol, server)`: the core
    /// of `transport` (the Python wrapper) for the connected stream socket
    /// `sock`. Reading starts with `_start_reading()`.
    #[new]
    fn new(
        lp: &Bound<'_, PyAny>,
        transport: &Bound<'_, PyAny>,
        sock: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        server: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let lp = lp.cast::<Loop>()?.clone().unbind();
        let fd: RawFd = sock.call_method0("fileno")?.extract()?;
        Ok(StreamTransport {
            fd,
            lp,
            st: GilCell::new(State {
                proto: Proto::new(protocol)?,
                protocol_connected: true,
                sock: Some(sock.clone().unbind()),
                server: server.filter(|s| !s.is_none()).map(|s| s.clone().unbind()),
                transport: Some(transport.clone().unbind()),
                empty_waiter: None,
                wbuf: WriteBuffer::default(),
                life: Life::default(),
                eof: false,
                read_hint: 0,
            }),
        })
    }

    /// The socket's file descriptor.
    #[getter]
    fn fd(&self) -> RawFd {
        self.fd
    }

    /// Registers the reader if reading is on (asyncio's `_add_reader`).
    fn _start_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        if !me.st.borrow(py).life.is_reading() {
            return Ok(());
        }
        let cb = slf.getattr("_read_ready")?;
        me.lp()
            .watch_native(me.fd, Side::Read, &cb, Self::read_ready_native)
    }

    /// The fd is readable: one read, delivered to the protocol.
    fn _read_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        enum How {
            Buffered(Option<Py<PyAny>>, Option<Py<PyAny>>),
            Plain(Option<Py<PyAny>>, usize, Option<Feed>),
        }
        let how = {
            let st = slf.get().st.borrow(py);
            if st.life.conn_lost > 0 {
                return Ok(());
            }
            if st.proto.buffered {
                How::Buffered(
                    cloned(py, &st.proto.get_buffer),
                    cloned(py, &st.proto.buffer_updated),
                )
            } else {
                How::Plain(
                    cloned(py, &st.proto.data_received),
                    st.read_hint,
                    st.proto.feed.as_ref().map(|f| f.clone_ref(py)),
                )
            }
        };
        match how {
            How::Buffered(get, updated) => Self::read_buffered(slf, get, updated),
            How::Plain(cb, hint, feed) => Self::read_plain(slf, cb, hint, feed),
        }
    }

    /// The fd is writable: flush the queue.
    fn _write_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let res = {
            let mut st = me.st.borrow(py);
            if st.life.conn_lost > 0 {
                return Ok(());
            }
            st.wbuf.flush(py, me.fd)
        };
        match res {
            Err(e) => {
                me.lp().unwatch(py, me.fd, Side::Write);
                let dropped = me.st.borrow(py).wbuf.take_all();
                drop(dropped);
                let err: PyErr = e.into();
                let exc = err.clone_ref(py);
                Self::fatal_error(slf, err, "Fatal write error on socket transport")?;
                let waiter = cloned(py, &me.st.borrow(py).empty_waiter);
                if let Some(w) = waiter {
                    w.bind(py)
                        .call_method1("set_exception", (exc.into_value(py),))?;
                }
                Ok(())
            }
            Ok((_, done)) => {
                drop(done);
                Self::flow(slf, false)?; // may queue more
                let (empty, waiter, closing, eof) = {
                    let st = me.st.borrow(py);
                    (
                        st.wbuf.is_empty(),
                        cloned(py, &st.empty_waiter),
                        st.life.closing,
                        st.eof,
                    )
                };
                if !empty {
                    return Ok(());
                }
                me.lp().unwatch(py, me.fd, Side::Write);
                if let Some(w) = waiter {
                    w.bind(py).call_method1("set_result", (py.None(),))?;
                }
                if closing {
                    Self::_call_connection_lost(slf, py.None().into_bound(py))?;
                } else if eof {
                    me.shutdown_write()?;
                }
                Ok(())
            }
        }
    }

    pub(crate) fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(b) = data.cast::<PyBytes>() {
            let bytes = b.as_bytes();
            if bytes.is_empty() {
                return slf.get().check_writable(slf.py(), "write");
            }
            // write_slice checks the preconditions under its lock.
            return Self::write_slice(slf, bytes, Some(b));
        }
        if !(data.is_instance_of::<PyByteArray>() || data.is_instance_of::<PyMemoryView>()) {
            return Err(common::not_bytes_like(data));
        }
        slf.get().check_writable(slf.py(), "write")?;
        let view = match RawBuf::get(data) {
            Ok(v) => v,
            // A non-contiguous memoryview (`mv[::2]`): asyncio hands it to
            // `sock.send` (or, 3.12+, `sendmsg` later), which refuses it
            // with BufferError, a fatal write error (logged, connection
            // closed), not an exception from write(). Same here.
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyBufferError>(slf.py()) => {
                return Self::fatal_error(slf, e, "Fatal write error on socket transport");
            }
            Err(e) => return Err(e),
        };
        if view.len() == 0 {
            return Ok(());
        }
        Self::write_slice(slf, view.as_slice(), None)
    }

    /// `writelines(list_of_data)`: the pieces joined, then one `write`.
    pub(crate) fn writelines(
        slf: &Bound<'_, Self>,
        list_of_data: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        slf.get().check_writable(slf.py(), "writelines")?;
        let joined = PyBytes::new(py, b"").call_method1("join", (list_of_data,))?;
        Self::write(slf, &joined)
    }

    fn write_eof(&self, py: Python<'_>) -> PyResult<()> {
        let shut = {
            let mut st = self.st.borrow(py);
            if st.life.closing || st.eof {
                return Ok(());
            }
            st.eof = true;
            st.wbuf.is_empty()
        };
        if shut {
            self.shutdown_write()?;
        }
        Ok(())
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    pub(crate) fn is_closing(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).life.closing
    }

    fn is_reading(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).life.is_reading()
    }

    fn pause_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        if !me.st.borrow(py).life.pause_reading() {
            return Ok(());
        }
        me.lp().unwatch(slf.py(), me.fd, Side::Read);
        Self::debug_log(slf, "%r pauses reading")
    }

    fn resume_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        if !slf.get().st.borrow(py).life.resume_reading() {
            return Ok(());
        }
        Self::_start_reading(slf)?;
        Self::debug_log(slf, "%r resumes reading")
    }

    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let lost = {
            let mut st = me.st.borrow(py);
            let empty = st.wbuf.is_empty();
            match st.life.close(empty) {
                Some(lost) => lost,
                None => return Ok(()),
            }
        };
        common::closed(slf.as_any(), me.lp(), me.fd, lost)
    }

    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::force_close(slf, slf.py().None().into_bound(slf.py()))
    }

    fn _force_close(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::force_close(slf, exc.clone())
    }

    /// `_fatal_error(exc, message)` as asyncio's transports have it.
    #[pyo3(signature = (exc, message = "Fatal error on transport"))]
    fn _fatal_error(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        Self::fatal_error(slf, PyErr::from_value(exc.clone()), message)
    }

    /// Runs `protocol.connection_lost(exc)`, then closes the socket and
    /// drops the protocol, the server reference and the wrapper.
    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let (proto, connected) = {
            let st = me.st.borrow(py);
            (cloned(py, &st.proto.obj), st.protocol_connected)
        };
        let res = match (connected, proto) {
            (true, Some(p)) => p
                .bind(py)
                .call_method1("connection_lost", (&exc,))
                .map(drop),
            _ => Ok(()),
        };
        // finally:
        let (sock, proto, server, transport, waiter) = {
            let mut st = me.st.borrow(py);
            (
                st.sock.take(),
                std::mem::take(&mut st.proto),
                st.server.take(),
                st.transport.take(),
                cloned(py, &st.empty_waiter),
            )
        };
        let mut cleanup: PyResult<()> = Ok(());
        if let Some(s) = &sock {
            cleanup = s.bind(py).call_method0("close").map(drop);
        }
        if let Some(server) = &server {
            let r = if py.version_info() >= (3, 13) {
                server
                    .bind(py)
                    .call_method1("_detach", (none_or(py, cloned(py, &transport)),))
            } else {
                server.bind(py).call_method0("_detach")
            };
            if cleanup.is_ok() {
                cleanup = r.map(drop);
            }
        }
        if let Some(w) = waiter {
            let exc = pyo3::exceptions::PyConnectionError::new_err("Connection is closed by peer");
            let r = w
                .bind(py)
                .call_method1("set_exception", (exc.into_value(py),));
            if cleanup.is_ok() {
                cleanup = r.map(drop);
            }
        }
        drop((sock, proto, server, transport));
        res.and(cleanup)
    }

    fn set_protocol(&self, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = protocol.py();
        let new = Proto::new(protocol)?;
        let old = {
            let mut st = self.st.borrow(py);
            st.protocol_connected = true;
            std::mem::replace(&mut st.proto, new)
        };
        drop(old);
        Ok(())
    }

    fn get_protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        cloned(py, &self.st.borrow(py).proto.obj)
    }

    fn get_write_buffer_size(&self, py: Python<'_>) -> usize {
        self.st.borrow(py).wbuf.len()
    }

    fn get_write_buffer_limits(&self, py: Python<'_>) -> (usize, usize) {
        let st = self.st.borrow(py);
        (st.life.low_water, st.life.high_water)
    }

    /// Stores validated limits (the wrapper applies asyncio's defaults and
    /// checks), then pauses the protocol if the queue is already too big.
    fn _set_write_buffer_limits(slf: &Bound<'_, Self>, high: usize, low: usize) -> PyResult<()> {
        let py = slf.py();
        {
            let mut st = slf.get().st.borrow(py);
            st.life.high_water = high;
            st.life.low_water = low;
        }
        Self::flow(slf, true)
    }

    fn _make_empty_waiter(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.st.borrow(py).empty_waiter.is_some() {
            return Err(PyRuntimeError::new_err("Empty waiter is already set"));
        }
        let fut = self.lp.bind(py).call_method0("create_future")?;
        let (empty, old) = {
            let mut st = self.st.borrow(py);
            let old = st.empty_waiter.replace(fut.clone().unbind());
            (st.wbuf.is_empty(), old)
        };
        drop(old); // normally None; a future's finaliser may run Python code
        if empty {
            fut.call_method1("set_result", (py.None(),))?;
        }
        Ok(fut.unbind())
    }

    fn _reset_empty_waiter(&self, py: Python<'_>) {
        let old = self.st.borrow(py).empty_waiter.take();
        drop(old);
    }

    #[getter]
    fn _sock(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        cloned(py, &self.st.borrow(py).sock)
    }

    #[getter]
    fn _server(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        cloned(py, &self.st.borrow(py).server)
    }

    #[getter]
    fn _empty_waiter(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        cloned(py, &self.st.borrow(py).empty_waiter)
    }

    #[getter]
    fn _closing(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).life.closing
    }

    #[getter]
    fn _conn_lost(&self, py: Python<'_>) -> u32 {
        self.st.borrow(py).life.conn_lost
    }

    #[getter]
    fn _paused(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).life.paused
    }

    #[getter]
    fn _eof(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).eof
    }

    #[getter]
    fn _protocol_paused(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).life.protocol_paused
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.lp)?;
        // The GC must never block (under-reporting is safe). SAFETY: the
        // collector runs holding the GIL.
        if let Some(st) = unsafe { self.st.try_borrow_unattached() } {
            st.proto.traverse(&visit)?;
            for o in [&st.sock, &st.server, &st.transport, &st.empty_waiter]
                .into_iter()
                .flatten()
            {
                visit.call(o)?;
            }
            st.wbuf.traverse(&visit)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        // SAFETY: tp_clear runs holding the GIL.
        let taken = unsafe { self.st.try_borrow_unattached() }.map(|mut st| {
            (
                std::mem::take(&mut st.proto),
                st.sock.take(),
                st.server.take(),
                st.transport.take(),
                st.empty_waiter.take(),
                st.wbuf.take_all(),
            )
        });
        drop(taken);
    }
}
