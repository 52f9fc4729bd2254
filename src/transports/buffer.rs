//! Borrowing the memory of Python buffer objects (`bytes`, `bytearray`,
//! `memoryview`, anything with the buffer protocol) for a syscall, and
//! making a `bytes` object from a `recv` without an intermediate copy.

use std::cell::RefCell;
use std::os::fd::RawFd;

use crate::oserror::{OsError, OsResult};

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

/// A `Py_buffer` view, released on drop. Contiguous bytes only
/// (`PyBUF_SIMPLE`, or `PyBUF_WRITABLE` for `recv_into` targets).
pub struct RawBuf {
    view: Box<ffi::Py_buffer>,
}

impl RawBuf {
    /// A read-only view of `obj` (what `send`/`write` take).
    pub fn get(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        Self::view(obj, ffi::PyBUF_SIMPLE).map_err(|(e, _)| e)
    }

    /// A writable view of `obj` as the target of the socket method
    /// `method` (`recv_into`, `recvfrom_into`): anything that is not a
    /// read-write buffer fails as that method's argument parsing does
    /// (`TypeError: recv_into() argument 1 must be read-write bytes-like
    /// object, not bytes`), the same on 3.10-3.13.
    pub fn recv_target(obj: &Bound<'_, PyAny>, method: &str) -> PyResult<Self> {
        Self::view(obj, ffi::PyBUF_WRITABLE).map_err(|(e, no_buffer)| {
            if !no_buffer {
                return e;
            }
            pyo3::exceptions::PyTypeError::new_err(format!(
                "{method}() argument 1 must be read-write bytes-like object, not {}",
                super::common::type_name(obj)
            ))
        })
    }

    /// `PyObject_GetBuffer(obj, flags)`; on failure the error and whether
    /// it says `obj` has no such buffer (TypeError/BufferError) rather
    /// than something else going wrong.
    fn view(obj: &Bound<'_, PyAny>, flags: std::os::raw::c_int) -> Result<Self, (PyErr, bool)> {
        let mut view: Box<ffi::Py_buffer> = Box::new(ffi::Py_buffer::new());
        // SAFETY: GIL held; `view` is a valid, exclusively owned Py_buffer
        // that PyObject_GetBuffer fills (or leaves untouched on error).
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, flags) };
        if rc != 0 {
            let py = obj.py();
            let err = PyErr::take(py)
                .unwrap_or_else(|| PyBufferError::new_err("object does not expose a buffer"));
            let no_buffer = err.is_instance_of::<PyBufferError>(py)
                || err.is_instance_of::<pyo3::exceptions::PyTypeError>(py);
            return Err((err, no_buffer));
        }
        Ok(RawBuf { view })
    }

    #[inline]
    pub fn len(&self) -> usize {
        usize::try_from(self.view.len).unwrap_or(0)
    }

    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.view.buf as *const u8
    }

    #[inline]
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.view.buf as *mut u8
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        if self.len() == 0 || self.view.buf.is_null() {
            return &[];
        }
        // SAFETY: a successful PyObject_GetBuffer exposes `len` contiguous
        // bytes at `buf`, valid until PyBuffer_Release (our Drop).
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }
}

impl Drop for RawBuf {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful PyObject_GetBuffer and
        // is released exactly once. Every RawBuf lives inside a call that
        // holds the GIL (pymethods), so the GIL is held here.
        unsafe { ffi::PyBuffer_Release(&mut *self.view) }
    }
}

extern "C" {
    // Public CPython API (bytesobject.h), not re-exported by pyo3-ffi.
    fn _PyBytes_Resize(
        bytes: *mut *mut ffi::PyObject,
        newsize: ffi::Py_ssize_t,
    ) -> std::os::raw::c_int;
}

thread_local! {
    /// Per-thread receive buffer shared by every transport and `sock_*`
    /// read on this thread; it grows to the largest size asked for.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `len` bytes of this thread's scratch buffer. A nested use
/// (Python code run from inside `f` reaching another read) gets a fresh
/// buffer instead of failing.
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            if s.len() < len {
                s.resize(len, 0);
            }
            f(&mut s[..len])
        }
        Err(_) => f(&mut vec![0u8; len]),
    })
}

/// Outcome of a non-blocking read.
pub enum Read<T> {
    Data(T),
    WouldBlock,
    Eof,
}

/// `recv(fd, max)` into a new `bytes` object of exactly the received size.
/// Small reads go through `scratch` (a copy of a few hundred bytes beats a
/// large allocation and a shrinking realloc); large ones are received
/// straight into the object.
pub fn recv_bytes<'py>(
    py: Python<'py>,
    fd: RawFd,
    max: usize,
    scratch: &mut [u8],
    big: bool,
) -> PyResult<Read<Bound<'py, PyAny>>> {
    if !big && !scratch.is_empty() {
        let n = recv(fd, scratch.as_mut_ptr(), scratch.len().min(max))?;
        return Ok(match n {
            None => Read::WouldBlock,
            Some(0) => Read::Eof,
            Some(n) => Read::Data(pyo3::types::PyBytes::new(py, &scratch[..n]).into_any()),
        });
    }
    // Size the object by what is queued (FIONREAD): a `max`-sized buffer
    // shrunk afterwards leaves large freed chunks that make glibc trim and
    // re-fault heap pages on every read.
    let mut avail: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer we pass.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut avail as *mut libc::c_int) };
    let max = if rc == 0 && avail > 0 {
        (avail as usize).min(max)
    } else if max == 0 {
        0
    } else if !scratch.is_empty() {
        // Nothing queued (EOF, an error, or not a stream socket): let the
        // small path read it.
        return recv_bytes(py, fd, max, scratch, false);
    } else {
        // The same without a caller's scratch: a `max`-sized object made
        // only to see EAGAIN or EOF would cost a large malloc and free.
        return with_scratch(max.min(PROBE_SIZE), |s| recv_bytes(py, fd, max, s, false));
    };
    let mut obj = new_bytes(py, max)?;
    // SAFETY: `obj` is a fresh bytes object of `max` bytes.
    let data = unsafe { ffi::PyBytes_AsString(obj) } as *mut u8;
    let res = recv(fd, data, max);
    let n = match res {
        Ok(Some(n)) if n > 0 => n,
        other => {
            // SAFETY: we own the only reference.
            unsafe { ffi::Py_DECREF(obj) };
            return match other {
                Ok(None) => Ok(Read::WouldBlock),
                Ok(Some(_)) => Ok(Read::Eof),
                Err(e) => Err(e),
            };
        }
    };
    if n < max {
        resize(py, &mut obj, n)?;
    }
    // SAFETY: `obj` is a valid new reference.
    Ok(Read::Data(unsafe { Bound::from_owned_ptr(py, obj) }))
}

/// Scratch used by [`recv_bytes`] when nothing is queued: what arrives
/// between the `FIONREAD` and the `recv` is a short read, as `recv` allows.
const PROBE_SIZE: usize = 4096;

/// Granularity of [`recv_grow`]'s allocations.
const HINT_ROUND: usize = 4096;

/// Where a growing read lands: a payload whose length the reader sets.
pub trait Landing {
    /// Makes the payload `n` bytes long (keeping what it holds) and
    /// returns its start.
    fn set_len(&mut self, py: Python<'_>, n: usize) -> PyResult<*mut u8>;
}

/// A large `recv` straight into a payload (a new `bytes`, or the tail of a
/// `StreamReader`'s bytearray) sized by `hint` (the previous read's size)
/// instead of an `ioctl(FIONREAD)` per read: the payload gets `hint`
/// rounded up past the next 4 KiB, so a stream of same-sized messages never
/// fills it, and the unused tail is given back by a shrinking resize (a
/// realloc that splits the chunk in place). Only when a read fills the
/// payload is `FIONREAD` asked how much more is queued, and the payload
/// grown to take it in the same call, so one readable event still delivers
/// everything queued (up to `max`).
///
/// Returns the number of bytes read (the hint for the next read). On
/// `WouldBlock`/`Eof`/an error the payload's length is unspecified: the
/// caller discards or restores it.
pub fn recv_grow(
    py: Python<'_>,
    fd: RawFd,
    hint: usize,
    max: usize,
    land: &mut impl Landing,
) -> PyResult<Read<usize>> {
    let mut cap = ((hint / HINT_ROUND) + 1) * HINT_ROUND;
    cap = cap.min(max).max(1);
    let mut base = land.set_len(py, cap)?;
    let mut got = 0usize;
    loop {
        // SAFETY: `set_len(cap)` made `cap` bytes writable at `base`, of
        // which `got < cap` are filled; nothing else touches the payload.
        let res = recv(fd, unsafe { base.add(got) }, cap - got);
        match res {
            Ok(Some(n)) if n > 0 => got += n,
            Ok(None) if got == 0 => return Ok(Read::WouldBlock),
            Ok(_) if got == 0 => return Ok(Read::Eof),
            Err(e) if got == 0 => return Err(e),
            // Data already read: deliver it; EOF or the error shows up on
            // the next readable event (the fd stays readable).
            _ => break,
        }
        if got < cap || cap >= max {
            break;
        }
        // Filled: grow by what is still queued, if anything.
        let mut avail: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int to the pointer we pass.
        let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut avail as *mut libc::c_int) };
        if rc != 0 || avail <= 0 {
            break;
        }
        cap = (cap + avail as usize).min(max);
        base = land.set_len(py, cap)?;
    }
    if got < cap {
        land.set_len(py, got)?;
    }
    Ok(Read::Data(got))
}

/// A new `bytes` object as a [`Landing`]; freed on drop unless taken.
struct NewBytes(*mut ffi::PyObject);

impl Landing for NewBytes {
    fn set_len(&mut self, py: Python<'_>, n: usize) -> PyResult<*mut u8> {
        if self.0.is_null() {
            self.0 = new_bytes(py, n)?;
        } else {
            resize(py, &mut self.0, n)?;
        }
        // SAFETY: `self.0` is a live bytes object (checked non-null above
        // or just created/resized successfully).
        Ok(unsafe { ffi::PyBytes_AsString(self.0) } as *mut u8)
    }
}

impl Drop for NewBytes {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: we own the only reference; the GIL is held by every
            // caller of recv_hinted (it takes a `Python` token).
            unsafe { ffi::Py_DECREF(self.0) };
        }
    }
}

/// [`recv_grow`] into a new `bytes` object.
pub fn recv_hinted<'py>(
    py: Python<'py>,
    fd: RawFd,
    hint: usize,
    max: usize,
) -> PyResult<Read<Bound<'py, PyAny>>> {
    let mut land = NewBytes(std::ptr::null_mut());
    Ok(match recv_grow(py, fd, hint, max, &mut land)? {
        Read::Data(_) => {
            let obj = std::mem::replace(&mut land.0, std::ptr::null_mut());
            // SAFETY: `obj` is the valid new reference `land` owned.
            Read::Data(unsafe { Bound::from_owned_ptr(py, obj) })
        }
        Read::WouldBlock => Read::WouldBlock,
        Read::Eof => Read::Eof,
    })
}

/// A new, uninitialised `bytes` object of `size` bytes (owned reference).
fn new_bytes(py: Python<'_>, size: usize) -> PyResult<*mut ffi::PyObject> {
    let size = ffi::Py_ssize_t::try_from(size).unwrap_or(ffi::Py_ssize_t::MAX);
    // SAFETY: GIL held; a NULL source makes an uninitialised bytes object of
    // `size` bytes, which the caller owns and fills before exposing.
    let obj = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), size) };
    if obj.is_null() {
        return Err(PyErr::fetch(py));
    }
    Ok(obj)
}

/// `_PyBytes_Resize` of a bytes object nobody else has seen.
fn resize(py: Python<'_>, obj: &mut *mut ffi::PyObject, size: usize) -> PyResult<()> {
    let size = ffi::Py_ssize_t::try_from(size).unwrap_or(ffi::Py_ssize_t::MAX);
    // SAFETY: `*obj` is a bytes object with refcount 1 that no one else has
    // seen, as _PyBytes_Resize requires; on failure it is freed and set to
    // NULL (so the caller must not touch it again: it returns the error).
    let rc = unsafe { _PyBytes_Resize(obj, size) };
    if rc != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(())
}

/// `recv(2)`: Ok(None) when it would block (or was interrupted). A
/// zero-length read is Ok(Some(0)) without a syscall, as the socket
/// module's `recv(0)`/`recv_into(empty)` give (the kernel would say EAGAIN
/// on an idle socket, and a caller waiting for readiness would wait for
/// data it will never take).
pub fn recv(fd: RawFd, buf: *mut u8, len: usize) -> PyResult<Option<usize>> {
    if len == 0 {
        return Ok(Some(0));
    }
    // SAFETY: the caller passes `len` writable bytes at `buf`.
    let r = unsafe { libc::recv(fd, buf as *mut libc::c_void, len, 0) };
    if r < 0 {
        let e = OsError::last();
        return match e.errno() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(e.into()),
        };
    }
    Ok(Some(r as usize))
}

/// `send(2)` without SIGPIPE: Ok(0) when it would block.
pub fn send(fd: RawFd, data: &[u8]) -> OsResult<usize> {
    // SAFETY: `data` is a valid slice for the duration of the call.
    let r = unsafe {
        libc::send(
            fd,
            data.as_ptr() as *const libc::c_void,
            data.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if r < 0 {
        let e = OsError::last();
        return match e.errno() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
            _ => Err(e),
        };
    }
    Ok(r as usize)
}
