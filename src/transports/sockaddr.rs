//! AF_INET/AF_INET6 socket addresses between Python and the kernel, for
//! the datagram paths (the datagram transport and `sock_recvfrom`,
//! `sock_recvfrom_into`, `sock_sendto` share them): `recvfrom` with the
//! sender's address built as Python's socket module builds it
//! (socketmodule.c's makesockaddr: `inet_ntop`, scope id in the tuple),
//! `SockAddr::from_python` for the numeric address tuples it would parse
//! without a name lookup, and `sendto` to such an address. Everything
//! else — other families, hostnames, the special hosts, odd types — goes
//! through the socket object's own methods, which know every address form
//! and raise its errors.

use std::os::fd::RawFd;

use crate::oserror::{OsError, OsResult};

use pyo3::exceptions::{PyBlockingIOError, PyInterruptedError, PyOSError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyInt, PyString, PyTuple, PyType};

/// Reads up to this size go through the per-thread scratch buffer
/// (`buffer::with_scratch`); bigger ones get their own.
const SCRATCH_SIZE: usize = 256 * 1024;

/// `_socket.socket.family`, the C-level member (the `socket.socket`
/// property of that name converts it to an enum in Python code).
static FAMILY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `socket.socket`.
static SOCKET_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `sock.family` as an int, read through the C-level member, if `sock` is
/// exactly a `socket.socket` (no instance dict: its methods are the C
/// ones). None for anything else — a subclass, a wrapper, a test's `Mock`
/// — whose own `recvfrom`/`sendto` must then be called, as asyncio does.
pub fn native_family(sock: &Bound<'_, PyAny>) -> PyResult<Option<i32>> {
    let py = sock.py();
    let socket_type = SOCKET_TYPE.import(py, "socket", "socket")?;
    if !sock.get_type().is(socket_type) {
        return Ok(None);
    }
    let member = FAMILY.get_or_try_init(py, || {
        py.import("_socket")?
            .getattr("socket")?
            .getattr("__dict__")?
            .get_item("family")
            .map(Bound::unbind)
    })?;
    member
        .bind(py)
        .call_method1(pyo3::intern!(py, "__get__"), (sock,))?
        .extract()
        .map(Some)
}

/// Whether `sock` is a plain AF_INET/AF_INET6 socket (see `native_family`).
pub fn native_inet(sock: &Bound<'_, PyAny>) -> PyResult<Option<i32>> {
    Ok(native_family(sock)?.filter(|f| is_inet(*f)))
}

/// Whether `family` is AF_INET or AF_INET6 (addresses handled natively).
pub fn is_inet(family: i32) -> bool {
    family == libc::AF_INET || family == libc::AF_INET6
}

/// A `BlockingIOError`/`InterruptedError` from a socket method: not ready.
pub fn would_block(py: Python<'_>, e: &PyErr) -> bool {
    e.is_instance_of::<PyBlockingIOError>(py) || e.is_instance_of::<PyInterruptedError>(py)
}

extern "C" {
    /// POSIX, in every libc the loop runs on; the `libc` crate lacks it.
    fn inet_ntop(
        af: libc::c_int,
        src: *const libc::c_void,
        dst: *mut libc::c_char,
        size: libc::socklen_t,
    ) -> *const libc::c_char;
}

/// An AF_INET or AF_INET6 socket address as the kernel takes it.
/// `sockaddr_in6` is the larger of the two, so it holds either (`len`
/// says which); kept small so a per-transport cache of them stays small.
#[derive(Clone, Copy)]
pub struct SockAddr {
    sa: libc::sockaddr_in6,
    len: libc::socklen_t,
}

/// The `int` in `obj` if it is an exact `int` within `range`.
fn exact_int(obj: &Bound<'_, PyAny>, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
    if !obj.is_exact_instance_of::<PyInt>() {
        return None;
    }
    obj.extract::<i64>().ok().filter(|v| range.contains(v))
}

impl SockAddr {
    /// Room for either family; `len` is the kernel's to set.
    fn empty() -> Self {
        SockAddr {
            // SAFETY: all-zero is a valid sockaddr_in6.
            sa: unsafe { std::mem::zeroed() },
            len: std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        }
    }

    fn as_ptr(&self) -> *const libc::sockaddr {
        &self.sa as *const libc::sockaddr_in6 as *const libc::sockaddr
    }

    /// The address bytes (what the kernel wrote, or what `from_python`
    /// built), for comparing two addresses.
    pub fn bytes(&self) -> &[u8] {
        let n = (self.len as usize).min(std::mem::size_of::<libc::sockaddr_in6>());
        // SAFETY: `sa` is plain old data of at least `n` bytes.
        unsafe { std::slice::from_raw_parts(self.as_ptr() as *const u8, n) }
    }

    /// The sockaddr socketmodule.c builds for `addr` on a socket of
    /// `family` when that needs no name lookup: an exact tuple `(host,
    /// port)` (AF_INET) or `(host, port[, flowinfo[, scope_id]])`
    /// (AF_INET6) with an exact `str` numeric host and exact `int`s in
    /// range. None for anything else (hostnames, `""`, `"<broadcast>"`,
    /// scoped IPv6 text, bytes hosts, subclasses, bad values): the socket
    /// object's own `sendto` handles those, errors included.
    pub fn from_python(family: i32, addr: &Bound<'_, PyAny>) -> Option<Self> {
        let t = addr.cast_exact::<PyTuple>().ok()?;
        let n = t.len();
        let host = t.get_item(0).ok()?;
        let host = host.cast_exact::<PyString>().ok()?.to_str().ok()?;
        let port = exact_int(&t.get_item(1).ok()?, 0..=0xffff)? as u16;
        let mut out = SockAddr::empty();
        match family {
            libc::AF_INET if n == 2 => {
                let ip: std::net::Ipv4Addr = host.parse().ok()?;
                // SAFETY: sockaddr_in fits in (and is no more aligned than)
                // the sockaddr_in6 storage; all-zero is valid for it.
                let sin = unsafe {
                    &mut *(&mut out.sa as *mut libc::sockaddr_in6 as *mut libc::sockaddr_in)
                };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = port.to_be();
                sin.sin_addr.s_addr = u32::from(ip).to_be();
                out.len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            libc::AF_INET6 if (2..=4).contains(&n) => {
                let ip: std::net::Ipv6Addr = host.parse().ok()?;
                let flowinfo = match n {
                    2 => 0,
                    _ => exact_int(&t.get_item(2).ok()?, 0..=0xfffff)? as u32,
                };
                let scope_id = match n {
                    4 => exact_int(&t.get_item(3).ok()?, 0..=u32::MAX as i64)? as u32,
                    _ => 0,
                };
                out.sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                out.sa.sin6_port = port.to_be();
                out.sa.sin6_flowinfo = flowinfo.to_be();
                out.sa.sin6_addr.s6_addr = ip.octets();
                out.sa.sin6_scope_id = scope_id;
            }
            _ => return None,
        }
        Some(out)
    }

    /// Python's address for this sockaddr (socketmodule.c's makesockaddr
    /// for AF_INET/AF_INET6; None for an empty address, as a TCP socket's
    /// `recvfrom` gives).
    pub fn python_address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if self.len == 0 {
            return Ok(py.None().into_bound(py));
        }
        match self.sa.sin6_family as libc::c_int {
            libc::AF_INET => {
                // SAFETY: the family says this is a sockaddr_in.
                let a = unsafe { &*(self.as_ptr() as *const libc::sockaddr_in) };
                // Dotted quad, as getnameinfo(NI_NUMERICHOST) writes it.
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Ok((ip.to_string(), u16::from_be(a.sin_port))
                    .into_pyobject(py)?
                    .into_any())
            }
            libc::AF_INET6 => {
                // inet_ntop, as socketmodule.c's make_ipv6_addr: it spells
                // embedded IPv4 as glibc does (Rust's Display differs for
                // `::a.b.c.d`), and the scope is the tuple's last item, not
                // a `%eth0` suffix (getnameinfo would add one).
                let mut host = [0 as libc::c_char; 64];
                // SAFETY: `sin6_addr` is a valid in6_addr; `host` is a
                // writable buffer of the size we pass (INET6_ADDRSTRLEN is 46).
                let p = unsafe {
                    inet_ntop(
                        libc::AF_INET6,
                        &self.sa.sin6_addr as *const libc::in6_addr as *const libc::c_void,
                        host.as_mut_ptr(),
                        host.len() as libc::socklen_t,
                    )
                };
                if p.is_null() {
                    return Err(OsError::last().into());
                }
                // SAFETY: inet_ntop NUL-terminates `host` on success.
                let host = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) }.to_string_lossy();
                Ok((
                    host,
                    u16::from_be(self.sa.sin6_port),
                    u32::from_be(self.sa.sin6_flowinfo),
                    self.sa.sin6_scope_id,
                )
                    .into_pyobject(py)?
                    .into_any())
            }
            _ => Err(PyOSError::new_err("unexpected address family")),
        }
    }

    /// One `sendto(2)` of `data` to this address: the byte count, or
    /// Ok(None) if it would block (or was interrupted: the caller queues
    /// it and retries when the socket is writable).
    pub fn sendto(&self, fd: RawFd, data: &[u8]) -> OsResult<Option<usize>> {
        // SAFETY: `data` is valid for its length; `sa` for `len` bytes.
        let r = unsafe {
            libc::sendto(
                fd,
                data.as_ptr() as *const libc::c_void,
                data.len(),
                0,
                self.as_ptr(),
                self.len,
            )
        };
        if r < 0 {
            let e = OsError::last();
            return match e.errno() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(r as usize))
    }
}

/// One `recvfrom(2)` of up to `len` bytes into `buf` on an AF_INET/AF_INET6
/// socket: Ok(None) when it would block, else the byte count and the
/// sender's address.
pub fn recvfrom_raw(fd: RawFd, buf: *mut u8, len: usize) -> PyResult<Option<(usize, SockAddr)>> {
    let mut sa = SockAddr::empty();
    // SAFETY: the caller passes `len` writable bytes at `buf`; `sa.sa` is
    // writable for `sa.len` bytes (the kernel truncates a longer address
    // and says so in `sa.len`, capped by `bytes()`).
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf as *mut libc::c_void,
            len,
            0,
            &mut sa.sa as *mut libc::sockaddr_in6 as *mut libc::sockaddr,
            &mut sa.len,
        )
    };
    if n < 0 {
        let e = OsError::last();
        return match e.errno() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(e.into()),
        };
    }
    Ok(Some((n as usize, sa)))
}

/// `recvfrom_raw` with the address as Python's.
pub fn recvfrom_into<'py>(
    py: Python<'py>,
    fd: RawFd,
    buf: *mut u8,
    len: usize,
) -> PyResult<Option<(usize, Bound<'py, PyAny>)>> {
    match recvfrom_raw(fd, buf, len)? {
        Some((n, sa)) => Ok(Some((n, sa.python_address(py)?))),
        None => Ok(None),
    }
}

/// `recvfrom(n)` on an AF_INET/AF_INET6 socket: Ok(None) when it would
/// block, else the datagram as `bytes` and the sender's sockaddr.
pub fn recvfrom_bytes_raw<'py>(
    py: Python<'py>,
    fd: RawFd,
    n: usize,
) -> PyResult<Option<(Bound<'py, PyAny>, SockAddr)>> {
    let take = |buf: &mut [u8]| -> PyResult<Option<(Bound<'py, PyAny>, SockAddr)>> {
        Ok(recvfrom_raw(fd, buf.as_mut_ptr(), buf.len())?
            .map(|(got, sa)| (PyBytes::new(py, &buf[..got]).into_any(), sa)))
    };
    if n > SCRATCH_SIZE {
        return take(&mut vec![0u8; n]);
    }
    super::buffer::with_scratch(n, take)
}

/// `recvfrom(n)` on an AF_INET/AF_INET6 socket: Ok(None) when it would
/// block, else `(bytes, address)` as `socket.recvfrom` returns them.
pub fn recvfrom_bytes<'py>(
    py: Python<'py>,
    fd: RawFd,
    n: usize,
) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    match recvfrom_bytes_raw(py, fd, n)? {
        Some((data, sa)) => Ok(Some((data, sa.python_address(py)?))),
        None => Ok(None),
    }
}
