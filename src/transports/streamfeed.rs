//! Feeding asyncio's own `StreamReader` from a stream transport without
//! running its Python frames.
//!
//! asyncio's streams put a `StreamReaderProtocol` on the transport; per read
//! the stdlib runs `data_received` -> `_stream_reader` -> `feed_data` ->
//! `_wakeup_waiter` (four Python frames) and the transport first makes a
//! `bytes` that `feed_data` copies into the reader's `_buffer` bytearray.
//! When `ferrio._streamfeed.reader_ref(protocol)` said the protocol and its
//! reader are exactly the stdlib's (checked once, when the protocol is set;
//! it returns the reader's weakref, which the transport keeps), a read here
//! lands straight in `_buffer` and the transport does what those frames do,
//! statement for statement (3.10-3.13 `streams.py`):
//!
//! ```text
//! reader = protocol._stream_reader_wr()     # None: the ordinary path
//! assert not reader._eof                    # set: the ordinary path
//! reader._buffer.extend(data)               # the recv lands here
//! waiter = reader._waiter                   # _wakeup_waiter()
//! if waiter is not None:
//!     reader._waiter = None
//!     if not waiter.cancelled(): waiter.set_result(None)
//! if reader._transport is not None and not reader._paused
//!         and len(reader._buffer) > 2 * reader._limit:  # (*)
//!     try: reader._transport.pause_reading()
//!     except NotImplementedError: reader._transport = None
//!     else: reader._paused = True
//! ```
//!
//! (*) evaluated last condition first: all three are plain attribute reads
//! without side effects, and the length test is the one that is usually
//! false, so the common read costs one attribute read here, not three.
//!
//! Anything unusual — the reader gone or not exactly `StreamReader`, EOF
//! already fed, `_buffer` not a bytearray, the bytearray exported (a live
//! memoryview) so it cannot grow — takes the ordinary path: a `bytes` object
//! and a call of `protocol.data_received`, which then behaves (or raises)
//! exactly as the stdlib does.

use std::os::fd::RawFd;

use pyo3::exceptions::PyNotImplementedError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyType};
use pyo3::{PyTraverseError, PyVisit};

use super::buffer::{self, Landing, Read};

static PROTOCOL_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static READER_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static READER_REF: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A connection whose reads are fed natively: the weakref to its reader and
/// the version tags of the two stdlib classes when that was decided.
///
/// CPython gives a type a new `tp_version_tag` whenever it (or a base) is
/// modified, so a class patched later (`mock.patch.object(StreamReader,
/// "feed_data", ...)`) shows up as a changed tag and the connection takes
/// the ordinary path from then on. What is not re-checked per read is an
/// instance attribute set on the reader or protocol after the connection
/// was made: ferrio looks protocol methods up once, when the protocol is
/// set (as uvloop does; docs/compatibility.md).
pub struct Feed {
    reader_ref: Py<PyAny>,
    protocol_tag: u32,
    reader_tag: u32,
}

/// The type's current version tag (0: none assigned, or invalidated).
fn version_tag(ty: &Bound<'_, PyType>) -> u32 {
    // SAFETY: `ty` is a live type object (the Bound keeps it alive) and
    // this is not an abi3 build, so the full PyTypeObject layout applies;
    // the field is a plain integer CPython updates under the GIL.
    unsafe { (*ty.as_type_ptr()).tp_version_tag }
}

impl Feed {
    /// Whether `protocol`'s reads may be fed natively: a type check here
    /// (every protocol), the full check in Python
    /// (`ferrio._streamfeed.reader_ref`) only for asyncio's
    /// `StreamReaderProtocol` itself. Any error means no.
    pub fn new(protocol: &Bound<'_, PyAny>) -> Option<Feed> {
        let py = protocol.py();
        let pty = PROTOCOL_TYPE
            .import(py, "asyncio.streams", "StreamReaderProtocol")
            .ok()?;
        if !protocol.get_type().is(pty) {
            return None;
        }
        let rty = READER_TYPE
            .import(py, "asyncio.streams", "StreamReader")
            .ok()?;
        let wr = READER_REF
            .import(py, "ferrio._streamfeed", "reader_ref")
            .and_then(|f| f.call1((protocol,)))
            .ok()?;
        // The check looked attributes up through both types, which gives
        // each a version tag unless CPython has run out of them.
        let (protocol_tag, reader_tag) = (version_tag(pty), version_tag(rty));
        if wr.is_none() || protocol_tag == 0 || reader_tag == 0 {
            return None;
        }
        Some(Feed {
            reader_ref: wr.unbind(),
            protocol_tag,
            reader_tag,
        })
    }

    pub fn clone_ref(&self, py: Python<'_>) -> Feed {
        Feed {
            reader_ref: self.reader_ref.clone_ref(py),
            ..*self
        }
    }

    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.reader_ref)
    }

    /// The reader, if this read may go straight to it; `None` takes the
    /// ordinary path (errors looking it up included: the stdlib's own
    /// `data_received` will meet them again and report them).
    pub fn target<'py>(&self, py: Python<'py>) -> Option<Target<'py>> {
        let pty = PROTOCOL_TYPE.get(py)?.bind(py);
        let rty = READER_TYPE.get(py)?.bind(py);
        if version_tag(pty) != self.protocol_tag || version_tag(rty) != self.reader_tag {
            return None;
        }
        let reader = self.reader_ref.bind(py).call0().ok()?;
        if !reader.get_type().is(rty) {
            return None;
        }
        if reader.getattr(intern!(py, "_eof")).ok()?.is_truthy().ok()? {
            return None;
        }
        let buf = reader
            .getattr(intern!(py, "_buffer"))
            .ok()?
            .cast_exact::<PyByteArray>()
            .ok()?
            .clone();
        Some(Target { reader, buf })
    }
}

/// What a read for an eligible protocol did.
pub enum Fed<'py> {
    /// Nothing read; EOF; or `n` bytes appended to the reader's buffer
    /// (then call [`Target::wake`]).
    Read(Read<usize>),
    /// The buffer cannot take the read: nothing read yet (`None`), or these
    /// bytes were read and must go to `data_received`.
    Ordinary(Option<Bound<'py, PyAny>>),
}

/// The reader a read goes to and its buffer.
pub struct Target<'py> {
    reader: Bound<'py, PyAny>,
    buf: Bound<'py, PyByteArray>,
}

/// The tail of a bytearray past its first `base` bytes, as a [`Landing`].
struct Tail<'a, 'py> {
    buf: &'a Bound<'py, PyByteArray>,
    base: usize,
    /// A resize failed (the bytearray is exported, or no memory).
    refused: bool,
}

impl Landing for Tail<'_, '_> {
    fn set_len(&mut self, py: Python<'_>, n: usize) -> PyResult<*mut u8> {
        let total = ffi::Py_ssize_t::try_from(self.base + n)
            .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("read too large"))?;
        // SAFETY: GIL held; `buf` is a live bytearray. Resizing fails (with
        // BufferError) rather than move memory a buffer view exposes.
        if unsafe { ffi::PyByteArray_Resize(self.buf.as_ptr(), total) } != 0 {
            self.refused = true;
            return Err(PyErr::fetch(py));
        }
        // SAFETY: after a successful resize the bytearray holds
        // `base + n` bytes starting at PyByteArray_AsString.
        Ok(unsafe { (ffi::PyByteArray_AsString(self.buf.as_ptr()) as *mut u8).add(self.base) })
    }
}

impl<'py> Target<'py> {
    /// A small read: `recv` into `scratch`, then append to the buffer.
    pub fn recv_small(&self, fd: RawFd, scratch: &mut [u8]) -> PyResult<Fed<'py>> {
        let py = self.buf.py();
        let n = match buffer::recv(fd, scratch.as_mut_ptr(), scratch.len())? {
            None => return Ok(Fed::Read(Read::WouldBlock)),
            Some(0) => return Ok(Fed::Read(Read::Eof)),
            Some(n) => n,
        };
        let data = &scratch[..n];
        let mut tail = Tail {
            buf: &self.buf,
            base: self.buf.len(),
            refused: false,
        };
        match tail.set_len(py, n) {
            Ok(dst) => {
                // SAFETY: `dst` has `n` writable bytes (set_len) that do not
                // overlap the scratch buffer.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, n) };
                Ok(Fed::Read(Read::Data(n)))
            }
            // The bytearray refused to grow: hand the bytes to
            // data_received, whose extend() meets the same refusal.
            Err(_) => Ok(Fed::Ordinary(Some(PyBytes::new(py, data).into_any()))),
        }
    }

    /// A big read straight into the buffer's tail, sized by `hint`
    /// ([`buffer::recv_grow`]).
    pub fn recv_big(&self, fd: RawFd, hint: usize, max: usize) -> PyResult<Fed<'py>> {
        let py = self.buf.py();
        let base = self.buf.len();
        let mut tail = Tail {
            buf: &self.buf,
            base,
            refused: false,
        };
        let res = buffer::recv_grow(py, fd, hint, max, &mut tail);
        match res {
            Ok(Read::Data(n)) => Ok(Fed::Read(Read::Data(n))),
            // The first resize failed, before any recv: a bytearray that
            // cannot grow (exported) takes the ordinary path. (Once one
            // resize succeeded no Python code runs that could export it,
            // so a later refusal is a MemoryError, reported as a read
            // error like the `bytes` path's.)
            Err(_) if tail.refused && self.buf.len() == base => Ok(Fed::Ordinary(None)),
            other => {
                // Nothing landed: give the tail back (a shrink to the
                // original length cannot fail).
                let _ = tail.set_len(py, 0);
                other.map(Fed::Read)
            }
        }
    }

    /// After data landed: `_wakeup_waiter()` and the pause check of
    /// `feed_data` (see the module doc).
    pub fn wake(&self) -> PyResult<()> {
        let py = self.buf.py();
        let r = &self.reader;
        let waiter = r.getattr(intern!(py, "_waiter"))?;
        if !waiter.is_none() {
            r.setattr(intern!(py, "_waiter"), py.None())?;
            if !waiter.call_method0(intern!(py, "cancelled"))?.is_truthy()? {
                waiter.call_method1(intern!(py, "set_result"), (py.None(),))?;
            }
        }
        let limit = r.getattr(intern!(py, "_limit"))?;
        let over = match limit.extract::<i64>() {
            Ok(l) => i64::try_from(self.buf.len()).unwrap_or(i64::MAX) > l.saturating_mul(2),
            Err(_) => self.buf.len().into_pyobject(py)?.gt(limit.mul(2)?)?,
        };
        if !over {
            return Ok(());
        }
        let transport = r.getattr(intern!(py, "_transport"))?;
        if transport.is_none() || r.getattr(intern!(py, "_paused"))?.is_truthy()? {
            return Ok(());
        }
        match transport.call_method0(intern!(py, "pause_reading")) {
            Ok(_) => r.setattr(intern!(py, "_paused"), true),
            Err(e) if e.is_instance_of::<PyNotImplementedError>(py) => {
                r.setattr(intern!(py, "_transport"), py.None())
            }
            Err(e) => Err(e),
        }
    }
}
