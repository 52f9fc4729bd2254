//! The per-packet `loop.sock_*` operations: `sock_recv`, `sock_recv_into`,
//! `sock_sendall`, and the datagram ones `sock_recvfrom`,
//! `sock_recvfrom_into`, `sock_sendto` (3.11+, as in asyncio).
//!
//! Each is asyncio's algorithm with the syscalls and the wait in Rust: try
//! the operation at once; if the socket is not ready, return a future and
//! watch the fd with a [`SockOp`] (the watcher is the op object itself, so
//! no bound method or handle arguments are built). The op retries on each
//! readiness, settles the future, and stops watching as soon as it is done
//! or its future is cancelled (it is also the future's done callback, as
//! asyncio's `_sock_read_done`/`_sock_write_done` are).
//!
//! The Python methods (`ferrio/_sockets.py`) call these functions, which
//! make asyncio's argument checks (SSL sockets, debug-mode blocking check;
//! `check_sock`) and return the result directly when the syscall succeeded
//! at once, else a future to await.
//!
//! Datagram receives on AF_INET/AF_INET6 sockets are `recvfrom(2)` here
//! (sockaddr.rs builds the address), and so are `sendto`s to numeric
//! address tuples; other families and other addresses call the socket
//! object's own method, which parses and builds every address form Python
//! knows (hostnames in a `sendto` address resolve there, blocking, exactly
//! as on asyncio's loop).
//!
//! Only plain `socket.socket` objects get here: python/ferrio/_sockets.py
//! sends any other object (a subclass, a wrapper, a test's `Mock`) to
//! asyncio's selector code, which calls its methods. The datagram paths
//! check again (`sockaddr::native_family`), as they read the C-level
//! `family` member.

use std::os::fd::RawFd;

use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;
use pyo3::{PyTraverseError, PyVisit};

use super::buffer::{self, RawBuf, Read};
use super::common::is_fatal;
use super::sockaddr::{self, SockAddr};
use crate::event_loop::Loop;
use crate::handles::HandleRef;
use crate::reactor::Side;

/// `socket.socket`: an object of exactly this class is no `ssl.SSLSocket`.
static PLAIN_SOCKET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// `asyncio.base_events._check_ssl_socket`, for every other class.
static CHECK_SSL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// asyncio's checks at the top of every `sock_*` method, in its order: no
/// SSL socket (asyncio's own check, skipped for a plain `socket.socket`),
/// and in debug mode a non-blocking socket only.
fn check_sock(lp: &Bound<'_, Loop>, sock: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = lp.py();
    let plain = PLAIN_SOCKET.get_or_try_init(py, || {
        py.import("socket")?.getattr("socket").map(Bound::unbind)
    })?;
    if !sock.get_type().is(plain.bind(py)) {
        let check = CHECK_SSL.get_or_try_init(py, || {
            py.import("asyncio.base_events")?
                .getattr("_check_ssl_socket")
                .map(Bound::unbind)
        })?;
        check.bind(py).call1((sock,))?;
    }
    if lp.get().is_debug() && sock.call_method0(pyo3::intern!(py, "gettimeout"))?.ne(0)? {
        return Err(PyValueError::new_err("the socket must be non-blocking"));
    }
    Ok(())
}

enum Kind {
    Recv(usize),
    RecvInto(Py<PyAny>),
    /// Data not sent yet (copied: the caller may reuse its buffer).
    SendAll(Vec<u8>, usize),
    /// `recvfrom(n)`; `true` for AF_INET/AF_INET6 (native).
    RecvFrom(usize, bool),
    /// `recvfrom_into(buf, nbytes)`; `true` for AF_INET/AF_INET6 (native).
    RecvFromInto(Py<PyAny>, usize, bool),
    /// `sendto(data, address)`; data by reference, as asyncio keeps it;
    /// the address parsed once if it is sent natively.
    SendTo(Py<PyAny>, Py<PyAny>, Option<SockAddr>),
}

/// A pending socket operation: the fd watcher and the future's done
/// callback.
#[pyclass(module = "ferrio._ferrio", name = "SockOp", frozen)]
pub struct SockOp {
    lp: Py<Loop>,
    fd: RawFd,
    side: Side,
    fut: Py<PyAny>,
    /// The socket object (kept alive: its address is the owner identity of
    /// a parked registration, see `Reactor::rearm`).
    sock: Py<PyAny>,
    kind: Mutex<Option<Kind>>,
    /// The watcher handle, to tell "still ours" from "replaced by a later
    /// add_reader/add_writer" when stopping (asyncio checks the handle's
    /// `cancelled()` for the same reason).
    handle: Mutex<Option<HandleRef>>,
}

fn fileno(sock: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    sock.call_method0(pyo3::intern!(sock.py(), "fileno"))?
        .extract()
}

/// `loop.create_future()`: the native one unless a subclass overrides it.
fn new_future<'py>(lp: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = lp.py();
    let mine = lp.get_type().getattr(pyo3::intern!(py, "create_future"))?;
    let base = py
        .get_type::<Loop>()
        .getattr(pyo3::intern!(py, "create_future"))?;
    if mine.is(&base) {
        return crate::event_loop::new_future(lp);
    }
    lp.call_method0(pyo3::intern!(py, "create_future"))
}

/// asyncio's `_ensure_fd_no_transport(fd)`: raises if a transport owns
/// `fd`. The common case (no transport) is one C dict lookup in the
/// `WeakValueDictionary`'s `data`; otherwise asyncio's own method decides.
fn ensure_fd_no_transport(lp: &Bound<'_, PyAny>, fd: RawFd) -> PyResult<()> {
    let py = lp.py();
    if let Ok(transports) = lp.getattr(pyo3::intern!(py, "_transports")) {
        if let Ok(data) = transports.getattr(pyo3::intern!(py, "data")) {
            if let Ok(d) = data.cast::<pyo3::types::PyDict>() {
                if !d.contains(fd)? {
                    return Ok(());
                }
            }
        }
    }
    lp.call_method1(pyo3::intern!(py, "_ensure_fd_no_transport"), (fd,))
        .map(drop)
}

impl SockOp {
    /// Registers `op` for `side` of `fd`, after asyncio's
    /// `_ensure_fd_no_transport` check, and makes it the future's done
    /// callback.
    fn start<'py>(
        lp: &Bound<'py, Loop>,
        sock: &Bound<'py, PyAny>,
        fd: RawFd,
        side: Side,
        kind: Kind,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = lp.py();
        let fut = new_future(lp.as_any())?;
        ensure_fd_no_transport(lp.as_any(), fd)?;
        let op = Bound::new(
            py,
            SockOp {
                lp: lp.clone().unbind(),
                fd,
                side,
                fut: fut.clone().unbind(),
                sock: sock.clone().unbind(),
                kind: Mutex::new(Some(kind)),
                handle: Mutex::new(None),
            },
        )?;
        let owner = sock.as_ptr() as usize;
        let h = lp.get().rearm_handle(fd, side, op.as_any(), owner)?;
        let old = op.get().handle.lock().replace(h);
        drop(old);
        fut.call_method1(pyo3::intern!(py, "add_done_callback"), (&op,))?;
        Ok(fut)
    }

    /// The first attempt's result if it finished, else a future of it:
    /// the op is started for `side` of `fd` with `kind()`.
    fn now_or_later(
        lp: &Bound<'_, Loop>,
        sock: &Bound<'_, PyAny>,
        fd: RawFd,
        side: Side,
        now: Option<Py<PyAny>>,
        kind: impl FnOnce() -> Kind,
    ) -> PyResult<Py<PyAny>> {
        match now {
            Some(r) => Ok(r),
            None => Self::start(lp, sock, fd, side, kind()).map(Bound::unbind),
        }
    }

    /// Stops watching if the registered watcher is still this op's.
    fn stop(&self, py: Python<'_>) {
        let h = self.handle.lock().take();
        if let Some(h) = h {
            self.lp.get().unwatch_if(py, self.fd, self.side, &h);
            h.release_ref(py);
        }
    }

    /// The operation finished: leave the registration parked for the next
    /// operation on this socket (no epoll_ctl pair per operation). If the
    /// fd turns ready while parked, the op runs once more, sees its future
    /// done and really unregisters.
    fn finish(&self, py: Python<'_>) {
        let old = self.kind.lock().take();
        drop(old);
        let h = self.handle.lock().take();
        if let Some(h) = h {
            let owner = self.sock.as_ptr() as usize;
            if self
                .lp
                .get()
                .reactor()
                .park(py, self.fd, self.side, &h, owner)
            {
                // Keep our identity: a spurious wakeup must find it.
                *self.handle.lock() = Some(h);
            } else {
                h.release_ref(py);
            }
        }
    }

    /// One attempt; Some(result) when the operation finished.
    fn attempt(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut kind = self.kind.lock();
        match kind.as_mut() {
            None => Ok(None),
            Some(Kind::Recv(n)) => {
                let n = *n;
                match buffer::recv_bytes(py, self.fd, n, &mut [], true)? {
                    Read::WouldBlock => Ok(None),
                    Read::Eof => Ok(Some(PyBytes::new(py, b"").into_any().unbind())),
                    Read::Data(d) => Ok(Some(d.unbind())),
                }
            }
            Some(Kind::RecvInto(buf)) => {
                let buf = buf.clone_ref(py);
                drop(kind);
                let view = RawBuf::recv_target(buf.bind(py), "recv_into")?;
                Ok(buffer::recv(self.fd, view.as_mut_ptr(), view.len())?
                    .map(|n| n.into_pyobject(py).map(|o| o.into_any().unbind()))
                    .transpose()?)
            }
            Some(Kind::SendAll(data, off)) => {
                let n = buffer::send(self.fd, &data[*off..])?;
                *off += n;
                if *off == data.len() {
                    Ok(Some(py.None()))
                } else {
                    Ok(None)
                }
            }
            Some(Kind::RecvFrom(n, inet)) => {
                let (n, inet) = (*n, *inet);
                drop(kind);
                try_recvfrom(self.sock.bind(py), self.fd, n, inet)
            }
            Some(Kind::RecvFromInto(buf, nbytes, inet)) => {
                let (buf, nbytes, inet) = (buf.clone_ref(py), *nbytes, *inet);
                drop(kind);
                try_recvfrom_into(self.sock.bind(py), self.fd, buf.bind(py), nbytes, inet)
            }
            Some(Kind::SendTo(data, addr, sa)) => {
                let (data, addr, sa) = (data.clone_ref(py), addr.clone_ref(py), *sa);
                drop(kind);
                try_sendto(
                    self.sock.bind(py),
                    self.fd,
                    data.bind(py),
                    addr.bind(py),
                    sa.as_ref(),
                )
            }
        }
    }
}

/// A socket method's result, or None when it would block.
fn unless_blocked(py: Python<'_>, res: PyResult<Bound<'_, PyAny>>) -> PyResult<Option<Py<PyAny>>> {
    match res {
        Ok(v) => Ok(Some(v.unbind())),
        Err(e) if sockaddr::would_block(py, &e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One `sock.recvfrom(n)`: `(bytes, address)`, or None if not ready.
fn try_recvfrom(
    sock: &Bound<'_, PyAny>,
    fd: RawFd,
    n: usize,
    inet: bool,
) -> PyResult<Option<Py<PyAny>>> {
    let py = sock.py();
    if !inet {
        return unless_blocked(py, sock.call_method1(pyo3::intern!(py, "recvfrom"), (n,)));
    }
    Ok(match sockaddr::recvfrom_bytes(py, fd, n)? {
        Some(pair) => Some(pair.into_pyobject(py)?.into_any().unbind()),
        None => None,
    })
}

/// One `sock.recvfrom_into(buf, nbytes)`: `(count, address)`, or None if
/// not ready.
fn try_recvfrom_into(
    sock: &Bound<'_, PyAny>,
    fd: RawFd,
    buf: &Bound<'_, PyAny>,
    nbytes: usize,
    inet: bool,
) -> PyResult<Option<Py<PyAny>>> {
    let py = sock.py();
    if !inet {
        return unless_blocked(
            py,
            sock.call_method1(pyo3::intern!(py, "recvfrom_into"), (buf, nbytes)),
        );
    }
    let view = RawBuf::recv_target(buf, "recvfrom_into")?;
    // Checked on every attempt: the buffer may have shrunk while waiting.
    if nbytes > view.len() {
        return Err(PyValueError::new_err(
            "nbytes is greater than the length of the buffer",
        ));
    }
    Ok(
        match sockaddr::recvfrom_into(py, fd, view.as_mut_ptr(), nbytes)? {
            Some(pair) => Some(pair.into_pyobject(py)?.into_any().unbind()),
            None => None,
        },
    )
}

/// The sockaddr to `sendto(2)` natively for `addr` on `sock`: a plain
/// AF_INET/AF_INET6 socket and a numeric address tuple
/// (`SockAddr::from_python`); None: the socket object's `sendto` sends.
fn native_destination(
    sock: &Bound<'_, PyAny>,
    addr: &Bound<'_, PyAny>,
) -> PyResult<Option<SockAddr>> {
    Ok(sockaddr::native_inet(sock)?.and_then(|family| SockAddr::from_python(family, addr)))
}

/// One `sock.sendto(data, address)` (natively to `sa` when given, see
/// `native_destination`): the byte count, or None if not ready.
fn try_sendto(
    sock: &Bound<'_, PyAny>,
    fd: RawFd,
    data: &Bound<'_, PyAny>,
    addr: &Bound<'_, PyAny>,
    sa: Option<&SockAddr>,
) -> PyResult<Option<Py<PyAny>>> {
    let py = sock.py();
    if let Some(sa) = sa {
        let view = RawBuf::get(data)?;
        return match sa.sendto(fd, view.as_slice())? {
            Some(n) => Ok(Some(n.into_pyobject(py)?.into_any().unbind())),
            None => Ok(None),
        };
    }
    unless_blocked(
        py,
        sock.call_method1(pyo3::intern!(py, "sendto"), (data, addr)),
    )
}

#[pymethods]
impl SockOp {
    /// Called with no argument when the fd is ready, and with the future
    /// when it is done.
    #[pyo3(signature = (*args))]
    fn __call__(&self, py: Python<'_>, args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        if !args.is_empty() {
            // Done callback: a finished op is parked already; a cancelled
            // (or externally completed) one stops watching.
            let pending = self.kind.lock().take();
            if pending.is_some() {
                drop(pending);
                self.stop(py);
            }
            return Ok(());
        }
        let fut = self.fut.bind(py);
        if self.kind.lock().is_none() || fut.call_method0(pyo3::intern!(py, "done"))?.is_truthy()? {
            // Ready while parked, or cancelled meanwhile: unregister now.
            let old = self.kind.lock().take();
            drop(old);
            self.stop(py);
            return Ok(());
        }
        match self.attempt(py) {
            Ok(None) => Ok(()),
            Ok(Some(res)) => {
                self.finish(py);
                fut.call_method1(pyo3::intern!(py, "set_result"), (res,))
                    .map(drop)
            }
            Err(e) if is_fatal(py, &e) => Err(e),
            Err(e) => {
                self.stop(py);
                fut.call_method1(pyo3::intern!(py, "set_exception"), (e.into_value(py),))
                    .map(drop)
            }
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.lp)?;
        visit.call(&self.fut)?;
        visit.call(&self.sock)?;
        if let Some(k) = self.kind.try_lock() {
            match k.as_ref() {
                Some(Kind::RecvInto(b)) | Some(Kind::RecvFromInto(b, _, _)) => visit.call(b)?,
                Some(Kind::SendTo(d, a, _)) => {
                    visit.call(d)?;
                    visit.call(a)?;
                }
                _ => {}
            }
        }
        if let Some(h) = self.handle.try_lock() {
            if let Some(h) = h.as_ref() {
                visit.call(h.as_py())?;
            }
        }
        Ok(())
    }
}

/// `sock.recv(n)` now, else a future of it.
#[pyfunction]
pub fn sock_recv(lp: &Bound<'_, Loop>, sock: &Bound<'_, PyAny>, n: isize) -> PyResult<Py<PyAny>> {
    let py = lp.py();
    check_sock(lp, sock)?;
    if n < 0 {
        return Err(PyValueError::new_err("negative buffersize in recv"));
    }
    if n == 0 {
        // The socket module's `recv(0)`: empty at once, without a syscall.
        return Ok(PyBytes::new(py, b"").into_any().unbind());
    }
    let n = n as usize;
    let fd = fileno(sock)?;
    // The first try often finds nothing (a reply not sent yet): it reads
    // into a small object grown only if it fills (no FIONREAD, no large
    // allocation); the retry after readiness sizes by FIONREAD.
    match buffer::recv_hinted(py, fd, 0, n)? {
        Read::Data(d) => Ok(d.unbind()),
        Read::Eof => Ok(PyBytes::new(py, b"").into_any().unbind()),
        Read::WouldBlock => {
            SockOp::start(lp, sock, fd, Side::Read, Kind::Recv(n)).map(Bound::unbind)
        }
    }
}

/// `sock.recv_into(buf)` now (an int), else a future of it.
#[pyfunction]
pub fn sock_recv_into(
    lp: &Bound<'_, Loop>,
    sock: &Bound<'_, PyAny>,
    buf: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let py = lp.py();
    check_sock(lp, sock)?;
    let fd = fileno(sock)?;
    let got = {
        let view = RawBuf::recv_target(buf, "recv_into")?;
        buffer::recv(fd, view.as_mut_ptr(), view.len())?
    };
    let now = match got {
        Some(n) => Some(n.into_pyobject(py)?.into_any().unbind()),
        None => None,
    };
    SockOp::now_or_later(lp, sock, fd, Side::Read, now, || {
        Kind::RecvInto(buf.clone().unbind())
    })
}

/// Sends all of `data`: None when the kernel took it at once, else a
/// future that completes when the rest is sent.
#[pyfunction]
pub fn sock_sendall(
    lp: &Bound<'_, Loop>,
    sock: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let py = lp.py();
    check_sock(lp, sock)?;
    let fd = fileno(sock)?;
    let view = RawBuf::get(data)?;
    let bytes = view.as_slice();
    let n = if bytes.is_empty() {
        0
    } else {
        buffer::send(fd, bytes)?
    };
    if n == bytes.len() {
        return Ok(py.None());
    }
    let rest = bytes[n..].to_vec();
    drop(view);
    SockOp::start(lp, sock, fd, Side::Write, Kind::SendAll(rest, 0)).map(Bound::unbind)
}

/// `sock.recvfrom(n)` now, else a future of it.
#[pyfunction]
pub fn sock_recvfrom(
    lp: &Bound<'_, Loop>,
    sock: &Bound<'_, PyAny>,
    n: isize,
) -> PyResult<Py<PyAny>> {
    check_sock(lp, sock)?;
    if n < 0 {
        return Err(PyValueError::new_err("negative buffersize in recvfrom"));
    }
    let n = n as usize;
    let fd = fileno(sock)?;
    let inet = sockaddr::native_inet(sock)?.is_some();
    let now = try_recvfrom(sock, fd, n, inet)?;
    SockOp::now_or_later(lp, sock, fd, Side::Read, now, || Kind::RecvFrom(n, inet))
}

/// `sock.recvfrom_into(buf, nbytes)` now, else a future of it (`nbytes`
/// 0 means `len(buf)`, as in asyncio).
#[pyfunction]
pub fn sock_recvfrom_into(
    lp: &Bound<'_, Loop>,
    sock: &Bound<'_, PyAny>,
    buf: &Bound<'_, PyAny>,
    nbytes: isize,
) -> PyResult<Py<PyAny>> {
    check_sock(lp, sock)?;
    let nbytes = if nbytes == 0 {
        isize::try_from(buf.len()?).unwrap_or(isize::MAX)
    } else {
        nbytes
    };
    if nbytes < 0 {
        return Err(PyValueError::new_err(
            "negative buffersize in recvfrom_into",
        ));
    }
    let nbytes = nbytes as usize;
    let fd = fileno(sock)?;
    let inet = sockaddr::native_inet(sock)?.is_some();
    let now = try_recvfrom_into(sock, fd, buf, nbytes, inet)?;
    SockOp::now_or_later(lp, sock, fd, Side::Read, now, || {
        Kind::RecvFromInto(buf.clone().unbind(), nbytes, inet)
    })
}

/// `sock.sendto(data, address)` now (the byte count), else a future of it.
#[pyfunction]
pub fn sock_sendto(
    lp: &Bound<'_, Loop>,
    sock: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    address: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    check_sock(lp, sock)?;
    let fd = fileno(sock)?;
    let sa = native_destination(sock, address)?;
    match try_sendto(sock, fd, data, address, sa.as_ref())? {
        Some(r) => Ok(r),
        None => {
            let kind = Kind::SendTo(data.clone().unbind(), address.clone().unbind(), sa);
            SockOp::start(lp, sock, fd, Side::Write, kind).map(Bound::unbind)
        }
    }
}
