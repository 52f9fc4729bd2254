//! The hot methods of ferrio's Python transport wrappers as C method
//! descriptors: `SocketTransport.write`, `writelines`, `is_closing` and
//! `DatagramTransport.sendto`, `is_closing`.
//!
//! Why: a protocol's `self.transport.write(data)` is a `LOAD_METHOD` +
//! call per packet. These used to be the core's bound methods stored on
//! each wrapper instance; an instance attribute shadowing a class method
//! keeps CPython's `LOAD_METHOD` from specialising, so every call took the
//! generic lookup (~160 instructions under callgrind, a twentieth of a
//! whole echo request) and then PyO3's argument parsing. A method
//! descriptor on the class specialises (`LOAD_METHOD_WITH_VALUES` /
//! `..._WITH_DICT`, then a direct call of the C function with `self`),
//! and the function finds the core in the wrapper's `_core` slot at a
//! fixed offset (python/ferrio/_transports.py declares it) instead of a
//! dict lookup.
//!
//! Arguments are asyncio's: `write(data)`, `writelines(list_of_data)`,
//! `sendto(data, addr=None)`, positional or by keyword; errors are
//! `TypeError`s as for any Python method. A Rust panic never crosses into
//! Python (boundary.rs). An instance attribute set later (a test's
//! `mock.patch.object(transport, "write")`) still shadows the class's.

use std::sync::atomic::{AtomicIsize, Ordering};

use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple, PyType};
use pyo3::Borrowed;

use super::datagram::DatagramTransport;
use super::stream::StreamTransport;
use crate::methoddef::{self, method_def, MethodDef};

/// Byte offset of the `_core` slot in wrapper instances; 0 until
/// [`install`] found it (no object has a slot at offset 0).
///
/// Relaxed: written once, under the GIL, before the descriptors that read
/// it exist; every reader runs under the GIL after that (on free-threaded
/// builds the type's dict publishes the descriptors with its own
/// synchronisation, after this store).
static CORE_OFFSET: AtomicIsize = AtomicIsize::new(0);

/// The wrapper's core, read from its `_core` slot.
///
/// # Safety
/// `slf` is a live instance of a class [`install`] was given (CPython's
/// method descriptor checks the type before calling), GIL held.
unsafe fn core<'a, 'py>(
    py: Python<'py>,
    slf: *mut ffi::PyObject,
) -> PyResult<Borrowed<'a, 'py, PyAny>> {
    let off = CORE_OFFSET.load(Ordering::Relaxed);
    if off == 0 {
        return Err(PyAttributeError::new_err("_core"));
    }
    // SAFETY: `install` checked that every class it installed on has an
    // object slot at `off` (a `__slots__` member); `slf` is such an
    // instance, so the slot holds NULL or a borrowed reference.
    let p = unsafe { *((slf as *const u8).offset(off) as *const *mut ffi::PyObject) };
    if p.is_null() {
        return Err(PyAttributeError::new_err("_core"));
    }
    // SAFETY: non-null object reference, kept alive by `slf` for the call.
    Ok(unsafe { Borrowed::from_ptr(py, p) })
}

/// The vectorcall arguments matched to `params` (positional, then by
/// keyword), the first `required` of them mandatory.
///
/// # Safety
/// `args` points to `nargs + len(kwnames)` valid borrowed references (the
/// vectorcall protocol); GIL held.
unsafe fn parse<'a, 'py, const N: usize>(
    py: Python<'py>,
    name: &str,
    params: [&str; N],
    required: usize,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<[Option<Borrowed<'a, 'py, PyAny>>; N]> {
    // SAFETY: nargsf comes from the vectorcall protocol.
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf as usize) } as usize;
    if nargs > N {
        return Err(PyTypeError::new_err(format!(
            "{name}() takes {} positional argument{} but {} were given",
            N + 1,
            if N == 0 { "" } else { "s" },
            nargs + 1
        )));
    }
    // SAFETY: index < nargs + len(kwnames), per the caller contract.
    let arg = |i: usize| unsafe { Borrowed::from_ptr(py, *args.add(i)) };
    let mut out: [Option<Borrowed<'a, 'py, PyAny>>; N] = [None; N];
    for (i, slot) in out.iter_mut().enumerate().take(nargs) {
        *slot = Some(arg(i));
    }
    if !kwnames.is_null() {
        // SAFETY: kwnames is a tuple of str per the vectorcall protocol.
        let names = unsafe { Borrowed::from_ptr(py, kwnames) };
        let names = names.cast::<PyTuple>().map_err(PyErr::from)?;
        for (k, kw) in names.iter().enumerate() {
            let kw = kw.cast_into::<PyString>().map_err(PyErr::from)?;
            let text = kw.to_str()?;
            let Some(i) = params.iter().position(|p| *p == text) else {
                return Err(PyTypeError::new_err(format!(
                    "{name}() got an unexpected keyword argument '{text}'"
                )));
            };
            if out[i].is_some() {
                return Err(PyTypeError::new_err(format!(
                    "{name}() got multiple values for argument '{text}'"
                )));
            }
            out[i] = Some(arg(nargs + k));
        }
    }
    if let Some(missing) = params
        .iter()
        .take(required)
        .zip(&out)
        .find(|(_, v)| v.is_none())
    {
        return Err(PyTypeError::new_err(format!(
            "{name}() missing 1 required positional argument: '{}'",
            missing.0
        )));
    }
    Ok(out)
}

/// A parameter `parse` already checked is present.
fn required<'a, 'py>(arg: Option<Borrowed<'a, 'py, PyAny>>) -> PyResult<Borrowed<'a, 'py, PyAny>> {
    arg.ok_or_else(|| PyTypeError::new_err("missing required argument"))
}

/// `None`, as a new reference.
fn none(py: Python<'_>) -> *mut ffi::PyObject {
    py.None().into_ptr()
}

fn boolean(py: Python<'_>, b: bool) -> *mut ffi::PyObject {
    pyo3::types::PyBool::new(py, b)
        .to_owned()
        .into_any()
        .into_ptr()
}

macro_rules! fastcall {
    ($fn:ident, |$py:ident, $slf:ident, $args:ident, $nargsf:ident, $kwnames:ident| $body:block) => {
        unsafe extern "C" fn $fn(
            $slf: *mut ffi::PyObject,
            $args: *const *mut ffi::PyObject,
            $nargsf: ffi::Py_ssize_t,
            $kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: CPython calls method descriptors with the GIL held and
            // vectorcall arguments, after checking `self`'s type.
            crate::boundary::guard(|$py| $body)
        }
    };
}

fastcall!(stream_write, |py, slf, args, nargsf, kwnames| {
    // SAFETY: vectorcall arguments, as `parse` requires.
    let [data] = unsafe { parse(py, "write", ["data"], 1, args, nargsf, kwnames) }?;
    let data = required(data)?;
    // SAFETY: `slf` is an instance of the class the descriptor was made
    // for (CPython checked), whose `_core` slot `install` located.
    let core = unsafe { core(py, slf) }?;
    let core = core.cast::<StreamTransport>().map_err(PyErr::from)?;
    StreamTransport::write(&core, &data)?;
    Ok(none(py))
});

fastcall!(stream_writelines, |py, slf, args, nargsf, kwnames| {
    // SAFETY: vectorcall arguments, as `parse` requires.
    let [lines] = unsafe { parse(py, "writelines", ["list_of_data"], 1, args, nargsf, kwnames) }?;
    let lines = required(lines)?;
    // SAFETY: `slf` is an instance of the class the descriptor was made
    // for (CPython checked), whose `_core` slot `install` located.
    let core = unsafe { core(py, slf) }?;
    let core = core.cast::<StreamTransport>().map_err(PyErr::from)?;
    StreamTransport::writelines(&core, &lines)?;
    Ok(none(py))
});

fastcall!(stream_is_closing, |py, slf, args, nargsf, kwnames| {
    // SAFETY: vectorcall arguments, as `parse` requires.
    unsafe { parse::<0>(py, "is_closing", [], 0, args, nargsf, kwnames) }?;
    // SAFETY: `slf` is an instance of the class the descriptor was made
    // for (CPython checked), whose `_core` slot `install` located.
    let core = unsafe { core(py, slf) }?;
    let core = core.cast::<StreamTransport>().map_err(PyErr::from)?;
    Ok(boolean(py, core.get().is_closing(py)))
});

fastcall!(datagram_sendto, |py, slf, args, nargsf, kwnames| {
    // SAFETY: vectorcall arguments, as `parse` requires.
    let [data, addr] = unsafe { parse(py, "sendto", ["data", "addr"], 1, args, nargsf, kwnames) }?;
    // SAFETY: `slf` is an instance of the class the descriptor was made
    // for (CPython checked), whose `_core` slot `install` located.
    let core = unsafe { core(py, slf) }?;
    let core = core.cast::<DatagramTransport>().map_err(PyErr::from)?;
    let data = required(data)?;
    DatagramTransport::sendto(&core, &data, addr.map(|a| a.to_owned()))?;
    Ok(none(py))
});

fastcall!(datagram_is_closing, |py, slf, args, nargsf, kwnames| {
    // SAFETY: vectorcall arguments, as `parse` requires.
    unsafe { parse::<0>(py, "is_closing", [], 0, args, nargsf, kwnames) }?;
    // SAFETY: `slf` is an instance of the class the descriptor was made
    // for (CPython checked), whose `_core` slot `install` located.
    let core = unsafe { core(py, slf) }?;
    let core = core.cast::<DatagramTransport>().map_err(PyErr::from)?;
    Ok(boolean(py, core.get().is_closing(py)))
});

static STREAM_DEFS: [MethodDef; 3] = [
    method_def!("write", stream_write, "write($self, data)\n--\n\nWrite bytes-like data to the transport (never blocks; buffered when the kernel does not take it all)."),
    method_def!("writelines", stream_writelines, "writelines($self, list_of_data)\n--\n\nWrite the pieces as one write."),
    method_def!("is_closing", stream_is_closing, "is_closing($self)\n--\n\nTrue once the transport is closing or closed."),
];

static DATAGRAM_DEFS: [MethodDef; 2] = [
    method_def!(
        "sendto",
        datagram_sendto,
        "sendto($self, data, addr=None)\n--\n\nSend one datagram (to addr, or the connected peer)."
    ),
    method_def!(
        "is_closing",
        datagram_is_closing,
        "is_closing($self)\n--\n\nTrue once the transport is closing or closed."
    ),
];

/// The offset of `cls`'s `_core` slot: its `_core` attribute must be a
/// `__slots__` member holding an object.
fn core_slot_offset(cls: &Bound<'_, PyType>) -> PyResult<isize> {
    let py = cls.py();
    let member = cls.getattr(pyo3::intern!(py, "_core"))?;
    let member_type = std::ptr::addr_of_mut!(ffi::PyMemberDescr_Type);
    if member.get_type().as_type_ptr() != member_type {
        return Err(PyTypeError::new_err(format!(
            "{}._core must be a __slots__ member",
            cls.name()?
        )));
    }
    // SAFETY: `member` is a member descriptor (checked above), whose
    // layout PyMemberDescrObject describes; its PyMemberDef lives as long
    // as the class.
    let (offset, type_code, owner) = unsafe {
        let d = member.as_ptr() as *mut ffi::PyMemberDescrObject;
        let def = (*d).d_member as *const ffi::PyMemberDef;
        ((*def).offset, (*def).type_code, (*d).d_common.d_type)
    };
    // SAFETY: both are valid type objects.
    let inherits = unsafe { ffi::PyType_IsSubtype(cls.as_type_ptr(), owner) } != 0;
    if type_code != ffi::Py_T_OBJECT_EX || offset <= 0 || !inherits {
        return Err(PyTypeError::new_err("unexpected _core slot"));
    }
    Ok(offset)
}

/// `_install_transport_methods(SocketTransport, DatagramTransport)`: puts
/// the descriptors on the two wrapper classes (once, at import of
/// `ferrio._transports`).
#[pyfunction]
pub fn _install_transport_methods(
    socket_cls: &Bound<'_, PyType>,
    datagram_cls: &Bound<'_, PyType>,
) -> PyResult<()> {
    let off = core_slot_offset(socket_cls)?;
    if core_slot_offset(datagram_cls)? != off {
        return Err(PyTypeError::new_err("the wrappers' _core slots differ"));
    }
    let old = CORE_OFFSET.swap(off, Ordering::Relaxed);
    if old != 0 && old != off {
        CORE_OFFSET.store(old, Ordering::Relaxed);
        return Err(PyTypeError::new_err(
            "transport methods already installed elsewhere",
        ));
    }
    methoddef::install(socket_cls, &STREAM_DEFS)?;
    methoddef::install(datagram_cls, &DATAGRAM_DEFS)
}
