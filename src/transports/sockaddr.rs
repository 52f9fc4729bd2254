//! `recvfrom` with the sender's address built as Python's socket module
//! builds it, for AF_INET/AF_INET6 sockets (the datagram transport and
//! `sock_recvfrom`/`sock_recvfrom_into` share it), and telling such sockets
//! from others. Other families go through the socket object's own methods,
//! which know every address form.

use std::os::fd::RawFd;

use crate::oserror::OsError;

use pyo3::exceptions::{PyBlockingIOError, PyInterruptedError, PyOSError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;

/// Reads up to this size go through the per-thread scratch buffer
/// (`buffer::with_scratch`); bigger ones get their own.
const SCRATCH_SIZE: usize = 256 * 1024;

/// `_socket.socket.family`, the C-level member (the `socket.socket`
/// property of that name converts it to an enum in Python code).
static FAMILY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Whether `sock` is an AF_INET or AF_INET6 socket.
pub fn is_inet(sock: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = sock.py();
    let member = FAMILY.get_or_try_init(py, || {
        py.import("_socket")?
            .getattr("socket")?
            .getattr("__dict__")?
            .get_item("family")
            .map(Bound::unbind)
    })?;
    let family: i32 = member
        .bind(py)
        .call_method1(pyo3::intern!(py, "__get__"), (sock,))?
        .extract()?;
    Ok(family == libc::AF_INET || family == libc::AF_INET6)
}

/// A `BlockingIOError`/`InterruptedError` from a socket method: not ready.
pub fn would_block(py: Python<'_>, e: &PyErr) -> bool {
    e.is_instance_of::<PyBlockingIOError>(py) || e.is_instance_of::<PyInterruptedError>(py)
}

/// Python's address for a sockaddr (socketmodule.c's makesockaddr for
/// AF_INET/AF_INET6; None for an empty address, as a TCP socket's
/// `recvfrom` gives).
fn inet_address<'py>(
    py: Python<'py>,
    sa: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> PyResult<Bound<'py, PyAny>> {
    if len == 0 {
        return Ok(py.None().into_bound(py));
    }
    let mut host = [0 as libc::c_char; 128];
    // SAFETY: `sa` holds `len` valid bytes written by recvfrom; `host` is
    // a writable buffer of the size we pass; no service is requested.
    let rc = unsafe {
        libc::getnameinfo(
            sa as *const libc::sockaddr_storage as *const libc::sockaddr,
            len,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NUMERICHOST,
        )
    };
    if rc != 0 {
        return Err(PyOSError::new_err(format!("getnameinfo failed ({rc})")));
    }
    // SAFETY: getnameinfo NUL-terminates `host` on success.
    let host = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) }.to_string_lossy();
    match sa.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let a = unsafe { &*(sa as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            Ok((host, u16::from_be(a.sin_port))
                .into_pyobject(py)?
                .into_any())
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let a = unsafe { &*(sa as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            Ok((
                host,
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )
                .into_pyobject(py)?
                .into_any())
        }
        _ => Err(PyOSError::new_err("unexpected address family")),
    }
}

/// One `recvfrom(2)` of up to `len` bytes into `buf` on an AF_INET/AF_INET6
/// socket: Ok(None) when it would block, else the byte count and the
/// sender's address.
pub fn recvfrom_into<'py>(
    py: Python<'py>,
    fd: RawFd,
    buf: *mut u8,
    len: usize,
) -> PyResult<Option<(usize, Bound<'py, PyAny>)>> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut sa: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut salen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the caller passes `len` writable bytes at `buf`; `sa` is
    // writable for `salen` bytes.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf as *mut libc::c_void,
            len,
            0,
            &mut sa as *mut libc::sockaddr_storage as *mut libc::sockaddr,
            &mut salen,
        )
    };
    if n < 0 {
        let e = OsError::last();
        return match e.errno() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(e.into()),
        };
    }
    Ok(Some((n as usize, inet_address(py, &sa, salen)?)))
}

/// `recvfrom(n)` on an AF_INET/AF_INET6 socket: Ok(None) when it would
/// block, else `(bytes, address)` as `socket.recvfrom` returns them.
pub fn recvfrom_bytes<'py>(
    py: Python<'py>,
    fd: RawFd,
    n: usize,
) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    let take = |buf: &mut [u8]| -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        Ok(recvfrom_into(py, fd, buf.as_mut_ptr(), buf.len())?
            .map(|(got, addr)| (PyBytes::new(py, &buf[..got]).into_any(), addr)))
    };
    if n > SCRATCH_SIZE {
        return take(&mut vec![0u8; n]);
    }
    super::buffer::with_scratch(n, take)
}
