//! `DatagramTransport`: the native core of ferrio's UDP (and Unix datagram)
//! transport, asyncio's `_SelectorDatagramTransport` with the per-datagram
//! work in Rust.
//!
//! Per readable event: up to `READ_BATCH` datagrams (asyncio reads one),
//! each one `recvfrom` into a per-thread buffer, a `bytes` of the
//! datagram's size, the sender's address built as Python's socket module
//! builds it (`getnameinfo(NI_NUMERICHOST)`, so scoped IPv6 addresses read
//! the same), and one call of the cached `datagram_received`; the batch
//! ends early where asyncio would stop reading (closed, paused, an error).
//! Sockets of other families use the socket object's own `recvfrom`. Per
//! `sendto`: connected sockets `send` natively; unconnected inet ones
//! `sendto(2)` natively when the address is a numeric tuple
//! (`SockAddr::from_python`, or the sender-address cache in addrcache.rs),
//! and call the socket object's `sendto` otherwise (it parses every
//! address form Python accepts). Datagrams the kernel refuses with EAGAIN
//! wait in a queue, flushed in order when the socket is writable.
//!
//! Version differences follow the running Python: 3.13+ sends empty
//! datagrams and counts 8 header bytes per queued datagram (`header`).
//!
//! The state is a GIL cell (src/gilcell.rs), as the stream transport's:
//! never borrowed while Python code runs (no call, no decref that may free
//! an object, no `if let`/`match` on a borrow whose arms call Python).
//! Until 2026-12-05 it was a `parking_lot` mutex: 4-5 locked
//! instruction pairs per `sendto`.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use crate::oserror::{OsError, OsResult};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};
use pyo3::{PyTraverseError, PyVisit};

use super::addrcache::AddrCache;
use super::buffer::RawBuf;
use super::common::{self, cloned, is_fatal, none_or, report_fatal, Life};
use super::sockaddr::{self, SockAddr};
use crate::event_loop::Loop;
use crate::gilcell::GilCell;
use crate::reactor::Side;

/// asyncio's `max_size` for datagram reads.
const MAX_SIZE: usize = 256 * 1024;
/// Datagrams read per readiness event at most (libuv's figure, which
/// uvloop inherits). asyncio reads one per event; a server under load then
/// pays an `epoll_wait` per datagram. The cap keeps one busy socket from
/// starving the loop's other callbacks.
const READ_BATCH: usize = 32;

#[derive(Default)]
struct Proto {
    obj: Option<Py<PyAny>>,
    datagram_received: Option<Py<PyAny>>,
}

struct State {
    proto: Proto,
    sock: Option<Py<PyAny>>,
    transport: Option<Py<PyAny>>,
    /// The default (connected) address given at creation, if any.
    address: Option<Py<PyAny>>,
    queue: VecDeque<(Py<PyBytes>, Option<Py<PyAny>>)>,
    queued: usize,
    life: Life,
}

#[pyclass(module = "ferrio._ferrio", name = "DatagramTransport", frozen)]
pub struct DatagramTransport {
    fd: RawFd,
    lp: Py<Loop>,
    /// AF_INET/AF_INET6: addresses are built and parsed natively.
    inet: bool,
    /// The socket's family (for parsing `sendto` addresses).
    family: i32,
    /// Recent senders' addresses (inet only; see addrcache.rs).
    addrs: GilCell<AddrCache>,
    /// `extra['peername']` was set (the socket is connected).
    connected: bool,
    /// 3.13+: empty datagrams are sent, queued datagrams count 8 more bytes.
    header: usize,
    st: GilCell<State>,
}

fn new_proto(p: &Bound<'_, PyAny>) -> Proto {
    Proto {
        obj: Some(p.clone().unbind()),
        datagram_received: p.getattr("datagram_received").ok().map(Bound::unbind),
    }
}

/// `send(2)` of one datagram on a connected socket: Ok(false) if it would
/// block.
fn send_datagram(fd: RawFd, data: &[u8]) -> OsResult<bool> {
    // SAFETY: `data` is valid for its length.
    let r = unsafe { libc::send(fd, data.as_ptr() as *const libc::c_void, data.len(), 0) };
    if r < 0 {
        let e = OsError::last();
        return match e.errno() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(false),
            _ => Err(e),
        };
    }
    Ok(true)
}

/// Outcome of one send attempt.
enum Sent {
    Done,
    WouldBlock,
}

impl DatagramTransport {
    /// `_read_ready()` as the loop calls it (`Loop::watch_native`).
    fn read_ready_native(slf: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::_read_ready(slf.cast::<Self>()?)
    }

    fn lp(&self) -> &Loop {
        self.lp.get()
    }

    fn send_one(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        addr: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Sent> {
        if self.connected {
            let view = RawBuf::get(data)?;
            return Ok(if send_datagram(self.fd, view.as_slice())? {
                Sent::Done
            } else {
                Sent::WouldBlock
            });
        }
        if let Some(sa) = addr.and_then(|a| self.native_address(py, a)) {
            let view = RawBuf::get(data)?;
            return Ok(match sa.sendto(self.fd, view.as_slice())? {
                Some(_) => Sent::Done,
                None => Sent::WouldBlock,
            });
        }
        let sock = none_or(py, cloned(py, &self.st.borrow(py).sock));
        let addr = match addr {
            Some(a) => a.clone(),
            None => py.None().into_bound(py),
        };
        match sock.call_method1(pyo3::intern!(py, "sendto"), (data, addr)) {
            Ok(_) => Ok(Sent::Done),
            Err(e) if sockaddr::would_block(py, &e) => Ok(Sent::WouldBlock),
            Err(e) => Err(e),
        }
    }

    /// The Python address for a sender: the cached tuple, or a new one
    /// (cached for the next datagram and for a reply's `sendto`).
    fn address_of<'py>(&self, py: Python<'py>, sa: &SockAddr) -> PyResult<Bound<'py, PyAny>> {
        if let Some(a) = self.addrs.borrow(py).get(py, sa) {
            return Ok(a.into_bound(py));
        }
        // Built outside the borrow: allocating the tuple may run the
        // garbage collector, and with it arbitrary Python code.
        let a = sa.python_address(py)?;
        let evicted = self.addrs.borrow(py).put(*sa, a.clone().unbind());
        drop(evicted); // after the borrow: the last reference may go here
        Ok(a)
    }

    /// The sockaddr for an unconnected `sendto` to `addr` when it can be
    /// sent natively: an inet socket still open (once closing, the fd may
    /// be closed and reused, so the socket object's own method answers),
    /// and an address that is the last tuple handed out or one
    /// `SockAddr::from_python` parses. None: the socket object sends.
    fn native_address(&self, py: Python<'_>, addr: &Bound<'_, PyAny>) -> Option<SockAddr> {
        if !self.inet || self.st.borrow(py).life.conn_lost > 0 {
            return None;
        }
        let hit = self.addrs.borrow(py).find(addr);
        hit.or_else(|| SockAddr::from_python(self.family, addr))
    }

    /// One datagram, as asyncio's `_read_ready` reads it: Ok(true) when a
    /// datagram went to the protocol and another may follow, Ok(false) to
    /// end the batch (nothing left, an error reported, or the protocol
    /// closed or paused the transport from its callback).
    fn read_one(slf: &Bound<'_, Self>, first: bool) -> PyResult<bool> {
        let py = slf.py();
        let me = slf.get();
        let (cb, proto, sock) = {
            let st = me.st.borrow(py);
            // The first read is asyncio's (it checks `_conn_lost` only: its
            // reader is gone once closing or paused); later ones also stop
            // where asyncio's removed reader would have.
            if st.life.conn_lost > 0 || (!first && !st.life.is_reading()) {
                return Ok(false);
            }
            (
                cloned(py, &st.proto.datagram_received),
                cloned(py, &st.proto.obj),
                cloned(py, &st.sock),
            )
        };
        let got = if me.inet {
            match sockaddr::recvfrom_bytes_raw(py, me.fd, MAX_SIZE) {
                Ok(Some((data, sa))) => me.address_of(py, &sa).map(|a| Some((data, a))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        } else {
            match none_or(py, sock).call_method1(pyo3::intern!(py, "recvfrom"), (MAX_SIZE,)) {
                Ok(pair) => {
                    let (d, a): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
                    Ok(Some((d, a)))
                }
                Err(e) if sockaddr::would_block(py, &e) => Ok(None),
                Err(e) => Err(e),
            }
        };
        match got {
            Ok(None) => Ok(false),
            Ok(Some((data, addr))) => match cb {
                Some(cb) => cb.bind(py).call1((data, addr)).map(|_| true),
                None => none_or(py, proto)
                    .call_method1(pyo3::intern!(py, "datagram_received"), (data, addr))
                    .map(|_| true),
            },
            Err(e) if e.is_instance_of::<PyOSError>(py) => none_or(py, proto)
                .call_method1(pyo3::intern!(py, "error_received"), (e.into_value(py),))
                .map(|_| false),
            Err(e) if is_fatal(py, &e) => Err(e),
            Err(e) => {
                Self::fatal_error(slf, e, "Fatal read error on datagram transport").map(|_| false)
            }
        }
    }

    /// An OSError goes to `protocol.error_received`, anything else is
    /// fatal (asyncio's split for datagram transports).
    fn send_failed(slf: &Bound<'_, Self>, e: PyErr) -> PyResult<()> {
        let py = slf.py();
        if e.is_instance_of::<PyOSError>(py) {
            let proto = none_or(py, cloned(py, &slf.get().st.borrow(py).proto.obj));
            proto.call_method1(pyo3::intern!(py, "error_received"), (e.into_value(py),))?;
            return Ok(());
        }
        Self::fatal_error(slf, e, "Fatal write error on datagram transport")
    }

    fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        let (transport, protocol) = {
            let st = slf.get().st.borrow(py);
            (cloned(py, &st.transport), cloned(py, &st.proto.obj))
        };
        let exc = report_fatal(slf.get().lp.bind(py), err, transport, protocol, message)?;
        Self::force_close(slf, exc)
    }

    fn force_close(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let (dropped, had_queue, stop_reading) = {
            let mut st = me.st.borrow(py);
            let Some(stop) = st.life.force_close() else {
                return Ok(());
            };
            st.queued = 0;
            let dropped = std::mem::take(&mut st.queue);
            let had = !dropped.is_empty();
            (dropped, had, stop)
        };
        drop(dropped);
        common::schedule_lost(slf.as_any(), me.lp(), me.fd, stop_reading, had_queue, exc)
    }

    fn flow(slf: &Bound<'_, Self>, pause: bool) -> PyResult<()> {
        let py = slf.py();
        let (proto, transport) = {
            let mut st = slf.get().st.borrow(py);
            let size = st.queued;
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
}

#[pymethods]
impl DatagramTransport {
    /// `DatagramTransport(loop, transport, sock, protocol, address,
    /// connected, header)`.
    #[new]
    fn new(
        lp: &Bound<'_, PyAny>,
        transport: &Bound<'_, PyAny>,
        sock: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        address: Option<&Bound<'_, PyAny>>,
        connected: bool,
        header: usize,
    ) -> PyResult<Self> {
        let lp = lp.cast::<Loop>()?.clone().unbind();
        let fd: RawFd = sock.call_method0("fileno")?.extract()?;
        let family: i32 = sock.getattr("family")?.extract()?;
        Ok(DatagramTransport {
            fd,
            lp,
            inet: sockaddr::is_inet(family),
            family,
            addrs: GilCell::new(AddrCache::default()),
            connected,
            header,
            st: GilCell::new(State {
                proto: new_proto(protocol),
                sock: Some(sock.clone().unbind()),
                transport: Some(transport.clone().unbind()),
                address: address.filter(|a| !a.is_none()).map(|a| a.clone().unbind()),
                queue: VecDeque::new(),
                queued: 0,
                life: Life::default(),
            }),
        })
    }

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

    fn _read_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        for i in 0..READ_BATCH {
            if !Self::read_one(slf, i == 0)? {
                break;
            }
        }
        Ok(())
    }

    #[pyo3(signature = (data, addr = None))]
    pub(crate) fn sendto(
        slf: &Bound<'_, Self>,
        data: &Bound<'_, PyAny>,
        addr: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        if !(data.is_instance_of::<PyBytes>()
            || data.is_instance_of::<PyByteArray>()
            || data.is_instance_of::<PyMemoryView>())
        {
            return Err(common::not_bytes_like(data));
        }
        let len = data.len()?;
        if len == 0 && me.header == 0 {
            return Ok(()); // before 3.13, empty datagrams are not sent
        }
        let mut addr = addr.filter(|a| !a.is_none());
        let address = cloned(py, &me.st.borrow(py).address);
        if let Some(default) = address {
            let default = default.into_bound(py);
            if let Some(a) = &addr {
                if !a.eq(&default)? {
                    return Err(PyValueError::new_err(format!(
                        "Invalid address: must be None or {}",
                        default.str()?
                    )));
                }
            }
            addr = Some(default);
            // Bound first: an `if let` scrutinee's borrow would last
            // through the warning, which runs Python code (logging).
            let lost = me.st.borrow(py).life.lost_write();
            if let Some(warn) = lost {
                return common::warn_lost_write(py, warn);
            }
        }
        if me.st.borrow(py).queue.is_empty() {
            match me.send_one(py, data, addr.as_ref()) {
                Ok(Sent::Done) => return Ok(()),
                Ok(Sent::WouldBlock) => {
                    let cb = slf.getattr("_sendto_ready")?;
                    me.lp().watch(me.fd, Side::Write, &cb)?;
                }
                Err(e) if is_fatal(py, &e) => return Err(e),
                Err(e) => return Self::send_failed(slf, e),
            }
        }
        // Queue an immutable copy.
        let copy = PyBytes::new(py, RawBuf::get(data)?.as_slice()).unbind();
        {
            let mut st = me.st.borrow(py);
            st.queue.push_back((copy, addr.map(Bound::unbind)));
            st.queued += len + me.header;
        }
        Self::flow(slf, true)
    }

    fn _sendto_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        loop {
            let item = {
                let mut st = me.st.borrow(py);
                let item = st.queue.pop_front();
                if let Some((d, _)) = &item {
                    st.queued -= (d.bind(py).as_bytes().len() + me.header).min(st.queued);
                }
                item
            };
            let Some((data, addr)) = item else { break };
            let res = me.send_one(
                py,
                data.bind(py).as_any(),
                addr.as_ref().map(|a| a.bind(py)),
            );
            match res {
                Ok(Sent::Done) => {}
                Ok(Sent::WouldBlock) => {
                    let mut st = me.st.borrow(py);
                    st.queued += data.bind(py).as_bytes().len() + me.header;
                    st.queue.push_front((data, addr));
                    break;
                }
                Err(e) if is_fatal(py, &e) => return Err(e),
                Err(e) => return Self::send_failed(slf, e),
            }
        }
        Self::flow(slf, false)?; // may queue more
        let (empty, closing) = {
            let st = me.st.borrow(py);
            (st.queue.is_empty(), st.life.closing)
        };
        if empty {
            me.lp().unwatch(py, me.fd, Side::Write);
            if closing {
                Self::_call_connection_lost(slf, py.None().into_bound(py))?;
            }
        }
        Ok(())
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
        me.lp().unwatch(py, me.fd, Side::Read);
        let transport = cloned(py, &me.st.borrow(py).transport);
        common::debug_log(me.lp.bind(slf.py()), transport, "%r pauses reading")
    }

    fn resume_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        if !slf.get().st.borrow(py).life.resume_reading() {
            return Ok(());
        }
        Self::_start_reading(slf)?;
        let transport = cloned(py, &slf.get().st.borrow(py).transport);
        common::debug_log(slf.get().lp.bind(slf.py()), transport, "%r resumes reading")
    }

    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let lost = {
            let mut st = me.st.borrow(py);
            let empty = st.queue.is_empty();
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

    #[pyo3(signature = (exc, message = "Fatal error on transport"))]
    fn _fatal_error(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        Self::fatal_error(slf, PyErr::from_value(exc.clone()), message)
    }

    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let proto = cloned(py, &me.st.borrow(py).proto.obj);
        let res = match proto {
            Some(p) => p
                .bind(py)
                .call_method1("connection_lost", (&exc,))
                .map(drop),
            None => Ok(()),
        };
        let (sock, proto, transport) = {
            let mut st = me.st.borrow(py);
            (
                st.sock.take(),
                std::mem::take(&mut st.proto),
                st.transport.take(),
            )
        };
        let mut cleanup = Ok(());
        if let Some(s) = &sock {
            cleanup = s.bind(py).call_method0("close").map(drop);
        }
        drop((sock, proto, transport));
        res.and(cleanup)
    }

    fn set_protocol(&self, py: Python<'_>, protocol: &Bound<'_, PyAny>) {
        let new = new_proto(protocol);
        let old = std::mem::replace(&mut self.st.borrow(py).proto, new);
        drop(old);
    }

    fn get_protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        cloned(py, &self.st.borrow(py).proto.obj)
    }

    fn get_write_buffer_size(&self, py: Python<'_>) -> usize {
        self.st.borrow(py).queued
    }

    fn get_write_buffer_limits(&self, py: Python<'_>) -> (usize, usize) {
        let st = self.st.borrow(py);
        (st.life.low_water, st.life.high_water)
    }

    fn _set_write_buffer_limits(slf: &Bound<'_, Self>, high: usize, low: usize) -> PyResult<()> {
        let py = slf.py();
        {
            let mut st = slf.get().st.borrow(py);
            st.life.high_water = high;
            st.life.low_water = low;
        }
        Self::flow(slf, true)
    }

    #[getter]
    fn _sock(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        cloned(py, &self.st.borrow(py).sock)
    }

    #[getter]
    fn _address(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        cloned(py, &self.st.borrow(py).address)
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
    fn _protocol_paused(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).life.protocol_paused
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.lp)?;
        // The GC must never block (under-reporting is safe). SAFETY: the
        // collector runs holding the GIL.
        if let Some(st) = unsafe { self.st.try_borrow_unattached() } {
            for o in [
                &st.proto.obj,
                &st.proto.datagram_received,
                &st.sock,
                &st.transport,
                &st.address,
            ]
            .into_iter()
            .flatten()
            {
                visit.call(o)?;
            }
            for (d, a) in &st.queue {
                visit.call(d)?;
                if let Some(a) = a {
                    visit.call(a)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        // SAFETY: tp_clear runs holding the GIL.
        let taken = unsafe { self.st.try_borrow_unattached() }.map(|mut st| {
            (
                std::mem::take(&mut st.proto),
                st.sock.take(),
                st.transport.take(),
                st.address.take(),
                std::mem::take(&mut st.queue),
            )
        });
        drop(taken);
    }
}
